"""`ibgp-tunnel graph --lab` against a real lab: a healthy example lab is drawn
all green, and with the link's WireGuard port blocked on the reflector that link,
and only that link, turns red, its tooltip naming the port.

The lab is this file's own (state directory <test lab dir>-graph, namespaces
<test prefix>g-*), so neither a user's lab nor the other lab tests' is touched.
It runs the BIRD that IBGP_TUNNEL_BIRD_DIR names (BIRD 3 by default, see labtools);
CI runs it again on BIRD 2. Nothing waits for a fixed time: every condition is
polled with a generous deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphtools import DOT_MISSING, SVG, XLINK, groups, parse_svg, stroke_colours
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    environment,
    poll,
    skip_reason,
)

from ibgp_tunnel.graph.state import COLOURS, State
from ibgp_tunnel.lab import faults, location
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.up import up

_WHY_NOT = skip_reason() or DOT_MISSING
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))

LAB_DIR = TEST_LAB_DIR + "-graph"
PREFIX = TEST_PREFIX[:-1] + "g-"
REFLECTOR = "dmz"
LINK, INTERFACE, PORT = "pve", "wg-ibgp", 51821
DEADLINE = 90
LINES = ("link:pve", "session:pve", "dn42-link:dmz:peer1", "dn42-session:dmz:peer1")


@pytest.fixture(scope="module")
def lab() -> Iterator[LabState]:
    keys = str(REPO / "secrets" / "test-age-key.txt")
    with environment(
        **{location.LAB_DIR_ENV: LAB_DIR, location.PREFIX_ENV: PREFIX, "SOPS_AGE_KEY_FILE": keys}
    ):
        down()  # what an interrupted run of these tests left behind, nothing else
        try:
            yield up(EXAMPLE_PLAN, timeout=120, secrets_dir=REPO / "secrets" / "test")
        finally:
            down()


def _graph(tmp_path: Path) -> dict[str, ET.Element]:
    """`ibgp-tunnel graph --lab -o FILE` as a user runs it (its own process)."""
    out = tmp_path / "lab.svg"
    done = subprocess.run(
        [sys.executable, "-m", "ibgp_tunnel.cli", "graph", "--lab", "-o", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, location.LAB_DIR_ENV: LAB_DIR, location.PREFIX_ENV: PREFIX},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return groups(parse_svg(out.read_text(encoding="utf-8")))


def _colours(found: dict[str, ET.Element]) -> dict[str, set[str]]:
    return {line: stroke_colours(found[line]) for line in LINES}


def _tooltip(found: dict[str, ET.Element], element: str) -> str:
    anchor = found[f"a_{element}"].find(f"{SVG}a")
    assert anchor is not None, f"{element} has no tooltip"
    return anchor.get(f"{XLINK}title", "")


def test_a_blocked_link_turns_red_and_only_it(lab: LabState, tmp_path: Path) -> None:
    green = {COLOURS[State.OK]}

    def all_green() -> dict[str, ET.Element] | None:
        found = _graph(tmp_path)
        return found if all(c == green for c in _colours(found).values()) else None

    healthy = poll(all_green, DEADLINE, "graph --lab draws every line green", interval=1)
    for host in ("host:dmz", "host:pve"):
        assert "state-ok" in str(healthy[host].get("class")), host

    faults.block_tunnel(lab, REFLECTOR, INTERFACE)
    try:
        found = _graph(tmp_path)
        assert stroke_colours(found["link:pve"]) == {COLOURS[State.FAIL]}
        assert "state-fail" in str(found["link:pve"].get("class"))
        assert f"udp/{PORT}" in _tooltip(found, "link:pve")
        # The DN42 peer's tunnel on the same host is not blocked: still green.
        assert stroke_colours(found["dn42-link:dmz:peer1"]) == green
        assert "state-fail" in str(found["host:dmz"].get("class"))
    finally:
        faults.unblock_tunnel(lab, REFLECTOR)
    poll(all_green, DEADLINE, "graph --lab is all green again once unblocked", interval=1)
