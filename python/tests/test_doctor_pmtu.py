"""The path MTU probe and its check, on a recorded healthy host whose pings answer as
a simulated path does: with a black hole, with working path MTU discovery, healthy,
silent. The real thing (a lab path with a smaller MTU and ICMP dropped) is in
test_doctor_lab.py's `path-mtu-black-hole`."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from unrecorded import not_ok

from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.checks import run_checks
from ibgp_tunnel.doctor.checks.pmtu import NOT_PROBED
from ibgp_tunnel.doctor.collect import Output, Snapshot
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import parse_snapshot
from ibgp_tunnel.doctor.parse_ping import parse_ping, split_key
from ibgp_tunnel.doctor.pmtu_probe import (
    HEADERS,
    POINTS,
    ROUNDS,
    between,
    ladder,
    plan_series,
    run_probes,
)
from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.run import plan_expectations
from ibgp_tunnel.errors import InputError
from ibgp_tunnel.lab import faults
from ibgp_tunnel.lab.errors import LabError

DATA = Path(__file__).resolve().parent / "data" / "doctor"
HEALTHY = DATA / "bird-3.1.8" / "healthy"
EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "hosts" / "plan.toml"
ENDPOINT = "203.0.113.10"  # the example's reflector, as pve's recording dials it


@pytest.fixture(scope="module")
def expect(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Expectations]:
    plan = tmp_path_factory.mktemp("plan") / "plan.toml"
    plan.write_text(EXAMPLE_PLAN.read_text() + "\n[tuning]\nimport_limit = 20\n")
    return {host: plan_expectations(plan, host) for host in ("dmz", "pve")}


class FakePath:
    """Answers `ping -M do` as a path would: tunnel pings pass up to `inner`, underlay
    pings up to `outer`. With `icmp`, the first too-large packet brings an ICMP error
    and the kernel learns the MTU (later tunnel packets get fragmented and pass)."""

    def __init__(
        self,
        inner: int,
        outer: int,
        *,
        icmp: bool = False,
        silent: bool = False,
        local: bool = False,
    ) -> None:
        self.inner, self.outer, self.icmp, self.silent = inner, outer, icmp, silent
        self.local = local  # the limit is this host's own link: the kernel refuses
        self.learnt = False
        self.lock = threading.Lock()
        self.pings: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str]) -> Output:
        assert tuple(argv[:4]) == ("ping", "-n", "-M", "do"), argv
        address = argv[-1]
        size = int(argv[argv.index("-s") + 1]) + HEADERS[ipaddress.ip_address(address).version]
        with self.lock:
            self.pings.append(tuple(argv))
            if self.silent:
                return Output(tuple(argv), 1, "1 packets transmitted, 0 received\n", "")
            underlay = address == ENDPOINT
            limit = self.outer if underlay else self.inner
            if size <= limit or (self.learnt and not underlay):
                return Output(tuple(argv), 0, "1 packets transmitted, 1 received\n", "")
            if underlay and self.local:  # the kernel knows its own link's MTU
                error = f"ping: local error: message too long, mtu={self.outer}\n"
                return Output(tuple(argv), 1, "", error)
            if not self.icmp:
                return Output(tuple(argv), 1, "1 packets transmitted, 0 received\n", "")
            self.learnt = True
            text = f"From 203.0.113.1 icmp_seq=1 Frag needed and DF set (mtu = {self.outer})\n"
            return Output(tuple(argv), 1, text, "")

    def birdc(self, command: Sequence[str]) -> Output:
        raise AssertionError("the probe asks BIRD nothing")

    def describe(self) -> str:
        return "a simulated path"


def _probed(exp: Expectations, path: FakePath, host: str = "pve") -> tuple[list[Check], Snapshot]:
    snap = saved.load(HEALTHY / host)
    snap.probes = run_probes(path, plan_series(exp, parse_snapshot(snap)))
    return run_checks(exp, parse_snapshot(snap)), snap


def _pmtu(checks: list[Check]) -> Check:
    return next(c for c in checks if c.id == "tunnel.pmtu wg-ibgp")


def test_ladder_and_between_stay_inside_their_bounds() -> None:
    assert ladder(1280, 1420, 8) == [1280, 1300, 1320, 1340, 1360, 1380, 1400, 1420]
    assert len(ladder(1280, 1500, POINTS)) == POINTS
    assert ladder(1300, 1300, 8) == [1300]
    assert between(1320, 1340, 8) == [1322, 1324, 1327, 1329, 1331, 1333, 1336, 1338]
    assert between(1327, 1329, 8) == [1328]
    assert between(1400, 1401, 8) == []


def test_black_hole_is_the_first_failing_line_with_the_largest_size_and_the_mtu(
    expect: dict[str, Expectations],
) -> None:
    # The underlay carries 1400 and drops ICMP; WireGuard pads to 16 bytes, so the
    # largest tunnel packet through is 1328 (1344 + 60 > 1400).
    path = FakePath(inner=1328, outer=1400)
    checks, snap = _probed(expect["pve"], path)
    first = next(c for c in checks if c.status is Status.FAIL)
    assert first.id == "tunnel.pmtu wg-ibgp", first.line()
    assert "MTU black hole on the way to dmz" in first.summary
    assert "largest that passes is 1328 bytes" in first.summary
    assert "the tunnel's MTU is 1420" in first.summary
    assert "carries 1400 bytes" in first.summary
    # Found exactly, in at most ROUNDS rounds, both families through the tunnel.
    assert "to 10.255.255.2: 1328 bytes answered, 1329 not (1420 twice)" in first.evidence
    assert "to fdb7:1dec:4d21:ff::1: 1328 bytes answered, 1329 not" in first.evidence
    assert f"to {ENDPOINT}: 1400 bytes answered, 1401 not" in first.evidence
    assert "no ICMP error came back" in first.evidence
    assert "mtu = 1340" in first.fix and "ip link set wg-ibgp mtu 1340" in first.fix
    assert "networking.wireguard.interfaces.wg-ibgp.mtu" in first.fix
    assert "[links.pve]" in first.fix
    assert snap.probes is not None
    attempts = {split_key(k)[4] for k in snap.probes}
    assert attempts == {1, 2}
    # Exact in two rounds: the ladder, then what lies between (and the top again).
    assert len(path.pings) <= 3 * 2 * (POINTS + 1) < 3 * ROUNDS * POINTS
    before = checks[: checks.index(first)]
    assert not_ok(before) == []


def test_working_path_mtu_discovery_is_a_warning_with_the_mtu(
    expect: dict[str, Expectations],
) -> None:
    checks, _ = _probed(expect["pve"], FakePath(inner=1328, outer=1400, icmp=True))
    assert not [c.line() for c in checks if c.status is Status.FAIL]
    check = _pmtu(checks)
    assert check.status is Status.WARN, check.line()
    assert "need path MTU discovery" in check.summary and "MTU 1400" in check.summary
    assert "ICMP named mtu 1400" in check.evidence
    assert "mtu = 1340" in check.fix


def test_healthy_path_is_ok_after_one_round(expect: dict[str, Expectations]) -> None:
    path = FakePath(inner=1420, outer=1500)
    checks, _ = _probed(expect["pve"], path)
    assert not_ok(checks) == []
    check = _pmtu(checks)
    assert "packets of 1420 bytes (the tunnel's MTU) pass to dmz" in check.summary
    # Healthy costs one round: the first ladder only, for each of 3 series.
    assert len(path.pings) == 3 * POINTS


def test_own_uplink_limit_is_left_to_the_static_check(expect: dict[str, Expectations]) -> None:
    """pve's own uplink carries 1400: tunnel packets pass (the kernel fragments them),
    the probe says so and tunnel.mtu is the line that fails."""
    snap = saved.load(HEALTHY / "pve")
    links = json.loads(snap.get("ip_addr").stdout)
    for link in links:
        if link["ifname"] == "wan0":
            link["mtu"] = 1400
    snap.outputs["ip_addr"] = replace(snap.get("ip_addr"), stdout=json.dumps(links))
    path = FakePath(inner=1420, outer=1400, local=True)
    snap.probes = run_probes(path, plan_series(expect["pve"], parse_snapshot(snap)))
    checks = run_checks(expect["pve"], parse_snapshot(snap))
    check = _pmtu(checks)
    assert check.status is Status.OK, check.line()
    assert "1480-byte packets get fragmented on this host (its uplink carries 1400)" in (
        check.summary
    )
    first = next(c for c in checks if c.status is Status.FAIL)
    assert first.id == "tunnel.mtu wg-ibgp" and "mtu 1340" in first.fix


def test_own_uplink_black_hole_is_left_to_the_static_check(
    expect: dict[str, Expectations],
) -> None:
    """pve's own uplink carries 1400 and big replies vanish (as a veth drops them): the
    probe sees a black hole but leaves the line to tunnel.mtu, which names the cause."""
    snap = saved.load(HEALTHY / "pve")
    links = json.loads(snap.get("ip_addr").stdout)
    for link in links:
        if link["ifname"] == "wan0":
            link["mtu"] = 1400
    snap.outputs["ip_addr"] = replace(snap.get("ip_addr"), stdout=json.dumps(links))
    path = FakePath(inner=1344, outer=1400, local=True)
    snap.probes = run_probes(path, plan_series(expect["pve"], parse_snapshot(snap)))
    checks = run_checks(expect["pve"], parse_snapshot(snap))
    check = _pmtu(checks)
    assert check.status is Status.SKIP, check.line()
    assert "exceed this host's own link towards 203.0.113.10 (mtu 1400)" in check.summary
    first = next(c for c in checks if c.status is Status.FAIL)
    assert first.id == "tunnel.mtu wg-ibgp"


def test_no_answer_at_all_is_skipped_not_blamed(expect: dict[str, Expectations]) -> None:
    path = FakePath(inner=0, outer=0, silent=True)
    check = _pmtu(_probed(expect["pve"], path)[0])
    assert check.status is Status.SKIP and "not even of 1280 bytes" in check.summary
    assert len(path.pings) == 3 * POINTS  # one round: nothing to refine


def test_ping_that_cannot_run_is_named(expect: dict[str, Expectations]) -> None:
    class NoPing(FakePath):
        def run(self, argv: Sequence[str]) -> Output:
            return Output(tuple(argv), 127, "", "ping: command not found")

    check = _pmtu(_probed(expect["pve"], NoPing(0, 0))[0])
    assert check.status is Status.SKIP
    assert check.summary == "not measured: ping did not run (ping: command not found)"


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_recording_without_probes_says_skip(expect: dict[str, Expectations], host: str) -> None:
    snap = saved.load(HEALTHY / host)
    assert snap.probes is None
    check = _pmtu(run_checks(expect[host], parse_snapshot(snap)))
    assert check.status is Status.SKIP and check.summary == NOT_PROBED


def test_probes_survive_save_and_load(expect: dict[str, Expectations], tmp_path: Path) -> None:
    _, snap = _probed(expect["pve"], FakePath(inner=1328, outer=1400))
    saved.save(snap, tmp_path / "out")
    again = saved.load(tmp_path / "out")
    assert again == snap
    check = _pmtu(run_checks(expect["pve"], parse_snapshot(again)))
    assert check.status is Status.FAIL and "1328 bytes" in check.summary


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("wg-ibgp tunnel ; rm -rf / 1300 1", None, "is no probe"),
        ("wg-ibgp tunnel example.org 1300 1", None, "does not appear to be an IPv4 or IPv6"),
        ("wg-ibgp sideways 10.0.0.1 1300 1", None, "is no probe"),
        ("wg-ibgp tunnel 10.0.0.1 1300 3", None, "is no probe"),
        ("wg-ibgp tunnel 10.0.0.1 1300 1", {"argv": "ping"}, "probes.wg-ibgp tunnel"),
    ],
)
def test_planted_probes_are_exit_2_naming_the_field(
    expect: dict[str, Expectations], tmp_path: Path, key: str, value: object, message: str
) -> None:
    _, snap = _probed(expect["pve"], FakePath(inner=1420, outer=1500))
    saved.save(snap, tmp_path / "out")
    meta_path = tmp_path / "out" / "snapshot.json"
    meta = json.loads(meta_path.read_text())
    meta["probes"][key] = value or {"argv": [], "returncode": 0, "stdout": "", "stderr": ""}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputError, match=message):
        saved.load(tmp_path / "out")


def test_hostile_addresses_never_reach_ping(expect: dict[str, Expectations]) -> None:
    """A neighbor or endpoint that is no IP address (an option, a name) is not probed."""
    exp = replace(
        expect["pve"],
        tunnel_neighbors={"wg-ibgp": "-fI"},
        tunnel_neighbors6={"wg-ibgp": "example.org"},
    )
    snap = saved.load(HEALTHY / "pve")
    wg = snap.get("wg")
    snap.outputs["wg"] = replace(wg, stdout=wg.stdout.replace(f"{ENDPOINT}:51821", "-q:51821"))
    exp = replace(exp, tunnels=tuple(replace(t, peers=()) for t in exp.tunnels))
    assert plan_series(exp, parse_snapshot(snap)) == []


def test_ping_outputs_name_the_path_mtu() -> None:
    def mtu(stdout: str, stderr: str = "") -> int | None:
        return parse_ping(Output((), 1, stdout, stderr)).mtu

    assert mtu("From 203.0.113.1 icmp_seq=1 Frag needed and DF set (mtu = 1400)\n") == 1400
    assert mtu("From 2001:db8::1 icmp_seq=1 Packet too big: mtu=1400\n") == 1400
    assert mtu("", "ping: local error: message too long, mtu=1400\n") == 1400
    assert mtu("", "ping: local error: message too long, mtu: 1380\n") == 1380
    assert mtu("1 packets transmitted, 0 received, 100% packet loss\n") is None
    assert parse_ping(Output((), 0, "1 received\n", "")).passed


def test_ipv6_is_probed_towards_reflectors_only(expect: dict[str, Expectations]) -> None:
    """A client lets pings in through its tunnel from the reflector's IPv4 address only:
    the reflector probes it over IPv4, the client probes the reflector over both."""
    assert expect["pve"].tunnel_neighbors6 == {"wg-ibgp": "fdb7:1dec:4d21:ff::1"}
    assert expect["dmz"].tunnel_neighbors6 == {}
    series = plan_series(expect["dmz"], parse_snapshot(saved.load(HEALTHY / "dmz")))
    assert [(s.kind, s.address) for s in series] == [
        ("tunnel", "10.255.255.1"),
        ("underlay", "198.51.100.10"),
    ]


@pytest.mark.parametrize("mtu", [True, "1400", 575, 65536, 1400.5])
def test_path_fault_refuses_what_is_no_mtu(mtu: object) -> None:
    """Checked before the lab is touched (so no lab is needed to see it refused)."""
    with pytest.raises(LabError, match="is not a number of bytes from 576 to 65535"):
        faults.shrink_path_mtu(None, mtu)  # type: ignore[arg-type]
