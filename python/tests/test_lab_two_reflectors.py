"""Two reflectors (issue #13): two VPSes, each with a DN42 peer, two clients linked
to both, both preferring vps1 (python/tests/plans/two-reflectors.toml): their LANs talk
to each other without NAT, so they must order the reflectors alike (`check` says so).

For each fault of one reflector (its BIRD killed, its tunnels blocked, its whole
namespace cut off) and its repair, the clients' kernels are sampled throughout:
  * never a default route or a prefix outside the client's kernel_export_sets;
  * every prefix the other reflector also offers stays installed in every sample
    (it moves to the other tunnel; it never disappears);
  * with the reflector gone, each client routes exactly what the other reflector
    offers, through it, and LAN traffic flows there;
  * once repaired, every prefix is back on its preferred tunnel, having left it at
    most once and taken no path twice (no flapping).
Tests poll against generous deadlines and never assert timings (bench/ does).
Own lab directory and namespace prefix, so no other lab on the machine is touched.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from labtools import (
    TEST_LAB_DIR,
    TEST_PREFIX,
    Watch,
    environment,
    outside_sets,
    ping,
    poll,
    run_doctor,
    skip_reason,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import faults, isolate, location
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.reflectors import client_links, expected_paths, kernel_paths
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import sessions_established
from ibgp_tunnel.lab.topology import Topology, as_kernel_prints, build_topology
from ibgp_tunnel.lab.up import up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

PLAN = Path(__file__).resolve().parent / "plans" / "two-reflectors.toml"
# Beside the other lab tests' lab, named after it, so IBGP_TUNNEL_TEST_LAB_DIR and
# IBGP_TUNNEL_TEST_LAB_PREFIX move it too (two test runs can share a machine).
LAB_DIR = TEST_LAB_DIR + "-2r"
PREFIX = TEST_PREFIX[:-1] + "r-"
CLIENTS = ("home", "office")
# Generous: a loaded 2-core machine, BIRD's error wait and WireGuard handshakes.
DEADLINE = 90


@dataclass
class Lab:
    st: LabState
    plan: dict[str, Any]
    topo: Topology
    # What `up` rendered, with the core's route model (lab/artifacts.py).
    artifacts: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with environment(**{location.LAB_DIR_ENV: LAB_DIR, location.PREFIX_ENV: PREFIX}):
        down()
        try:
            st = up(PLAN, timeout=120)
            plan = planfile.load(PLAN)
            artifacts = saved_artifacts(Path(st.lab_dir))
            yield Lab(st, plan, build_topology(plan, PREFIX), artifacts)
        finally:
            down()


def path_watch(st: LabState, nodes: tuple[str, ...] = CLIENTS) -> Watch[dict[str, str]]:
    """Samples prefix -> tunnel of BIRD's routes in the clients' kernels in a thread."""
    return Watch(st, nodes, kernel_paths)


@dataclass
class Outcome:
    lab: Lab
    failed: str
    watch: Watch[dict[str, str]]
    during: dict[str, dict[str, str]] = field(default_factory=dict)


def _dn42_probe(lab: Lab, reflector: str) -> str:
    peer = next(p for p in lab.topo.dn42_peers if p.reflector == reflector)
    return str(ipaddress.ip_network(peer.announce_ipv4[0]).network_address + 1)


def _paths_are(lab: Lab, down: tuple[str, ...]) -> bool:
    return all(
        kernel_paths(lab.st, client) == expected_paths(lab.plan, lab.artifacts, client, down)
        for client in CLIENTS
    )


def _report(lab: Lab, down: tuple[str, ...]) -> str:
    parts = []
    for client in CLIENTS:
        have = kernel_paths(lab.st, client)
        want = expected_paths(lab.plan, lab.artifacts, client, down)
        wrong = {p: (have.get(p), want.get(p)) for p in set(have) | set(want)}
        wrong = {p: v for p, v in wrong.items() if v[0] != v[1]}
        parts.append(f"{client}: (have, want) {sorted(wrong.items())}")
    return "; ".join(parts)


def _wait_paths(lab: Lab, down: tuple[str, ...], what: str) -> None:
    try:
        poll(lambda: _paths_are(lab, down), DEADLINE, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {_report(lab, down)}") from None


def _lans_reach(lab: Lab, reflector: str) -> bool:
    """Both LANs reach the DN42 peer behind `reflector`, the route-via-VPS probe, and
    each other (LAN to LAN, no NAT: through the reflectors both ways)."""
    targets = [_dn42_probe(lab, reflector), *lab.topo.probes[reflector]]
    lans = {lan.router: lan.ipv4 for lan in lab.topo.lan_clients}
    return all(ping(lab.st, f"lan-{c}", target) for c in CLIENTS for target in targets) and all(
        ping(lab.st, f"lan-{c}", lans[other]) for c in CLIENTS for other in CLIENTS if other != c
    )


def _wait_whole(lab: Lab) -> None:
    poll(lambda: sessions_established(lab.st)[0], DEADLINE, "every BGP session Established")
    # Both reflectors' sides of the tunnels carry traffic again.
    for reflector in ("vps1", "vps2"):
        poll(lambda r=reflector: _lans_reach(lab, r), DEADLINE, f"LANs reach via {reflector}")
    # Last: right after a restart the old paths may still look right for a moment.
    _wait_paths(lab, (), "every prefix back on its preferred tunnel")


def _run_fault(
    lab: Lab, failed: str, fail: Callable[[], None], repair: Callable[[], None]
) -> Outcome:
    _wait_whole(lab)
    other = "vps2" if failed == "vps1" else "vps1"
    with path_watch(lab.st) as watch:
        fail()
        try:
            _wait_paths(lab, (failed,), f"clients on {other} alone")
            outcome = Outcome(lab, failed, watch, {c: kernel_paths(lab.st, c) for c in CLIENTS})
            # Traffic flows through the other reflector, to its DN42 peer and out of it.
            poll(lambda: _lans_reach(lab, other), DEADLINE, f"LANs reach via {other}")
        finally:
            repair()
        _wait_whole(lab)
    _assert_clean(outcome)
    return outcome


def _assert_clean(outcome: Outcome) -> None:
    lab, watch = outcome.lab, outcome.watch
    for client in CLIENTS:
        samples = watch.samples[client]
        assert len(samples) > 2, f"too few samples of {client}'s kernel"
        seen = set().union(*(set(s) for s in samples))
        leaked = outside_sets(lab.plan, client, seen)
        assert not leaked, f"{client}'s kernel held {sorted(leaked)} at some point"
        whole = expected_paths(lab.plan, lab.artifacts, client)
        alone = expected_paths(lab.plan, lab.artifacts, client, (outcome.failed,))
        assert seen <= set(whole), f"{client} held unexpected {sorted(seen - set(whole))}"
        # What the other reflector offers too never leaves the kernel.
        for index, sample in enumerate(samples):
            lost = set(alone) - set(sample)
            assert not lost, f"{client} lacked {sorted(lost)} at sample {index}/{len(samples)}"
        # Each prefix leaves its preferred tunnel at most once and comes back to stay,
        # never taking a tunnel twice: no flapping between the tunnels. Moments without
        # the route do not count (what the other reflector offers too was never
        # missing, above); a prefix only the failed reflector offers may pass through
        # the other tunnel while going (the twin's copy outlives the direct one by a
        # BFD detection) and coming back (the restarted reflector's twin passes it on
        # a moment before the reflector itself does), and is missing in between.
        for prefix, preferred in whole.items():
            path = [s.get(prefix, "-") for s in samples]
            moves = [
                (round(watch.times[client][i], 2), p)
                for i, p in enumerate(path)
                if i == 0 or p != path[i - 1]
            ]
            tunnels = [p for _, p in moves if p != "-"]
            changes = [p for i, p in enumerate(tunnels) if i == 0 or p != tunnels[i - 1]]
            assert changes[0] == preferred and changes[-1] == preferred, (prefix, moves)
            between = changes[1:-1]
            assert preferred not in between and len(set(between)) == len(between), (
                f"{client} {prefix} flapped: {moves}"
            )


def test_starts_on_the_preferred_tunnels(lab: Lab) -> None:
    _wait_whole(lab)
    for client in CLIENTS:
        preferred = client_links(lab.plan, client)[0]
        paths = kernel_paths(lab.st, client)
        # The prefixes both reflectors offer (the route-via-VPS set, the other LAN)
        # go through the preferred one, as the plan says.
        shared = set(expected_paths(lab.plan, lab.artifacts, client, ("vps1",))) & set(
            expected_paths(lab.plan, lab.artifacts, client, ("vps2",))
        )
        assert shared, f"{client}: both reflectors should offer something"
        assert {paths[p] for p in shared} == {preferred.interface}
        assert not outside_sets(lab.plan, client, set(paths))


@pytest.mark.parametrize("failed", ["vps1", "vps2"])
def test_reflector_bird_killed_then_restarted(lab: Lab, failed: str) -> None:
    # vps1 is every client's preferred reflector (routes move away and back); vps2
    # the fallback (its own DN42 peer's routes go and return, the rest stays).
    _run_fault(
        lab,
        failed,
        lambda: faults.kill_bird(lab.st, failed),
        lambda: faults.start_bird(lab.st, failed),
    )


def test_reflector_tunnels_blocked_then_unblocked(lab: Lab) -> None:
    _run_fault(
        lab,
        "vps1",
        lambda: faults.block_tunnel(lab.st, "vps1"),
        lambda: faults.unblock_tunnel(lab.st, "vps1"),
    )


def test_reflector_cut_off_then_reconnected(lab: Lab) -> None:
    _run_fault(
        lab,
        "vps1",
        lambda: isolate.cut_off(lab.st, "vps1"),
        lambda: isolate.reconnect(lab.st, "vps1"),
    )


def _lan_prefixes(lab: Lab, owner: str, viewer: str) -> set[str]:
    """`owner`'s announced LAN prefixes as `viewer`'s kernel prints them."""
    announce = lab.plan["hosts"][owner].get("announce", {})
    return {as_kernel_prints(p) for family in ("ipv4", "ipv6") for p in announce.get(family, [])}


@pytest.mark.parametrize("blocked", ["home-vps1", "home-vps2"])
def test_a_client_cut_from_one_reflector_keeps_every_route_through_the_other(
    lab: Lab, blocked: str
) -> None:
    """Only home's tunnel to one reflector is blocked; both reflectors stay up and
    linked to each other. Home keeps every route it had, all through its remaining
    tunnel: what only the cut-off reflector's DN42 peer offers now comes second-hand
    (cut-off reflector -> twin -> home). Office reaches home's LAN through the
    reflector home still reaches directly, not second-hand through the other, so
    traffic between the LANs takes the same reflector both ways (a stateful firewall
    in the middle sees the whole flow). Every LAN reaches both DN42 peers."""
    _wait_whole(lab)
    links = {link.name: link for link in client_links(lab.plan, "home")}
    cut = links[blocked]
    (kept,) = (link for name, link in links.items() if name != blocked)
    whole = expected_paths(lab.plan, lab.artifacts, "home")
    home_lan = _lan_prefixes(lab, "home", "office")
    office_whole = expected_paths(lab.plan, lab.artifacts, "office")
    office_links = {link.reflector: link.interface for link in client_links(lab.plan, "office")}
    office_wanted = {
        prefix: office_links[kept.reflector] if prefix in home_lan else interface
        for prefix, interface in office_whole.items()
    }
    assert any(interface == cut.interface for interface in whole.values()), whole
    with path_watch(lab.st) as watch:
        faults.block_tunnel(lab.st, "home", cut.interface)
        try:
            poll(
                lambda: kernel_paths(lab.st, "home") == dict.fromkeys(whole, kept.interface),
                DEADLINE,
                f"home routes everything through {kept.interface}",
            )
            poll(
                lambda: kernel_paths(lab.st, "office") == office_wanted,
                DEADLINE,
                f"office reaches home's LAN through {kept.reflector}",
            )
            lans = {lan.router: lan.ipv4 for lan in lab.topo.lan_clients}
            targets = [_dn42_probe(lab, "vps1"), _dn42_probe(lab, "vps2")]
            poll(
                lambda: (
                    all(ping(lab.st, "lan-home", t) for t in [*targets, lans["office"]])
                    and all(ping(lab.st, "lan-office", t) for t in [*targets, lans["home"]])
                ),
                DEADLINE,
                "both LANs reach both DN42 peers and each other",
            )
        finally:
            faults.unblock_tunnel(lab.st, "home")
        _wait_whole(lab)
    # Home never lacked a route: the second-hand copy was in its BIRD all along.
    for index, sample in enumerate(watch.samples["home"]):
        lost = set(whole) - set(sample)
        assert not lost, f"home lacked {sorted(lost)} at sample {index}"
    assert not outside_sets(lab.plan, "home", set().union(*watch.samples["home"]))


def test_graceful_restart_of_a_reflector_keeps_every_route(lab: Lab) -> None:
    """`systemctl restart bird` on the preferred reflector: routes may move to the
    other one for the restart and back, but none is ever missing."""
    _wait_whole(lab)
    with path_watch(lab.st) as watch:
        faults.restart_bird(lab.st, "vps1")
        # Whether the routes move to vps2 for the restart is a race: the clients'
        # BFD noticing the silence first drops them (`bfd on`), the closed TCP
        # session noticed first keeps them stale (graceful restart) until the new
        # BIRD refreshes them. Either way none may be missing, and they end on vps1
        # once every session is Established again.
        _wait_whole(lab)
    _assert_clean(Outcome(lab, "vps1", watch))


def _doctor(host: str) -> dict[str, Any]:
    done = run_doctor(host, LAB_DIR, PREFIX)
    try:
        return dict(json.loads(done.stdout))
    except json.JSONDecodeError:
        raise AssertionError(f"doctor on {host}: {done.stdout}{done.stderr}") from None


@pytest.mark.parametrize("host", ["vps1", "vps2", *CLIENTS])
def test_doctor_finds_every_host_of_two_linked_reflectors_healthy(lab: Lab, host: str) -> None:
    """`ibgp-tunnel doctor` on a live host of this plan: the sessions to both
    reflectors (and, on a reflector, the one to its twin), their BFD, tunnels,
    kernel routes and firewall rules all as the core renders them."""
    _wait_whole(lab)
    report: dict[str, Any] = {}

    def healthy() -> bool:
        report.update(_doctor(host))
        return bool(report["ok"]) and all(c["status"] == "ok" for c in report["checks"])

    try:
        poll(healthy, DEADLINE, f"doctor finds {host} healthy", interval=1)
    except AssertionError as error:
        bad = [c for c in report.get("checks", []) if c["status"] != "ok"]
        raise AssertionError(f"{error}: {json.dumps(bad, indent=1)}") from None
    sessions = {c["id"] for c in report["checks"] if c["id"].startswith("bgp.session")}
    peers = {"vps1", "vps2"} - {host} if host in ("vps1", "vps2") else {"vps1", "vps2"}
    for peer in peers:
        assert any(peer in session for session in sessions), (peer, sessions)
