"""Two reflectors (issue #13) without the lab: what the core renders for a plan with
two VPSes (python/tests/plans/two-reflectors.toml), what the single-reflector example
keeps, and the NixOS module's options for the same (with the real sops-nix)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_helpers import EXAMPLE_PLAN
from moduleeval import REPO, eval_module, needs_vendor
from nixcore import needs_nix, render, spec

from ibgp_tunnel.lab.reflectors import client_links

pytestmark = needs_nix

PLAN = Path(__file__).resolve().parent / "plans" / "two-reflectors.toml"
# The same shape with public keys, as the module needs them.
KEYED_PLAN = Path(__file__).resolve().parent / "corpus" / "good" / "two-reflectors.toml"


def _session(conf: str, name: str) -> str:
    start = conf.index(f"protocol bgp {name} {{")
    end = conf.find("\nprotocol ", start + 1)
    return conf[start : end if end != -1 else len(conf)]


def test_client_prefers_the_reflector_the_plan_names() -> None:
    conf = render(PLAN, "home")["birdConfig"]
    for name, preference in (("ibgp_vps1", 200), ("ibgp_vps2", 100)):
        session = _session(conf, name)
        # Set in both families' import filters, before the accept.
        assert session.count(f"bgp_local_pref = {preference};") == 2, session
        assert re.search(rf"bgp_local_pref = {preference};\s+if .* then accept;", session)
    assert [link.reflector for link in client_links(_plan(), "home")] == ["vps1", "vps2"]
    assert [link.reflector for link in client_links(_plan(), "office")] == ["vps1", "vps2"]


def test_multi_homed_links_use_bfd_on_at_both_ends() -> None:
    for host, sessions in (
        ("home", ["ibgp_vps1", "ibgp_vps2"]),
        ("vps1", ["ibgp_home", "ibgp_office"]),
    ):
        conf = render(PLAN, host)["birdConfig"]
        for name in sessions:
            session = _session(conf, name)
            assert "bfd on;" in session and "bfd graceful;" not in session, (host, name)
            # Graceful restart stays: a restart of this end is still hitless.
            assert "graceful restart on;" in session


def test_cluster_ids_only_where_the_plan_names_one() -> None:
    vps1 = render(PLAN, "vps1")["birdConfig"]
    vps2 = render(PLAN, "vps2")["birdConfig"]
    assert vps1.count("rr cluster id 172.23.101.1;") == 2
    assert "rr cluster id" not in vps2  # BIRD's default: its router id, distinct
    assert spec(PLAN, "vps2")["clusterId"] is None


def test_the_single_reflector_example_renders_as_before() -> None:
    for host in ("dmz", "pve"):
        conf = render(EXAMPLE_PLAN, host)["birdConfig"]
        assert "bfd graceful;" in conf and "bfd on;" not in conf
        assert "bgp_local_pref" not in conf and "rr cluster id" not in conf
    assert spec(EXAMPLE_PLAN, "dmz")["links"]["pve"]["alternativePath"] is False


def _plan() -> dict[str, object]:
    import tomllib

    return tomllib.loads(PLAN.read_text())


def _module(host: str, extra: str = "") -> str:
    return (
        "{ lib, ... }: { services.ibgpTunnel = { enable = true; "
        f'plan = {KEYED_PLAN}; hostName = "{host}"; '
        f"sops.file = {REPO}/secrets/test/pve.yaml; }}; {extra} }}"
    )


@needs_vendor
def test_module_renders_the_plan_and_takes_the_options() -> None:
    result = eval_module(_module("vps2", 'services.ibgpTunnel.clusterId = "10.0.0.2";'))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["failedAssertions"] == []
    conf = data["config"]["services"]["bird"]["config"]
    assert conf.count("rr cluster id 10.0.0.2;") == 1
    assert conf.count("bfd on;") == 1


@needs_vendor
def test_module_refuses_a_bad_preference_option() -> None:
    extra = 'services.ibgpTunnel.links."pve-vps1".preference = lib.mkForce (-1);'
    result = eval_module(_module("pve", extra))
    assert result.returncode != 0
    shown = result.stderr.replace('"', "")
    assert "services.ibgpTunnel.links.pve-vps1.preference" in shown, result.stderr
