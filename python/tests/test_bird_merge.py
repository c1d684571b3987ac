"""services.ibgpTunnel.bird.standalone = false: our part of bird.conf merged into
a host's own BIRD configuration (services.bird.config, types.lines) through the
real module system, then parsed by real BIRD (`bird -p`): Debian's bird2 on PATH,
and the BIRD in $IBGP_TUNNEL_BIRD_DIR (BIRD 3 in CI) when set."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pinned
import pytest
from birdcheck import build_time_check
from nixcore import REPO, needs_bird, needs_nix

pytestmark = [needs_nix, pinned.needs_inputs, needs_bird]

# A home router's own BIRD: OSPF, its own BFD, kernel protocols that also export
# our routes, and names we use ourselves when standalone (OWNAS, DN42_NET_v4,
# ibgp_dmz, kernel4) to show that nothing collides.
USER_CONFIG = """\
router id 192.0.2.1;
define OWNAS = 65001;
define DN42_NET_v4 = [ 10.0.0.0/8+ ];
protocol device { scan time 5; }
protocol direct { ipv4; ipv6; interface "lo"; }
protocol kernel kernel4 { ipv4 { export where ibgpt_kernel_export_v4() || source = RTS_OSPF; }; }
protocol kernel kernel6 { ipv6 { export where ibgpt_kernel_export_v6() || source = RTS_OSPF; }; }
protocol bfd { interface "eth*" { interval 100 ms; }; }
protocol ospf v2 ospf4 {
  ipv4 { import all; export none; };
  area 0 { interface "eth1" { cost 10; }; };
}
protocol bgp ibgp_dmz {
  local as OWNAS; neighbor 192.0.2.9 as OWNAS;
  ipv4 { import all; export none; };
}
"""

# Another DN42 module's config that keeps the kernel protocols to us.
NO_KERNEL_CONFIG = """\
router id 192.0.2.1;
protocol device { }
protocol static dn42_static4 { ipv4; route 172.20.0.0/27 unreachable; }
"""


def birds() -> list[Path]:
    found = [Path(shutil.which("bird") or "bird")]
    extra = os.environ.get("IBGP_TUNNEL_BIRD_DIR")
    if extra and (Path(extra) / "bird").is_file():
        found.append(Path(extra) / "bird")
    return found


def merged_config(host: str, user_config: str, extra: str = "") -> str:
    module = (
        "{ lib, ... }: { services.ibgpTunnel.bird.standalone = false; "
        f"services.bird.config = {json.dumps(user_config)}; {extra} }}"
    )
    expression = (
        f"(import {REPO}/checks/lib/eval-module.nix {{ lib = import {pinned.NIXPKGS_LIB}; "
        f"sops = {pinned.SOPS_MODULE}; modules = [ {REPO}/modules/ibgp-tunnel "
        f"(import {REPO}/hosts/{host}) ({module}) ]; }})"
    )
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["failedAssertions"] == []
    # What the build-time check runs first (DN42 ROA includes -> empty stubs).
    PRE_CHECK[data["config"]["services"]["bird"]["config"]] = data["config"]["services"]["bird"][
        "preCheckConfig"
    ]
    return data["config"]["services"]["bird"]["config"]


PRE_CHECK: dict[str, str] = {}


def bird_parses(config: str, tmp_path: Path) -> None:
    """As services.bird's build-time check parses it (python/tests/birdcheck.py)."""
    for index, bird in enumerate(birds()):
        artifacts = {"birdConfig": config, "dn42Roa": {"preCheckConfig": PRE_CHECK.get(config, "")}}
        result = build_time_check(artifacts, tmp_path / f"check-{index}", str(bird))
        assert result.returncode == 0, f"{bird} -p:\n{result.stderr}\n{config}"


def ours(config: str, user_config: str) -> str:
    assert config.endswith(user_config), "the host's own text must follow ours, unchanged"
    return config[: -len(user_config)]


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_our_part_merges_into_the_hosts_own_bird_conf(host: str, tmp_path: Path) -> None:
    config = merged_config(host, USER_CONFIG)
    bird_parses(config, tmp_path)
    part = ours(config, USER_CONFIG)
    # No global parts of ours: the host's router id, device and kernel protocols.
    assert not re.search(r"^router id", part, re.MULTILINE)
    assert "protocol device" not in part and "protocol kernel" not in part
    assert "graceful restart wait" not in part
    # Every name we define is prefixed.
    protocols = re.findall(r"^protocol \w+ (\S+) \{", part, re.MULTILINE)
    assert protocols and all(name.startswith("ibgpt_") for name in protocols), protocols
    assert len(re.findall(r"^protocol ", part, re.MULTILINE)) == len(protocols)
    defines = re.findall(r"^define (\S+) =", part, re.MULTILINE)
    assert defines and all(name.startswith("IBGPT_") for name in defines), defines
    functions = re.findall(r"^function (\S+)\(", part, re.MULTILINE)
    assert all(name.startswith("ibgpt_") for name in functions), functions
    assert functions[:2] == ["ibgpt_kernel_export_v4", "ibgpt_kernel_export_v6"]
    # Our sessions keep the plan's router id as a protocol option.
    router_id = "172.23.101.1" if host == "dmz" else "172.23.101.2"
    assert f"  router id {router_id};" in part
    peer = "pve" if host == "dmz" else "dmz"
    assert f"protocol bgp ibgpt_ibgp_{peer} {{" in part


def test_kernel_protocols_of_our_own_when_asked(tmp_path: Path) -> None:
    config = merged_config(
        "pve", NO_KERNEL_CONFIG, "services.ibgpTunnel.bird.kernelProtocols = true;"
    )
    bird_parses(config, tmp_path)
    part = ours(config, NO_KERNEL_CONFIG)
    assert "protocol kernel ibgpt_kernel4 {" in part
    assert "protocol kernel ibgpt_kernel6 {" in part
    assert "function ibgpt_kernel_export" not in part


def test_two_kernel_protocols_on_one_table_are_what_kernelprotocols_avoids(
    tmp_path: Path,
) -> None:
    # Why the default is off when merged: BIRD refuses a second kernel
    # protocol on the main table, so asking for ours beside the host's fails.
    config = merged_config("pve", USER_CONFIG, "services.ibgpTunnel.bird.kernelProtocols = true;")
    path = tmp_path / "bird.conf"
    path.write_text(config)
    result = subprocess.run(
        [str(birds()[0]), "-p", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


def test_the_kernel_export_function_keeps_what_the_kernel_filter_keeps() -> None:
    # Standalone and merged give the same conditions, once as the kernel
    # protocol's filter, once as a function for the host's own kernel protocols.
    from nixcore import EXAMPLE_PLAN, render

    standalone = render(EXAMPLE_PLAN, "pve")["birdConfig"]
    merged = merged_config("pve", "")
    filter_body = re.search(
        r"protocol kernel kernel4 \{.*?export filter \{(.*?)\};", standalone, re.S
    )
    function_body = re.search(r"function ibgpt_kernel_export_v4\(\) \{(.*?)\n\}", merged, re.S)
    assert filter_body and function_body
    conditions = re.findall(r"if (.*?) then (?:reject|accept)", filter_body.group(1))
    prefixed = [re.sub(r"\b([A-Z0-9]+_NET_v4)", r"IBGPT_\1", c) for c in conditions]
    assert re.findall(r"if (.*?) then return", function_body.group(1)) == prefixed


def test_standalone_is_the_default_and_unchanged(tmp_path: Path) -> None:
    from nixcore import EXAMPLE_PLAN, render

    result = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "-E",
            f"(import {REPO}/checks/lib/eval-module.nix {{ lib = import {pinned.NIXPKGS_LIB}; "
            f"sops = {pinned.SOPS_MODULE}; modules = [ {REPO}/modules/ibgp-tunnel "
            f"(import {REPO}/hosts/pve) ]; }}).config.services.bird.config",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == render(EXAMPLE_PLAN, "pve")["birdConfig"]
