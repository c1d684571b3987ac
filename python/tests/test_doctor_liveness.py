"""Tunnel liveness (checks/liveness.py) on recorded healthy outputs with a probe
added: an answered probe is ok, an unanswered one with still counters is the first
failing line naming the port, the endpoint and both firewalls, and the handshake,
BGP and BFD lines behind it say they are its consequence. Recordings made before
the check say skip; a recording's probes are input like the rest (saved.py)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from unrecorded import not_ok, predates

from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.checks import run_checks
from ibgp_tunnel.doctor.collect import WG_AFTER, Output, Snapshot, probe_argv
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import parse_snapshot
from ibgp_tunnel.doctor.parse_ping import PingResult, parse_summary
from ibgp_tunnel.doctor.report import as_text
from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.run import liveness_of, plan_expectations
from ibgp_tunnel.errors import InputError

DATA = Path(__file__).resolve().parent / "data" / "doctor"
EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "hosts" / "plan.toml"
HEALTHY = DATA / "bird-3.1.8" / "healthy"


def _ping(sent: int, answered: int) -> str:
    loss = 100 - 100 * answered // sent if sent else 0
    return (
        "PING 10.255.255.1 (10.255.255.1) from 10.255.255.2 wg-ibgp: 56(84) bytes of data.\n\n"
        "--- 10.255.255.1 ping statistics ---\n"
        f"{sent} packets transmitted, {answered} received, {loss}% packet loss, time 1999ms\n"
    )


@pytest.fixture(scope="module")
def expect(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Expectations]:
    # As the recordings' lab ran it (test_doctor_lab.py).
    plan = tmp_path_factory.mktemp("plan") / "plan.toml"
    plan.write_text(EXAMPLE_PLAN.read_text() + "\n[tuning]\nimport_limit = 20\n")
    return {host: plan_expectations(plan, host) for host in ("dmz", "pve")}


def _probed(host: str, exp: Expectations, answered: int, rx_grows: int = 0) -> Snapshot:
    """The healthy recording with a probe through every tunnel: `answered` of 4 pings
    came back, and each peer's rx counter grew by `rx_grows` bytes."""
    snap = saved.load(HEALTHY / host)
    for interface, address in liveness_of(exp).items():
        code = 0 if answered else 1
        argv = probe_argv(interface, address)
        snap.liveness[interface] = Output(argv, code, _ping(4, answered), "")
    lines = []
    for line in snap.get("wg").stdout.splitlines():
        fields = line.split("\t")
        if len(fields) == 9:
            fields[6] = str(int(fields[6]) + rx_grows)
        lines.append("\t".join(fields))
    snap.outputs[WG_AFTER] = replace(snap.get("wg"), stdout="\n".join(lines) + "\n")
    return snap


def _checks(exp: Expectations, snap: Snapshot) -> list[Check]:
    return run_checks(exp, parse_snapshot(snap))


def _first_failure(checks: list[Check]) -> Check:
    failing = [c for c in checks if c.status is Status.FAIL]
    assert failing, "nothing fails"
    return failing[0]


def _bfd_down(snap: Snapshot) -> None:
    """What BIRD shows a second after the packets stopped: BFD Down, BGP ended on it."""
    bfd = snap.get("bird_bfd")
    snap.outputs["bird_bfd"] = replace(bfd, stdout=bfd.stdout.replace(" Up ", " Down "))
    protocols = snap.get("bird_protocols")
    lines = protocols.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("ibgp_dmz "))
    lines[at] = lines[at].replace(" up ", " start ").replace("Established", "Active")
    lines[at + 2] = "  BGP state:          Active"
    lines.insert(at + 3, "    Last error:       BFD session down")
    snap.outputs["bird_protocols"] = replace(protocols, stdout="\n".join(lines) + "\n")


def test_parse_ping_reads_iputils_and_busybox() -> None:
    assert parse_summary(_ping(4, 3)) == PingResult(4, 3)
    busybox = "--- 10.0.0.1 ping statistics ---\n4 packets transmitted, 0 packets received, 100%"
    assert parse_summary(busybox) == PingResult(4, 0)
    assert parse_summary("ping: SO_BINDTODEVICE wg-ibgp: No such device\n") is None


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_answered_or_counted_is_alive(expect: dict[str, Expectations], host: str) -> None:
    for answered, grows in ((4, 300), (0, 32)):  # a peer that drops pings but sends BFD
        checks = _checks(expect[host], _probed(host, expect[host], answered, grows))
        assert not_ok(checks) == []
        alive = [c for c in checks if c.id.startswith("tunnel.alive")]
        assert len(alive) == (2 if host == "dmz" else 1)


def test_dead_tunnel_on_the_client_is_the_first_line(expect: dict[str, Expectations]) -> None:
    snap = _probed("pve", expect["pve"], answered=0)
    checks = _checks(expect["pve"], snap)
    first = _first_failure(checks)
    assert first.id == "tunnel.alive wg-ibgp"
    text = first.line()
    for words in ("UDP 51821", "203.0.113.10:51821", "provider", "own firewall", "nftables"):
        assert words in text, words
    assert "`ibgp-tunnel doctor` on dmz" in first.fix
    assert "4 sent, 0 answered" in first.evidence and "latest handshake" in first.evidence
    # The handshake was fresh when recorded; it must not say ok behind a dead tunnel.
    handshake = next(c for c in checks if c.id == "wireguard.handshake wg-ibgp dmz")
    assert handshake.status is Status.FAIL
    assert "because the tunnel is dead (see tunnel.alive wg-ibgp)" in handshake.summary


def test_bgp_and_bfd_behind_a_dead_tunnel_are_consequences(
    expect: dict[str, Expectations],
) -> None:
    snap = _probed("pve", expect["pve"], answered=0)
    _bfd_down(snap)
    checks = _checks(expect["pve"], snap)
    assert _first_failure(checks).id == "tunnel.alive wg-ibgp"
    for name in ("bgp.session ibgp_dmz", "bfd.session ibgp_dmz"):
        line = next(c for c in checks if c.id == name)
        assert line.status is Status.FAIL, line
        assert "because the tunnel is dead (see tunnel.alive wg-ibgp)" in line.summary
        assert "4784" not in line.line(), line.line()
    # Without the probe the same BIRD state blames BFD's port, as before.
    alive = _probed("pve", expect["pve"], answered=4, rx_grows=200)
    _bfd_down(alive)
    bgp = next(c for c in _checks(expect["pve"], alive) if c.id == "bgp.session ibgp_dmz")
    assert "UDP 4784" in bgp.fix


def test_session_still_established_behind_a_dead_tunnel_is_not_ok(
    expect: dict[str, Expectations],
) -> None:
    checks = _checks(expect["pve"], _probed("pve", expect["pve"], answered=0))
    for name in ("bgp.session ibgp_dmz", "bfd.session ibgp_dmz"):
        line = next(c for c in checks if c.id == name)
        assert line.status is not Status.OK and "tunnel is dead" in line.summary, line


def test_dead_tunnel_on_the_reflector_names_its_own_port(expect: dict[str, Expectations]) -> None:
    checks = _checks(expect["dmz"], _probed("dmz", expect["dmz"], answered=0))
    assert _first_failure(checks).id.startswith("tunnel.alive ")
    first = next(c for c in checks if c.id == "tunnel.alive wg-ibgp")
    assert first.status is Status.FAIL and "UDP 51821" in first.summary
    assert "pve dials this host on UDP 51821" in first.fix
    for words in ("provider", "this host's own firewall (nftables)", "`ibgp-tunnel doctor` on pve"):
        assert words in first.fix, words
    # The DN42 peer's tunnel is measured too, and named with its own port.
    dn42 = next(c for c in checks if c.id == "tunnel.alive dn42-peer1")
    assert dn42.status is Status.FAIL and "UDP 21080" in dn42.fix
    # Its other end is someone else's router: no doctor to run there.
    assert "ask peer1's operator" in dn42.fix and "doctor" not in dn42.fix


def test_recordings_without_probes_are_not_measured(expect: dict[str, Expectations]) -> None:
    checks = _checks(expect["pve"], saved.load(HEALTHY / "pve"))
    alive = next(c for c in checks if c.id == "tunnel.alive wg-ibgp")
    assert alive.status is Status.SKIP and "not measured" in alive.summary
    # Every other line not ok is one the recording predates too (drift, path MTU).
    assert [c.id for c in checks if c.status is not Status.OK and not predates(c)] == []


def test_a_probe_that_never_ran_is_skipped_not_dead(expect: dict[str, Expectations]) -> None:
    snap = _probed("pve", expect["pve"], answered=0)
    argv = snap.liveness["wg-ibgp"].argv
    snap.liveness["wg-ibgp"] = Output(argv, 2, "", "ping: SO_BINDTODEVICE: Operation not permitted")
    alive = next(c for c in _checks(expect["pve"], snap) if c.id == "tunnel.alive wg-ibgp")
    assert alive.status is Status.SKIP and "Operation not permitted" in alive.summary
    zero = _probed("pve", expect["pve"], answered=0)
    zero.liveness["wg-ibgp"] = replace(zero.liveness["wg-ibgp"], stdout=_ping(0, 0))
    alive = next(c for c in _checks(expect["pve"], zero) if c.id == "tunnel.alive wg-ibgp")
    assert alive.status is Status.SKIP


def test_probes_are_saved_and_read_back(expect: dict[str, Expectations], tmp_path: Path) -> None:
    snap = _probed("pve", expect["pve"], answered=0)
    saved.save(snap, tmp_path / "out")
    back = saved.load(tmp_path / "out")
    assert back.liveness == snap.liveness and back.get(WG_AFTER) == snap.get(WG_AFTER)
    assert _first_failure(_checks(expect["pve"], back)).id == "tunnel.alive wg-ibgp"


@pytest.mark.parametrize(
    "interface", ["../../etc", "a/b", "sixteen-chars-xx", "", ".", "wg ibgp", "wg\u202eibgp"]
)
def test_a_recordings_probe_must_be_keyed_by_an_interface_name(
    expect: dict[str, Expectations], tmp_path: Path, interface: str
) -> None:
    saved.save(_probed("pve", expect["pve"], answered=4), tmp_path / "out")
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "out", copy)
    meta = json.loads((copy / "snapshot.json").read_text())
    meta["liveness"][interface] = meta["liveness"].pop("wg-ibgp")
    (copy / "snapshot.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="liveness"):
        saved.load(copy)


def test_a_recordings_probes_must_be_outputs(
    expect: dict[str, Expectations], tmp_path: Path
) -> None:
    saved.save(_probed("pve", expect["pve"], answered=4), tmp_path / "out")
    for bad in ([], {"wg-ibgp": "4 received"}, {"wg-ibgp": {"argv": [], "returncode": 0}}):
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tmp_path / "out", copy)
        meta = json.loads((copy / "snapshot.json").read_text())
        meta["liveness"] = bad
        (copy / "snapshot.json").write_text(json.dumps(meta))
        with pytest.raises(InputError, match="liveness"):
            saved.load(copy)


@pytest.mark.parametrize(
    ("interface", "neighbor"),
    [
        ("wg-ibgp", "-f"),  # would be one of ping's options
        ("wg-ibgp", "10.0.0.1; reboot"),
        ("-f", "10.255.255.1"),
        ("wg/../x", "10.255.255.1"),
        ("sixteen-chars-xx", "10.255.255.1"),
    ],
)
def test_hostile_names_are_never_pinged(
    expect: dict[str, Expectations], interface: str, neighbor: str
) -> None:
    """Whatever reaches Expectations (a hand-made spec, say), ping gets only an
    interface name and an IP address; otherwise the tunnel is not measured."""
    pve = expect["pve"]
    tunnel = replace(pve.tunnels[0], interface=interface)
    exp = replace(pve, tunnels=(tunnel,), tunnel_neighbors={interface: neighbor}, sessions=())
    assert liveness_of(exp) == {}
    checks = _checks(exp, _probed("pve", pve, answered=0))
    alive = next(c for c in checks if c.id == f"tunnel.alive {interface}")
    assert alive.status is Status.SKIP, alive


def test_a_recorded_probes_error_reaches_the_report_cleaned(
    expect: dict[str, Expectations],
) -> None:
    """ping's error text is quoted in the skip line: a planted escape sequence is not
    passed to the terminal."""
    snap = _probed("pve", expect["pve"], answered=0)
    argv = snap.liveness["wg-ibgp"].argv
    snap.liveness["wg-ibgp"] = Output(argv, 2, "", "ping: \x1b]0;owned\x07\x1b[31mred\n")
    checks = _checks(expect["pve"], snap)
    alive = next(c for c in checks if c.id == "tunnel.alive wg-ibgp")
    assert alive.status is Status.SKIP and "red" in alive.summary
    text = as_text("pve", "recorded", checks)
    assert "\x1b" not in text and "\x07" not in text and "red" in text
