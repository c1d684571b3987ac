"""DN42's link communities on what we send a DN42 peer (issue 22, item 1): the
peer's export filter tags our announcements with this link's (64511, x) values,
and a route already carrying worse values keeps them (DN42's community guide,
howto/BGP-communities). Rendered by the core (render/dn42.nix), then run on a
real BIRD (3, 2.17, the system's) in a namespace of its own: the rendered
filter on a pipe between two tables, the routes read back with birdc."""

from __future__ import annotations

import os
import re
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from nixcore import EXAMPLE_PLAN, needs_nix, render
from test_dn42_roa import BIRDS

pytestmark = needs_nix

OWN_V4, OWN_V6 = "172.23.101.0/28", "fd42:4242:38:1::/64"


def exporting_plan(tmp_path: Path, **peer: Any) -> Path:
    """The example plan with dmz announcing OWN_V4/OWN_V6 (DN42 space) and peer1
    exporting the dn42 set (so exactly those), plus `peer`'s changes."""
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    dmz = data["hosts"]["dmz"]
    dmz["announce"]["ipv4"].append(OWN_V4)
    dmz["announce"]["ipv6"].append(OWN_V6)
    table = dmz["dn42_peers"]["peer1"]
    table["export_sets"] = ["dn42"]
    for key, value in peer.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    path = tmp_path / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    return path


def _channel(conf: str, family: str) -> str:
    session = conf.split("protocol bgp dn42_peer1 {", 1)[1].split("\n}\n", 1)[0]
    return session.split(f"  {family} {{\n", 1)[1].split("\n  };", 1)[0]


def _export_filter(conf: str, family: str) -> str:
    found = re.search(r"\n(\s*)export filter \{\n.*?\n\1\};", _channel(conf, family), re.DOTALL)
    assert found, _channel(conf, family)
    return found.group(0).strip()


def test_our_announcements_are_tagged_with_the_links_communities(tmp_path: Path) -> None:
    conf = render(exporting_plan(tmp_path), "dmz")["birdConfig"]
    for family, version in (("ipv4", "4"), ("ipv6", "6")):
        text = _export_filter(conf, family)
        assert [line.strip() for line in text.splitlines()] == [
            "export filter {",
            "if source != RTS_STATIC then reject;",
            f"if !(net ~ DN42_NET_v{version}) then reject;",
            "dn42_update_latency(2);",
            "dn42_update_bandwidth(24);",
            "dn42_update_crypto(34);",
            "accept;",
            "};",
        ], text


def test_an_untagged_link_exports_as_before(tmp_path: Path) -> None:
    # No tunnel (no crypto), no latency, no bandwidth: nothing to add.
    plan = exporting_plan(
        tmp_path,
        neighbor="172.20.42.1",
        latency=None,
        bandwidth=None,
        public_key=None,
        link_local=None,
        preshared_key=None,
        persistent_keepalive=None,
        ipv4=None,
        peer_ipv4=None,
    )
    channel = _channel(render(plan, "dmz")["birdConfig"], "ipv4")
    assert "export where source = RTS_STATIC && (net ~ DN42_NET_v4);" in channel
    assert "export filter" not in channel


def test_no_export_sets_exports_nothing(tmp_path: Path) -> None:
    plan = exporting_plan(tmp_path, export_sets=[])
    conf = render(plan, "dmz")["birdConfig"]
    for family in ("ipv4", "ipv6"):
        assert "export none;" in _channel(conf, family)
        assert "export filter" not in _channel(conf, family)


# --- the rendered filter on a real BIRD ----------------------------------------

# A route as a DN42 path may bring it: slower (5), thinner (22) and unencrypted
# (31) than our link, plus better values that must go.
WORSE = "172.23.101.16/28"
MARKS = "".join(f"bgp_community.add((64511, {v})); " for v in (1, 5, 22, 26, 31))


def _bird_config(conf: str) -> str:
    defines = "".join(
        line + "\n" for line in conf.splitlines() if line.startswith("define DN42_NET_v4 ")
    )
    functions = conf.split("function dn42_update_latency", 1)[1].split("\n\n\n", 1)[0]
    return (
        "router id 192.0.2.1;\n"
        + defines
        + "function dn42_update_latency"
        + functions
        + "\n\nipv4 table ours4;\nipv4 table sent4;\n"
        + "protocol static own4 {\n  ipv4 { table ours4; };\n"
        + f"  route {OWN_V4} unreachable;\n"
        + f"  route {WORSE} unreachable {{ {MARKS}}};\n"
        + "  route 198.51.100.0/24 unreachable;\n}\n"
        # What the peer's channel would send: the rendered filter, verbatim.
        + "protocol pipe to_peer {\n  table ours4;\n  peer table sent4;\n  import none;\n  "
        + _export_filter(conf, "ipv4")
        + "\n}\n"
    )


@pytest.fixture(params=BIRDS, ids=[name for name, _ in BIRDS])
def bird(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    if os.geteuid() != 0:
        pytest.skip("BIRD runs in a network namespace: needs root")
    directory: Path = request.param[1]
    yield directory, tmp_path / "bird.ctl"


def _run_bird(directory: Path, conf: Path, socket: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["unshare", "--net", str(directory / "bird"), "-f", "-c", str(conf), "-s", str(socket)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(
            [str(directory / "birdc"), "-s", str(socket), "show", "status"],
            capture_output=True,
            check=False,
        ).returncode
        != 0
    ):
        if proc.poll() is not None:
            raise AssertionError(f"BIRD exited: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, "BIRD never answered on its socket"
        time.sleep(0.05)
    return proc


def _sent(directory: Path, socket: Path, prefix: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(
            [
                str(directory / "birdc"),
                "-s",
                str(socket),
                "show",
                "route",
                prefix,
                "table",
                "sent4",
                "all",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if prefix in out or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def test_the_rendered_export_filter_keeps_the_worst_of_the_path(
    bird: tuple[Path, Path], tmp_path: Path
) -> None:
    directory, socket = bird
    conf = render(exporting_plan(tmp_path), "dmz")["birdConfig"]
    path = tmp_path / "export.conf"
    path.write_text(_bird_config(conf))
    proc = _run_bird(directory, path, socket)
    try:
        # Ours: exactly this link's values (latency 2, bandwidth 24, crypto 34).
        own = _sent(directory, socket, OWN_V4)
        assert "(64511,2) (64511,24) (64511,34)" in own, own
        # Already worse on the path: stays worse, the better ones go.
        worse = _sent(directory, socket, WORSE)
        assert "(64511,5) (64511,22) (64511,31)" in worse, worse
        for better in ("(64511,1)", "(64511,2)", "(64511,24)", "(64511,26)", "(64511,34)"):
            assert better not in worse, worse
        # Outside the peer's export sets: not sent at all.
        assert "198.51.100.0/24" not in _sent(directory, socket, "198.51.100.0/24")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
