"""A DN42 peer's own limits in the lab (issue 22 item 4): the lab's DN42 peer (its
own BIRD behind the module's WireGuard tunnel) announces more routes than the small
import_limit, or receive_limit, the test plan gives it. Our session blocks (tuning's
action `block`): it keeps the routes it had, takes no new ones beyond the limit and
stays up; `ibgp-tunnel doctor` names the peer, the family, the limit and the fix,
and the fix it gives (`birdc restart`, once the flood is gone) clears the mark.

One lab per limit kind, the example plan with only peer1's limit changed. BIRD 3
unless IBGP_TUNNEL_BIRD_DIR names another (run again with .cache/bird/bird2/bin for
BIRD 2). Its own lab directory and namespace prefix, beside the other lab tests'."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from labtools import (
    EXAMPLE_ROA_FILES_PLAN,
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    bgp_networks,
    birdc,
    lab_up,
    poll,
    run_doctor,
    skip_reason,
)
from test_dn42_core import _plan

from ibgp_tunnel.lab import dn42lab, faults

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-dn42l"
PREFIX = TEST_PREFIX[:-1] + "l-"
REFLECTOR, PEER, SESSION = "dmz", "dn42", "dn42_peer1"
TABLES = {"ipv4": "master4", "ipv6": "master6"}
# Above what the lab peer announces when all is well, far below the 9000 default.
LIMIT = 20
EXTRA = LIMIT + 15
# Polled conditions get a generous deadline on a loaded machine; timings go in bench/.
DEADLINE = 90


@pytest.fixture(scope="module", params=["import", "receive"])
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Lab]]:
    kind = str(request.param)
    # ROA files, not the example's RTR: with RTR's `import table` BIRD counts the
    # peer's ROA-invalid routes towards a receive limit too, so how many valid ones
    # fit under it would depend on the order they arrive in.
    plan_path = _plan(
        tmp_path_factory.mktemp(f"dn42-{kind}-limit"),
        EXAMPLE_ROA_FILES_PLAN,
        **{f"{kind}_limit": LIMIT},
    )
    with lab_up(plan_path, LAB_DIR, PREFIX) as env:
        yield kind, env


def _peer(env: Lab) -> dn42lab.Dn42Peer:
    (peer,) = env.topo.dn42_peers
    assert peer.tunnel is not None
    return peer


def _limit_line(env: Lab, kind: str, family: str) -> str:
    """The channel's `<Kind> limit:` line of `birdc show protocols all`."""
    out = birdc(env.st, REFLECTOR, "show", "protocols", "all", SESSION)
    channel = out.split(f"Channel {family}", 1)[1].split("Channel ", 1)[0]
    (line,) = [ln.strip() for ln in channel.splitlines() if f"{kind.capitalize()} limit:" in ln]
    return line


def _established(env: Lab) -> bool:
    return "Established" in birdc(env.st, REFLECTOR, "show", "protocols", SESSION)


def _doctor_checks(env: Lab, kind: str) -> dict[str, dict[str, Any]]:
    done = run_doctor(REFLECTOR, LAB_DIR, PREFIX)
    report = json.loads(done.stdout)
    return {
        c["id"]: c for c in report["checks"] if c["id"].startswith(f"bgp.{kind}-limit {SESSION} ")
    }


def _baseline(env: Lab) -> dict[str, set[str]]:
    """What the peer announces when all is well, as the reflector holds it."""
    peer = _peer(env)
    wanted = {"ipv4": set(peer.announce_ipv4), "ipv6": set(peer.announce_ipv6)}
    for family, table in TABLES.items():
        poll(
            lambda family=family, table=table: (
                # ROA-invalid announcements (the lab's hijack) never arrive.
                len(bgp_networks(env.st, REFLECTOR, SESSION, table)) > 0
                and bgp_networks(env.st, REFLECTOR, SESSION, table) <= wanted[family]
            ),
            DEADLINE,
            f"the peer's {family} routes at the reflector",
        )
    return {f: bgp_networks(env.st, REFLECTOR, SESSION, t) for f, t in TABLES.items()}


def test_the_limit_holds_the_peers_flood_and_doctor_names_it(lab: tuple[str, Lab]) -> None:
    kind, env = lab
    poll(lambda: _established(env), DEADLINE, f"{SESSION} established")
    before = _baseline(env)
    for family in TABLES:
        assert len(before[family]) < LIMIT, before
        assert _limit_line(env, kind, family).split()[2] == str(LIMIT)
        assert "[HIT]" not in _limit_line(env, kind, family)
    ok = _doctor_checks(env, kind)
    assert {c["status"] for c in ok.values()} == {"ok"} and len(ok) == 2, ok

    faults.announce_extra_routes(env.st, EXTRA, EXTRA, node=PEER)
    try:
        for family, table in TABLES.items():
            poll(
                lambda family=family: "[HIT]" in _limit_line(env, kind, family),
                DEADLINE,
                f"the {family} {kind} limit is hit",
            )
            poll(
                lambda table=table: len(bgp_networks(env.st, REFLECTOR, SESSION, table)) == LIMIT,
                DEADLINE,
                f"the reflector holds exactly {LIMIT} of the peer's routes in {table}",
            )
            # Blocked, not dropped: what it had stays.
            assert before[family] <= bgp_networks(env.st, REFLECTOR, SESSION, table)
        # `block` keeps the session: the peer is not cut off.
        assert _established(env)
        out = birdc(env.st, REFLECTOR, "show", "protocols", "all", SESSION)
        assert f"{kind.capitalize()} limit:" in out and "Action:       block" in out, out

        checks = _doctor_checks(env, kind)
        for family in TABLES:
            check = checks[f"bgp.{kind}-limit {SESSION} {family}"]
            assert check["status"] == "fail", check
            assert f"{family} {kind} limit ({LIMIT}) is hit" in check["summary"], check
            assert f"{LIMIT} [HIT]" in check["evidence"] and "action block" in check["evidence"]
            # The peer, where its limit is set, and how to take the dropped routes back.
            assert "DN42 peer peer1 (AS4242421080)" in check["fix"], check
            assert f"[hosts.{REFLECTOR}.dn42_peers.peer1]" in check["fix"], check
            assert f"{kind}_limit" in check["fix"], check
            assert f"`birdc restart {SESSION}`" in check["fix"], check
        assert _established(env)
    finally:
        faults.announce_extra_routes(env.st, 0, 0, node=PEER)

    # The flood is gone: the doctor's `birdc restart` clears the mark (BIRD keeps it
    # until then, even for fewer routes or a raised limit).
    for family, table in TABLES.items():
        poll(
            lambda table=table, family=family: (
                bgp_networks(env.st, REFLECTOR, SESSION, table) == before[family]
            ),
            DEADLINE,
            f"the extra {family} routes withdrawn",
        )
    birdc(env.st, REFLECTOR, "restart", SESSION)
    poll(lambda: _established(env), DEADLINE, f"{SESSION} established again")
    for family in TABLES:
        poll(
            lambda family=family: "[HIT]" not in _limit_line(env, kind, family),
            DEADLINE,
            f"the {family} {kind} limit no longer marked hit",
        )
    for family, table in TABLES.items():
        poll(
            lambda table=table, family=family: (
                bgp_networks(env.st, REFLECTOR, SESSION, table) == before[family]
            ),
            DEADLINE,
            f"the peer's {family} routes back after the restart",
        )
    after = _doctor_checks(env, kind)
    assert {c["status"] for c in after.values()} == {"ok"} and len(after) == 2, after
    assert _established(env)
