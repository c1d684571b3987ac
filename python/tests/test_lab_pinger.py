"""The benches' pinger (lab/pinger.py) keeps pinging through an ICMP error.

iputils `ping -w` leaves at the first "Destination Net Unreachable" it gets back,
which made bench/chaos.py read a short routing hole as an outage that never ended
(issue #23). Two namespaces of the tests' own prefix: a router answers with ICMP
errors while its route is `unreachable` for a moment, then forwards again; every
ping after the hole must be sent and answered, and the hole must be one closed gap."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from labtools import TEST_PREFIX, skip_reason

from ibgp_tunnel.lab import netns
from ibgp_tunnel.lab.pinger import Pinger
from ibgp_tunnel.lab.state import LabState

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

SRC, ROUTER = TEST_PREFIX + "pg-src", TEST_PREFIX + "pg-rtr"
TARGET = "10.98.0.5"


@pytest.fixture
def two_namespaces() -> Iterator[LabState]:
    for ns in (SRC, ROUTER):
        netns.run(["ip", "netns", "add", ns])
    try:
        netns.run(["ip", "-n", SRC, "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        netns.run(["ip", "-n", SRC, "link", "set", "v1", "netns", ROUTER])
        for ns, dev, addr in ((SRC, "v0", "10.99.0.1/24"), (ROUTER, "v1", "10.99.0.2/24")):
            netns.run(["ip", "-n", ns, "link", "set", "lo", "up"])
            netns.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            netns.run(["ip", "-n", ns, "link", "set", dev, "up"])
        netns.run(["ip", "-n", ROUTER, "addr", "add", TARGET + "/32", "dev", "lo"])
        # A router: it answers for what it cannot forward.
        netns.run(["ip", "netns", "exec", ROUTER, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        netns.run(["ip", "-n", SRC, "route", "add", "10.98.0.0/24", "via", "10.99.0.2"])
        st = LabState(plan="", lab_dir="", nodes={"src": {"netns": SRC}})
        yield st
    finally:
        for ns in (SRC, ROUTER):
            netns.run(["ip", "netns", "delete", ns], check=False)


def test_the_pinger_counts_on_after_an_icmp_error(two_namespaces: LabState) -> None:
    pinger = Pinger(two_namespaces, "src", TARGET)
    try:
        time.sleep(0.5)
        # The router loses its route: it answers "Destination Net Unreachable".
        netns.run(["ip", "-n", ROUTER, "addr", "del", TARGET + "/32", "dev", "lo"])
        netns.run(["ip", "-n", ROUTER, "route", "add", "unreachable", "10.98.0.0/24"])
        time.sleep(0.5)
        netns.run(["ip", "-n", ROUTER, "route", "del", "unreachable", "10.98.0.0/24"])
        netns.run(["ip", "-n", ROUTER, "addr", "add", TARGET + "/32", "dev", "lo"])
        time.sleep(1.0)
    finally:
        account = pinger.stop()
    assert "Unreachable" in pinger.output, pinger.output[-500:]
    assert account.lost > 0 and len(account.gaps) == 1, account
    gap = account.gaps[0]
    assert not gap.open_start and not gap.open_end, account
    # Pinging went on after the hole: about a second of replies after it.
    assert account.transmitted - gap.last > 20, account
