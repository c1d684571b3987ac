"""checks.render executed here (checks/run/render.py): the script
checks/render.nix hands runCommand, run with scripts/setup's BIRD 2 and 3 on
every host of the committed plans. Without the preCheckConfig the core gives
a host with DN42 ROA (the stubs services.bird's check gets), BIRD stops at
the ROA include, as the render check did before it used them."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from nixcore import REPO, needs_nix

RUNNER = REPO / "checks" / "run" / "render.py"


def runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_check_runner", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@needs_nix
def test_the_render_check_passes_on_every_committed_host() -> None:
    outcome = runner().run()
    assert outcome.returncode == 0, outcome.output
    assert {"example-dmz", "example-pve", "three-clients-vps"} <= set(outcome.hosts)
    assert "example-roa-files-dmz" in outcome.hosts
    for host in outcome.hosts:
        assert f"checking {host}" in outcome.output


@needs_nix
def test_without_the_roa_stubs_bird_stops_at_the_runtime_include() -> None:
    bare = runner().run('hosts: map (h: h // { preCheckConfig = ""; }) hosts')
    assert bare.returncode != 0
    assert "Unable to open included file /var/lib/ibgp-tunnel/roa/dn42_roa4.conf" in bare.output


@needs_nix
def test_only_the_hosts_with_roa_get_stubs() -> None:
    # A DN42 reflector with ROA files gets them; one on RTR (the example's dmz) and
    # a client (no include) get none: the check stubs exactly what the module's
    # services.bird check stubs.
    hosts = {h["name"]: h for h in runner().evaluate(REPO, "hosts: hosts")["hosts"]}
    files = hosts["example-roa-files-dmz"]
    assert "dn42_roa4.conf" in files["preCheckConfig"]
    assert 'include "/var/lib/ibgp-tunnel/roa/' in files["birdConfig"]
    assert hosts["example-dmz"]["preCheckConfig"] == ""
    assert 'include "' not in hosts["example-dmz"]["birdConfig"]
    assert hosts["example-pve"]["preCheckConfig"] == ""
    assert "include " not in hosts["example-pve"]["birdConfig"]
