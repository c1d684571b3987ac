"""doctor's limit lines for a DN42 peer (issue 22 item 4), from the recorded
healthy reflector with its BIRD output edited as BIRD prints limits (a receive
limit's lines come before the import limit's, each with its own Action): the line
names the session's peer, the family, the limit and where the plan sets it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_doctor import EXAMPLE_PLAN, HEALTHY

from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.checks import run_checks
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import parse_snapshot
from ibgp_tunnel.doctor.parse_bird import parse_protocols
from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.run import plan_expectations

RECORDED = "    Import limit:   20\n      Action:       block\n"


def _limits(receive: str, imported: str) -> str:
    return (
        f"    Receive limit:  {receive}\n      Action:       disable\n"
        f"    Import limit:   {imported}\n      Action:       block\n"
    )


@pytest.fixture(scope="module")
def expect(tmp_path_factory: pytest.TempPathFactory) -> Expectations:
    path = tmp_path_factory.mktemp("plan") / "plan.toml"
    anchor = "[hosts.dmz.dn42_peers.peer1]\n"
    text = EXAMPLE_PLAN.read_text()
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, anchor + "import_limit = 20\nreceive_limit = 30\n"))
    return plan_expectations(path, "dmz")


def _checks(expect: Expectations, limits: str) -> dict[str, Check]:
    snap = saved.load(HEALTHY / "dmz")
    output = snap.get("bird_protocols")
    session, rest = output.stdout.split("\ndn42_peer1 ", 1)
    assert rest.count(RECORDED) >= 2, "the recording changed: update RECORDED"
    edited = session + "\ndn42_peer1 " + rest.replace(RECORDED, limits, 2)
    snap.outputs["bird_protocols"] = replace(output, stdout=edited)
    return {c.id: c for c in run_checks(expect, parse_snapshot(snap))}


def test_each_limit_keeps_its_own_action() -> None:
    text = "Name Proto Table State Since Info\nx BGP --- up 1 Established\n  Channel ipv4\n"
    (channel,) = parse_protocols(text + _limits("30 [HIT]", "20")).values()
    limits = channel.channels["ipv4"]
    assert (limits.receive_limit, limits.receive_limit_hit, limits.receive_limit_action) == (
        30,
        True,
        "disable",
    )
    assert (limits.import_limit, limits.import_limit_hit, limits.import_limit_action) == (
        20,
        False,
        "block",
    )


def test_the_route_model_gives_doctor_the_peers_limits(expect: Expectations) -> None:
    (session,) = [s for s in expect.sessions if s.dn42_peer is not None]
    assert (session.dn42_peer, session.import_limit, session.receive_limit) == ("peer1", 20, 30)


def test_a_hit_receive_limit_names_the_peer_family_limit_and_fix(expect: Expectations) -> None:
    checks = _checks(expect, _limits("30 [HIT]", "20"))
    check = checks["bgp.receive-limit dn42_peer1 ipv4"]
    assert check.status is Status.FAIL
    assert "dn42_peer1's ipv4 receive limit (30) is hit" in check.summary
    assert "acts on it (disable)" in check.summary
    assert check.evidence.startswith("Receive limit: 30 [HIT]")
    assert check.fix is not None
    for words in (
        "DN42 peer peer1 (AS4242421080)",
        "ipv4 routes",
        "receive_limit in [hosts.dmz.dn42_peers.peer1]",
        "services.ibgpTunnel.dn42Peers.peer1.receiveLimit",
        "`birdc restart dn42_peer1`",
    ):
        assert words in check.fix, check.fix
    # The import limit next to it is not hit: its own line, its own action.
    assert checks["bgp.import-limit dn42_peer1 ipv4"].status is Status.OK


def test_near_the_limit_is_a_warning_naming_the_peers_setting(expect: Expectations) -> None:
    # The recording's 2 routes per family against a limit of 2.
    checks = _checks(expect, _limits("30", "2"))
    check = checks["bgp.import-limit dn42_peer1 ipv6"]
    assert check.status is Status.WARN, check
    assert check.fix is not None and "[hosts.dmz.dn42_peers.peer1]" in check.fix


def test_an_ibgp_limit_still_points_at_tuning(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(EXAMPLE_PLAN.read_text() + "\n[tuning]\nimport_limit = 20\n")
    snap = saved.load(HEALTHY / "pve")
    output = snap.get("bird_protocols")
    session, rest = output.stdout.split("\nibgp_dmz ", 1)
    hit = rest.replace("Import limit:   20\n", "Import limit:   20 [HIT]\n", 1)
    assert hit != rest, "the recording changed"
    snap.outputs["bird_protocols"] = replace(output, stdout=session + "\nibgp_dmz " + hit)
    checks = run_checks(plan_expectations(path, "pve"), parse_snapshot(snap))
    (found,) = [
        c
        for c in checks
        if c.id.startswith("bgp.import-limit ibgp_dmz ") and c.status is Status.FAIL
    ]
    assert "dmz sends more" in found.fix and "[tuning] import_limit" in found.fix, found
