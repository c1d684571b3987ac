"""Faults in the lab: after each the system returns to the expected routes, and
throughout it neither kernel holds a default route or a prefix outside its
configured sets.

One lab for this module, of a copy of the example plan whose [tuning] sets a small
import limit (for the overflow test; every other key keeps its default). Tests
assert behaviour, never timings: they poll with generous deadlines, and where
speed is the point (BFD) they ask BIRD what ended the session.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labtools import (
    EXAMPLE_PLAN,
    KernelWatch,
    bgp_networks,
    birdc,
    clear_test_lab,
    kernel_prefixes,
    outside_sets,
    ping,
    poll,
    skip_reason,
    with_dn42_import_limit,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import daemons, faults, state
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import parse_protocols, sessions_established
from ibgp_tunnel.lab.topology import (
    Artifacts,
    Topology,
    build_topology,
    expected_client_routes,
    expected_kernel_routes,
)
from ibgp_tunnel.lab.up import up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

REFLECTOR, CLIENT, LAN, DN42 = "dmz", "pve", "lan-pve", "dn42"
IMPORT_LIMIT = 20
# Generous: a slow CI machine, BIRD 2.0.12's occasional 3 s event-loop stall,
# WireGuard's 5 s handshake retry and the 5 s graceful restart time all fit.
DEADLINE = 60


@dataclass
class Lab:
    st: LabState
    plan: dict[str, Any]
    topo: Topology
    # host -> every prefix BIRD should have installed in its kernel when all is well.
    expected: dict[str, set[str]]
    # What the DN42 peer contributes to the client's kernel.
    dn42_routes: set[str]
    # What `up` rendered, with the core's route model.
    artifacts: Artifacts


def _expected(artifacts: Artifacts, topo: Topology) -> tuple[dict[str, set[str]], set[str]]:
    """From the core's route model (`up` saved it with the artifacts)."""
    client = expected_client_routes(artifacts, CLIENT)
    peer = topo.dn42_peers[0]
    dn42 = set(peer.announce_ipv4) | set(peer.announce_ipv6)
    return {
        CLIENT: client["ipv4"] | client["ipv6"],
        REFLECTOR: expected_kernel_routes(artifacts, REFLECTOR),
    }, ((client["ipv4"] | client["ipv6"]) & dn42)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    clear_test_lab()
    plan_path = tmp_path_factory.mktemp("faults") / "plan.toml"
    plan_path.write_text(
        with_dn42_import_limit(EXAMPLE_PLAN.read_text(), IMPORT_LIMIT)
        + f"\n[tuning]\nimport_limit = {IMPORT_LIMIT}\n"
    )
    try:
        st = up(plan_path, timeout=60)
        plan = planfile.load(plan_path)
        topo = build_topology(plan)
        artifacts = saved_artifacts(Path(st.lab_dir))
        expected, dn42_routes = _expected(artifacts, topo)
        lab = Lab(st, plan, topo, expected, dn42_routes, artifacts)
        _wait_settled(lab)
        yield lab
    finally:
        down()


def _settled(lab: Lab) -> bool:
    established, _ = sessions_established(lab.st)
    return (
        established
        and all(kernel_prefixes(lab.st, host) == routes for host, routes in lab.expected.items())
        # Routes are not enough: after a reflector's wireguard-go restart they stay
        # (graceful restart) while the tunnel carries nothing until the client's
        # WireGuard makes a new handshake.
        and ping(lab.st, LAN, _dn42_address(lab))
    )


def _wait_settled(lab: Lab) -> None:
    """Every session up, every BIRD past recovery, both kernels exactly as expected,
    and LAN traffic to DN42 crossing the tunnel."""

    def report() -> str:
        return "; ".join(
            f"{host}: missing {sorted(routes - kernel_prefixes(lab.st, host))}, "
            f"extra {sorted(kernel_prefixes(lab.st, host) - routes)}"
            for host, routes in lab.expected.items()
        )

    try:
        poll(lambda: _settled(lab), DEADLINE, "back to the expected routes")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {report()}; {sessions_established(lab.st)[1]}") from None


def _assert_nothing_leaked(lab: Lab, watch: KernelWatch) -> None:
    for host in watch.nodes:
        assert watch.samples[host], f"no sample of {host}'s kernel was taken"
        leaked = outside_sets(lab.plan, host, watch.seen(host))
        assert not leaked, f"{host}'s kernel held {sorted(leaked)} at some point"


def _session(lab: Lab, host: str, name: str) -> tuple[str, str]:
    """(state, info) of one protocol, e.g. ("start", "Active  Error: BFD session down")."""
    rows = parse_protocols(birdc(lab.st, host, "show", "protocols", name))
    row = next(r for r in rows if r.name == name)
    return row.state, row.info


def _dn42_address(lab: Lab) -> str:
    # Only the tunnel leads there: the client's own uplink knows no DN42 route.
    return str(ipaddress.ip_network(lab.topo.dn42_peers[0].announce_ipv4[0]).network_address + 1)


def test_the_lab_starts_settled_and_clean(lab: Lab) -> None:
    assert lab.dn42_routes, "the DN42 peer should reach the client's kernel"
    for host in (CLIENT, REFLECTOR):
        assert not outside_sets(lab.plan, host, kernel_prefixes(lab.st, host))
    assert ping(lab.st, LAN, _dn42_address(lab), count=2)


def test_tunnel_blocked_then_unblocked(lab: Lab) -> None:
    """BFD ends the session long before the 9 s hold timer could; the routes go after
    the graceful restart time and come back when the tunnel does."""
    hold = str(lab.plan.get("tuning", {}).get("hold_time", 9))
    assert f"hold time {hold};" in (Path(lab.st.lab_dir) / "nodes/pve/bird.conf").read_text()
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        faults.block_tunnel(lab.st, REFLECTOR)
        try:
            poll(
                lambda: _session(lab, CLIENT, "ibgp_dmz")[0] != "up",
                DEADLINE,
                "the client's session leaves Established",
            )
            # What ended it, in BIRD's words: BFD, not the hold timer.
            assert "BFD session down" in _session(lab, CLIENT, "ibgp_dmz")[1]
            poll(
                lambda: not kernel_prefixes(lab.st, CLIENT) & lab.expected[CLIENT],
                DEADLINE,
                "the client withdraws the reflector's routes",
            )
            assert "BFD session down" in _session(lab, CLIENT, "ibgp_dmz")[1]
            assert not ping(lab.st, LAN, _dn42_address(lab), count=1)
        finally:
            faults.unblock_tunnel(lab.st, REFLECTOR)
        _wait_settled(lab)
    _assert_nothing_leaked(lab, watch)
    assert ping(lab.st, LAN, _dn42_address(lab), count=2)


@pytest.mark.parametrize("host", [CLIENT, REFLECTOR])
def test_wireguard_daemon_restarted(lab: Lab, host: str) -> None:
    _, old = next((i, d) for i, d in enumerate(lab.st.daemons) if d.name.startswith(f"{host}/wi"))
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        faults.restart_wireguard(lab.st, host)
        _wait_settled(lab)
    _assert_nothing_leaked(lab, watch)
    # The state file names the new daemon, so `lab down` stops it.
    recorded = next(d for d in state.load().daemons if d.name == old.name)  # type: ignore[union-attr]
    assert recorded.pid != old.pid and daemons.alive(recorded) and not daemons.alive(old)
    assert ping(lab.st, LAN, _dn42_address(lab), count=2)


@pytest.mark.parametrize("host", [CLIENT, REFLECTOR])
def test_bird_killed_and_restarted(lab: Lab, host: str) -> None:
    """kill -9, then `bird -R` as systemd would: graceful restart (and BFD down
    starting it, not ending it) keeps the client's routes in its kernel throughout."""
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        faults.crash_bird(lab.st, host)
        _wait_settled(lab)
    _assert_nothing_leaked(lab, watch)
    assert not watch.missing(CLIENT, lab.expected[CLIENT])
    assert not watch.missing(REFLECTOR, lab.expected[REFLECTOR])
    recorded = next(d for d in state.load().daemons if d.name == f"{host}/bird")  # type: ignore[union-attr]
    assert daemons.alive(recorded)


def test_graceful_restart_of_the_reflector_keeps_the_clients_routes(lab: Lab) -> None:
    """Our bird.service restart (`birdc graceful restart`, `bird -R`): neither kernel
    ever misses a route, sampled all through the restart and the recovery."""
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        faults.restart_bird(lab.st, REFLECTOR)
        _wait_settled(lab)
    assert len(watch.samples[CLIENT]) > 3
    assert not watch.missing(CLIENT, lab.expected[CLIENT])
    assert not watch.missing(REFLECTOR, lab.expected[REFLECTOR])
    _assert_nothing_leaked(lab, watch)


def _helping_a_restart(lab: Lab) -> bool:
    """Whether the client treats the reflector as restarting (graceful restart: it keeps
    the reflector's routes as stale until the restart time runs out)."""
    out = birdc(lab.st, CLIENT, "show", "protocols", "all", "ibgp_dmz")
    return "Neighbor graceful restart active" in out


def _kernel_exported(lab: Lab, host: str) -> int:
    """Routes BIRD's kernel protocols on `host` say they exported to the kernel."""
    total = 0
    for protocol in ("kernel4", "kernel6"):
        out = birdc(lab.st, host, "show", "protocols", "all", protocol)
        found = re.search(r"Routes:\s+\d+ imported, (\d+) exported", out)
        total += int(found.group(1)) if found else 0
    return total


def test_stop_for_good_is_clean_while_a_graceful_restart_keeps_the_routes(lab: Lab) -> None:
    """The two ways BIRD can go, on the same reflector. `birdc graceful restart` (a
    restart): its kernel keeps its routes, and the client, helping the restart, keeps
    the reflector's all through it. `birdc down` (a stop for good): BIRD removes every
    route it installed before it exits, and the client, told by a Cease that no restart
    is coming, withdraws the reflector's routes at once instead of keeping them for the
    restart time."""
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        try:
            faults.graceful_stop(lab.st, REFLECTOR)
            assert lab.expected[REFLECTOR] <= kernel_prefixes(lab.st, REFLECTOR)
            poll(lambda: _helping_a_restart(lab), DEADLINE, "the client helps the restart")
        finally:
            faults.start_bird(lab.st, REFLECTOR)
            _wait_settled(lab)
    assert not watch.missing(CLIENT, lab.expected[CLIENT])
    assert not watch.missing(REFLECTOR, lab.expected[REFLECTOR])

    helped = []
    # BIRD removes at `down` only the kernel routes its kernel protocols own: after
    # the restart with -R, wait until they have taken over the kept ones (BIRD 3 writes
    # its kernel table a scan after recovery), or a stop would race that take-over.
    poll(lambda: _kernel_exported(lab, REFLECTOR) >= len(lab.expected[REFLECTOR]), DEADLINE,
         "the reflector's kernel protocols owning its routes")  # fmt: skip
    try:
        faults.stop_bird(lab.st, REFLECTOR)  # returns when every thread has exited
        assert not kernel_prefixes(lab.st, REFLECTOR), "birdc down left routes behind"

        def withdrawn() -> bool:
            # Sampled until the routes are gone: a graceful restart would keep them
            # (and show) for the whole 5 s restart time.
            helped.append(_helping_a_restart(lab))
            return not kernel_prefixes(lab.st, CLIENT)

        poll(withdrawn, DEADLINE, "the client withdraws the stopped reflector's routes", 0.05)
        assert not any(helped), "the client kept the routes of a BIRD stopped for good"
        assert _session(lab, CLIENT, "ibgp_dmz")[0] != "up"
        assert not ping(lab.st, LAN, _dn42_address(lab), count=1)
    finally:
        faults.start_bird(lab.st, REFLECTOR)
        _wait_settled(lab)


def test_reload_changes_nothing(lab: Lab) -> None:
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        faults.reload_bird(lab.st, REFLECTOR)
        faults.reload_bird(lab.st, CLIENT)
        _wait_settled(lab)
    assert not watch.missing(CLIENT, lab.expected[CLIENT])
    _assert_nothing_leaked(lab, watch)


def test_dn42_peer_flapping(lab: Lab) -> None:
    """One flap watched through (the DN42 routes leave the client, then return), then
    several in a row; the other routes stay put all along."""
    others = lab.expected[CLIENT] - lab.dn42_routes
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        try:
            faults.set_dn42_session(lab.st, False)
            poll(
                lambda: not kernel_prefixes(lab.st, CLIENT) & lab.dn42_routes,
                DEADLINE,
                "the DN42 routes leave the client",
            )
            assert kernel_prefixes(lab.st, CLIENT) == others
            faults.set_dn42_session(lab.st, True)
            poll(
                lambda: kernel_prefixes(lab.st, CLIENT) == lab.expected[CLIENT],
                DEADLINE,
                "the DN42 routes return",
            )
            for _ in range(3):
                faults.set_dn42_session(lab.st, False)
                faults.set_dn42_session(lab.st, True)
        finally:
            faults.set_dn42_session(lab.st, True)
        _wait_settled(lab)
    assert not watch.missing(CLIENT, others)
    _assert_nothing_leaked(lab, watch)


def test_import_limit_overflow_from_the_dn42_peer(lab: Lab) -> None:
    """The peer announces more than the limit: the reflector keeps exactly the limit
    (action block), the client never holds more than its own limit nor anything
    outside its sets, and the routes it had stay."""
    extra = IMPORT_LIMIT + 10
    with KernelWatch(lab.st, (CLIENT, REFLECTOR)) as watch:
        try:
            faults.announce_extra_routes(lab.st, extra, extra)
            poll(
                lambda: (
                    birdc(lab.st, REFLECTOR, "show", "protocols", "all", "dn42_peer1").count(
                        f"{IMPORT_LIMIT} [HIT]"
                    )
                    == 2
                ),
                DEADLINE,
                "the import limit hits for IPv4 and IPv6",
            )
            for table in ("master4", "master6"):
                poll(
                    lambda table=table: (
                        len(bgp_networks(lab.st, REFLECTOR, "dn42_peer1", table)) == IMPORT_LIMIT
                    ),
                    DEADLINE,
                    f"the reflector holds {IMPORT_LIMIT} DN42 routes in {table}",
                )
            poll(
                lambda: len(kernel_prefixes(lab.st, CLIENT)) > len(lab.expected[CLIENT]),
                DEADLINE,
                "some of the extra routes reach the client",
            )
            assert lab.expected[CLIENT] <= kernel_prefixes(lab.st, CLIENT)
        finally:
            faults.announce_extra_routes(lab.st, 0, 0)
        _wait_settled(lab)
    _assert_nothing_leaked(lab, watch)
    for sample in watch.samples[CLIENT]:
        for family in (":", "."):
            assert len({p for p in sample if family in p}) <= IMPORT_LIMIT
