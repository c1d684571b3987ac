"""Doctor on outputs recorded from the lab (python/tests/data/doctor, written by
test_doctor_lab.py with IBGP_TUNNEL_DOCTOR_RECORD) on BIRD 3.1.8 and 2.0.12: each
tool's output parses, a healthy lab is all ok, and each broken lab's first failing
line names what was broken. These run anywhere nix-instantiate does: no root, no lab.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.checks import run_checks
from ibgp_tunnel.doctor.collect import Snapshot
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import parse_snapshot
from ibgp_tunnel.doctor.parse_bird import (
    parse_bfd_sessions,
    parse_protocols,
    parse_route_count,
    parse_status,
)
from ibgp_tunnel.doctor.parse_ip import parse_addresses, parse_links, parse_routes
from ibgp_tunnel.doctor.parse_nft import parse_ruleset
from ibgp_tunnel.doctor.parse_sysctl import parse_sysctl
from ibgp_tunnel.doctor.parse_wg import HIDDEN, parse_wg_dump
from ibgp_tunnel.doctor.result import Status
from ibgp_tunnel.doctor.run import plan_expectations

DATA = Path(__file__).resolve().parent / "data" / "doctor"
# The recordings in data/doctor were made from the example plan (test_doctor_lab.py
# with IBGP_TUNNEL_DOCTOR_RECORD): re-record them when its rendered hosts change.
EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "hosts" / "plan.toml"
BIRDS = ("bird-3.1.8", "bird-2.0.12")
IMPORT_LIMIT = 20  # as in test_doctor_lab.py's plan

# case -> host -> (the first failing check's id starts with, words its line holds)
FIRST_FAILURES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "udp-blocked-on-reflector": {"dmz": ("firewall.port udp/51821", ("pitfall 1",))},
    "forward-accept-deleted": {"dmz": ("firewall.forward wg-ibgp", ("pitfall 2",))},
    "masquerade-dropped": {"pve": ("firewall.masquerade vmbr0 -> wg-ibgp", ("pitfall 3",))},
    "ipv6-next-hop-removed": {
        "dmz": ("tunnel.addresses wg-ibgp", ("global IPv6", "pitfall 4")),
        "pve": ("bgp.ipv6-next-hop ibgp_dmz", ("pitfall 4",)),
    },
    "strict-rp-filter": {"pve": ("rp_filter wg-ibgp", ("rp_filter=2",))},
    "peer-key-swapped": {"pve": ("wireguard.peer-key wg-ibgp dmz", ("ibgp-tunnel keys",))},
    "bird-stopped": {"pve": ("bird.running", ("systemctl start bird",))},
    "wrong-peer-asn": {
        "pve": ("bgp.session ibgp_dmz", ("Bad peer AS", "expects AS 4242420039")),
        "dmz": ("bgp.session ibgp_pve", ("Received: Bad peer AS",)),
    },
    "bfd-blocked": {"pve": ("firewall.port udp/4784 wg-ibgp", ("drops BFD",))},
    "overlapping-address": {"pve": ("tunnel.overlap wg-ibgp 10.255.255.0/30", ("vmbr0",))},
    "uplink-mtu-lowered": {"pve": ("tunnel.mtu wg-ibgp", ("mtu 1340",))},
    "import-limit-flooded": {"dmz": ("bgp.import-limit dn42_peer1 ipv4", ("(20) is hit",))},
    "kernel-routes-flushed": {"pve": ("routes.kernel kernel4", ("birdc reload out kernel4",))},
    "recovery-without-reflector": {"pve": ("bgp.session ibgp_dmz", ("Connection refused",))},
}


@pytest.fixture(scope="module")
def expect(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Expectations]:
    plan = tmp_path_factory.mktemp("plan") / "plan.toml"
    plan.write_text(
        EXAMPLE_PLAN.read_text()
        + f"\n[tuning]\nimport_limit = {IMPORT_LIMIT}\ngraceful_restart_wait = 300\n"
    )
    return {host: plan_expectations(plan, host) for host in ("dmz", "pve")}


def _snapshot(bird: str, case: str, host: str) -> Snapshot:
    return saved.load(DATA / bird / case / host)


def test_every_case_was_recorded_on_both_birds() -> None:
    for bird in BIRDS:
        cases = {p.name for p in (DATA / bird).iterdir()}
        assert cases == {*FIRST_FAILURES, "healthy", "three-clients-healthy"}, bird
        for case, hosts in FIRST_FAILURES.items():
            for host in hosts:
                assert (DATA / bird / case / host / "snapshot.json").is_file()


@pytest.mark.parametrize("bird", BIRDS)
def test_healthy_outputs_parse(bird: str) -> None:
    for host, bgp in (("dmz", {"ibgp_pve", "dn42_peer1"}), ("pve", {"ibgp_dmz"})):
        snap = _snapshot(bird, "healthy", host)
        status = parse_status(snap.get("bird_status").stdout)
        assert status.up and not status.recovering
        assert status.version == bird.removeprefix("bird-")
        protocols = parse_protocols(snap.get("bird_protocols").stdout)
        assert {p.name for p in protocols.values() if p.proto == "BGP"} == bgp
        for name in bgp:
            row = protocols[name]
            assert row.state == "up" and row.details["BGP state"] == "Established"
            assert set(row.channels) == {"ipv4", "ipv6"}
            assert row.details["Local AS"] == "4242420038"
        ibgp = protocols["ibgp_pve" if host == "dmz" else "ibgp_dmz"]
        assert ibgp.channels["ipv6"].next_hop[0].startswith("fdb7:1dec:4d21:ff::")
        kernel4 = protocols["kernel4"].channels["ipv4"]
        routes4 = parse_routes(snap.get("ip_route4").stdout)
        assert kernel4.exported == sum(1 for r in routes4 if r.protocol == "bird") > 0
        counts = parse_route_count(snap.get("bird_route_count").stdout)
        roa = {"dn42_roa4", "dn42_roa6"} if host == "dmz" else set()  # the DN42 peer's ROA
        assert set(counts) == {"master4", "master6"} | roa
        bfd = parse_bfd_sessions(snap.get("bird_bfd").stdout)
        assert [(s.address, s.state) for s in bfd] == [
            ("10.255.255.1" if host == "dmz" else "10.255.255.2", "Up")
        ]
        wg = parse_wg_dump(snap.get("wg").stdout)["wg-ibgp"]
        assert wg.listen_port == 51821 and len(wg.peers) == 1
        assert wg.peers[0].handshake_age(snap.time) is not None
        assert wg.peers[0].allowed_ips == ("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")
        links = parse_addresses(snap.get("ip_addr").stdout)
        assert {str(a) for a in links["wg-ibgp"].addresses} >= {
            "10.255.255.2/30" if host == "dmz" else "10.255.255.1/30"
        }
        assert parse_links(snap.get("ip_link").stdout)["wg-ibgp"] == links["wg-ibgp"].mtu
        ruleset = parse_ruleset(snap.get("nft").stdout)
        assert ("inet", "nixos-fw") in ruleset.tables
        assert ("inet", "ibgp-tunnel") in ruleset.tables
        # NixOS's forward chain and ours (the inbound drops), each once.
        forward = sorted((c.table, c.name) for c in ruleset.base_chains("forward"))
        assert forward == [("ibgp-tunnel", "forward"), ("nixos-fw", "forward")]
        sysctl = parse_sysctl(snap.get("sysctl").stdout)
        assert sysctl["net.ipv4.conf.all.forwarding"] == "1"


def test_saved_dumps_hold_no_secret() -> None:
    """Private keys and PSKs are replaced before anything is saved."""
    for dump in DATA.glob("*/*/*/wg.txt"):
        for line in dump.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 5:
                assert fields[1] == HIDDEN, dump
            elif len(fields) == 9:
                assert fields[2] in (HIDDEN, "(none)"), dump


@pytest.mark.parametrize("bird", BIRDS)
@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_healthy_recording_is_all_ok(expect: dict[str, Expectations], bird: str, host: str) -> None:
    checks = run_checks(expect[host], parse_snapshot(_snapshot(bird, "healthy", host)))
    # Recorded before the liveness probe existed: that one check is not measured.
    assert [c.line() for c in checks if c.status is not Status.OK] == [
        c.line() for c in checks if c.id.startswith("tunnel.alive ")
    ]
    assert all("not measured" in c.summary for c in checks if c.id.startswith("tunnel.alive "))
    assert len(checks) >= 25


CASES = [
    (bird, case, host, first, words)
    for bird in BIRDS
    for case, hosts in FIRST_FAILURES.items()
    for host, (first, words) in hosts.items()
]


@pytest.mark.parametrize(
    ("bird", "case", "host", "first", "words"),
    CASES,
    ids=[f"{b}-{c}-{h}" for b, c, h, _, _ in CASES],
)
def test_recorded_breakage_is_the_first_failing_line(
    expect: dict[str, Expectations],
    bird: str,
    case: str,
    host: str,
    first: str,
    words: tuple[str, ...],
) -> None:
    checks = run_checks(expect[host], parse_snapshot(_snapshot(bird, case, host)))
    failing = [c for c in checks if c.status is Status.FAIL]
    assert failing, f"{case}: nothing fails"
    assert failing[0].id.startswith(first), failing[0].line()
    for word in words:
        assert word in failing[0].line()
    assert failing[0].fix
    before = checks[: checks.index(failing[0])]
    assert all(c.status in (Status.OK, Status.SKIP) for c in before)


THREE_CLIENTS_PLAN = Path(__file__).resolve().parent / "plans" / "three-clients.toml"


@pytest.mark.parametrize("bird", BIRDS)
def test_three_clients_recording_is_all_ok_with_the_labs_keys(bird: str) -> None:
    """Three tunnels on the reflector, masquerade rules that leave announced LAN
    prefixes alone, and keys the lab generated (the plan has none): all ok once the
    expectations carry the running keys; with the plan's (none), the keys fail."""
    recorded = DATA / bird / "three-clients-healthy"
    snapshots = {p.name: saved.load(p) for p in sorted(recorded.iterdir())}
    assert set(snapshots) == {"vps", "home", "office", "laptop"}
    keys = {
        host: next(iter(parse_wg_dump(snap.get("wg").stdout).values())).public_key
        for host, snap in snapshots.items()
    }
    for host, snap in snapshots.items():
        plain = plan_expectations(THREE_CLIENTS_PLAN, host)
        exp = plain.with_public_keys(keys, "the lab's generated keys")
        checks = run_checks(exp, parse_snapshot(snap))
        # Recorded before the liveness probe existed: that one check is not measured.
        assert [c.id for c in checks if c.status is not Status.OK] == [
            c.id for c in checks if c.id.startswith("tunnel.alive ") and c.status is Status.SKIP
        ]
        masquerade = [c for c in checks if c.id.startswith("firewall.masquerade")]
        assert masquerade, host
        without = run_checks(plain, parse_snapshot(snap))
        first = next(c for c in without if c.status is Status.FAIL)
        assert first.id.startswith("wireguard.peer-key") and "ibgp-tunnel keys" in first.fix


@pytest.mark.parametrize("bird", BIRDS)
def test_recovery_that_cannot_end_is_named_after_the_session(
    expect: dict[str, Expectations], bird: str
) -> None:
    snap = _snapshot(bird, "recovery-without-reflector", "pve")
    checks = run_checks(expect["pve"], parse_snapshot(snap))
    recovery = next(c for c in checks if c.id == "bird.recovery")
    assert recovery.status is Status.FAIL and "End-of-RIB" in recovery.summary
    assert "300 s" in recovery.fix
