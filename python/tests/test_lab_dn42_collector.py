"""DN42's Global Route Collector in the lab (issue 22, item 6): the example plan's
reflector with dn42_collector on, and a namespace of this test's own standing in for
the collector, behind the lab's DN42 peer (a veth from the peer's namespace, inside
a prefix the peer announces), so the session runs over the module's DN42 tunnel and
the peer's routing: several hops, as the real collector is. The stand-in listens
only (as the real one's dynamic peering does), sends routes of its own, and gets
ours: the reflector's DN42 announcements and the DN42 peer's routes, with their
communities, and nothing else; the reflector imports nothing from it. Doctor lists
the session.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). Its own lab directory and namespace prefix,
beside the other lab tests'."""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit
from labtools import (
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    lab_up,
    poll,
    run_doctor,
    skip_reason,
)
from test_dn42_communities import OWN_V4, OWN_V6, exporting_plan

from ibgp_tunnel.lab import daemons, location, netns

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-dn42k"
PREFIX = TEST_PREFIX[:-1] + "k-"
REFLECTOR, PEER = "dmz", "dn42"
DEADLINE = 90
# Inside the lab DN42 peer's announcement fd42:4200:1::/64 (lab/topology.py), so
# the reflector reaches it through the peer; our end speaks from an address of our
# own DN42 prefix (OWN_V6), put on the reflector's loopback as a real host would.
COLLECTOR = "fd42:4200:1::c"
PEER_SIDE = "fd42:4200:1::1"
SOURCE = str(ipaddress.ip_network(OWN_V6).network_address + 1)
COLLECTOR_ASN = 4242422602
# What the stand-in sends us: none of it may enter our tables, not even a default
# route or a more specific of our own prefix (a hostile collector's hijack).
OFFERED_V4, OFFERED_V6 = "172.22.250.0/24", "fd42:dead:beef::/48"
HIJACK_V4, HIJACK_V6 = "172.23.101.0/29", "fd42:4242:38:1::/80"
PEER_V4 = "172.21.80.0/24"  # the lab peer's announcement
CLIENT_ONLY = "104.16.0.0/13"  # the example's cf set: never DN42's business
AS_PATH = r"(?:BGP\.as_path|bgp_path):"  # BIRD 2 / BIRD 3


def collector_plan(tmp_path: Path) -> Path:
    path = exporting_plan(tmp_path)
    data = tomllib.loads(path.read_text())
    data["hosts"]["dmz"]["dn42_collector"] = {
        "enable": True,
        "neighbor": COLLECTOR,
        "source_address": SOURCE,
    }
    path.write_text(tomlkit.dumps(data))
    return path


def collector_bird(our_asn: int) -> str:
    return f"""\
# Lab stand-in for DN42's route collector; written by test_lab_dn42_collector.
router id 172.20.129.4;
protocol device {{}}
protocol static offered4 {{
  ipv4;
  route {OFFERED_V4} unreachable;
  route {HIJACK_V4} unreachable;
  route 0.0.0.0/0 unreachable;
}}
protocol static offered6 {{
  ipv6;
  route {OFFERED_V6} unreachable;
  route {HIJACK_V6} unreachable;
  route ::/0 unreachable;
}}
protocol bgp from_us {{
  local as {COLLECTOR_ASN};
  neighbor {SOURCE} as {our_asn};
  source address {COLLECTOR};
  multihop;
  passive on;
  ipv4 {{ add paths rx; import all; export all; extended next hop on; }};
  ipv6 {{ add paths rx; import all; export all; }};
}}
"""


class Collector:
    def __init__(self, env: Lab) -> None:
        self.ns = PREFIX + "grc"
        self.dir = env.lab_dir / "collector"
        self.socket = self.dir / "bird.ctl"
        self.daemon: daemons.Daemon | None = None
        self.env = env

    def start(self) -> None:
        (peer,) = self.env.topo.dn42_peers
        assert any(
            ipaddress.ip_address(COLLECTOR) in ipaddress.ip_network(p) for p in peer.announce_ipv6
        ), f"{COLLECTOR} is no longer inside the lab peer's {peer.announce_ipv6}"
        self.dir.mkdir(parents=True, exist_ok=True)
        netns.delete_netns(self.ns)
        netns.add_netns(self.ns)
        peer_ns = self.env.ns(PEER)
        netns.add_veth(peer_ns, "grc0", self.ns, "eth0")
        netns.ip_batch(peer_ns, [f"address add {PEER_SIDE}/64 dev grc0 nodad", "link set grc0 up"])
        netns.sysctl(peer_ns, {"net.ipv6.conf.all.forwarding": 1})
        netns.ip_batch(
            self.ns,
            [
                "link set lo up",
                f"address add {COLLECTOR}/64 dev eth0 nodad",
                "link set eth0 up",
                f"route replace ::/0 via {PEER_SIDE}",
            ],
        )
        netns.ip_batch(self.env.ns(REFLECTOR), [f"address add {SOURCE}/128 dev lo"])
        conf = self.dir / "bird.conf"
        conf.write_text(collector_bird(int(self.env.plan["asn"])))
        bird = location.bird_tool("bird")
        netns.run([bird, "-p", "-c", str(conf)])
        argv = [bird, "-f", "-c", str(conf), "-s", str(self.socket)]
        argv += ["-P", str(self.dir / "bird.pid")]
        self.daemon = daemons.start(
            "collector/bird", netns.ns_argv(self.ns, argv), self.dir / "log"
        )

    def stop(self) -> None:
        if self.daemon is not None:
            daemons.stop(self.daemon)
        netns.delete_netns(self.ns)

    def birdc(self, *command: str, check: bool = True) -> str:
        argv = [location.bird_tool("birdc"), "-s", str(self.socket), *command]
        return netns.run(argv, check=check).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Collector]]:
    plan_path = collector_plan(tmp_path_factory.mktemp("dn42k-plan"))
    with lab_up(plan_path, LAB_DIR, PREFIX) as env:
        collector = Collector(env)
        try:
            collector.start()
            yield env, collector
        finally:
            collector.stop()


def _established(env: Lab) -> str:
    def up_now() -> str | None:
        out = birdc(env.st, REFLECTOR, "show", "protocols", "all", "dn42collector")
        return out if "Established" in out else None

    return poll(up_now, DEADLINE, "the collector session Established")


@pytest.mark.parametrize("prefix", [OWN_V4, OWN_V6, PEER_V4])
def test_the_collector_gets_our_routes_and_the_dn42_routes_we_hold(
    lab: tuple[Lab, Collector], prefix: str
) -> None:
    env, collector = lab
    _established(env)

    def received() -> str | None:
        # birdc exits 1 ("Network not found") until the route arrives: not yet, not an error.
        out = collector.birdc("show", "route", prefix, "all", check=False)
        return out if prefix in out else None

    out = poll(received, DEADLINE, f"{prefix} at the collector")
    if prefix == PEER_V4:
        # The path through us to the peer's AS, the link communities we set on import.
        (peer,) = env.topo.dn42_peers
        assert re.search(rf"{AS_PATH} {env.plan['asn']} {peer.asn}\b", out), out
        assert "(64511," in out, out
    else:
        assert re.search(rf"{AS_PATH} {env.plan['asn']}\s*$", out, re.MULTILINE), out


def test_nothing_else_reaches_the_collector(lab: tuple[Lab, Collector]) -> None:
    env, collector = lab
    _established(env)
    poll(
        lambda: PEER_V4 in collector.birdc("show", "route", PEER_V4, check=False) or None,
        DEADLINE,
        "the collector's table filled",
    )
    table = collector.birdc("show", "route", "protocol", "from_us")
    assert CLIENT_ONLY not in table and "2606:4700::/32" not in table, table


def test_we_import_nothing_from_it(lab: tuple[Lab, Collector]) -> None:
    env, collector = lab
    details = _established(env)
    # It does send them: they are in its export, and our side counts them received.
    exported = collector.birdc("show", "route", "export", "from_us")
    offered = (OFFERED_V4, OFFERED_V6, HIJACK_V4, HIJACK_V6, "0.0.0.0/0", "::/0")
    assert all(prefix in exported for prefix in offered), exported

    def received_counted() -> str | None:
        out = birdc(env.st, REFLECTOR, "show", "protocols", "all", "dn42collector")
        counts = [int(n) for n in re.findall(r"Import updates:\s+(\d+)", out)]
        return out if counts and sum(counts) >= len(offered) else None

    details = poll(received_counted, DEADLINE, "the collector's updates received")
    assert re.findall(r"Routes:\s+(\d+) imported", details) == ["0", "0"], details
    table = birdc(env.st, REFLECTOR, "show", "route", "all")
    for prefix in offered:
        assert prefix not in table, prefix
    assert f"from {COLLECTOR}" not in table, table


def test_every_path_is_offered_add_path_tx(lab: tuple[Lab, Collector]) -> None:
    """The wiki asks for ADD-PATH: we send, the collector receives, both families."""
    env, collector = lab
    ours = _established(env)
    local = ours.split("Local capabilities", 1)[1].split("Neighbor capabilities", 1)[0]
    assert re.search(r"ADD-PATH\s+RX:\s*\n\s+TX: ipv4 ipv6", local), ours
    theirs = collector.birdc("show", "protocols", "all", "from_us")
    local = theirs.split("Local capabilities", 1)[1].split("Neighbor capabilities", 1)[0]
    assert re.search(r"ADD-PATH\s+RX: ipv4 ipv6", local), theirs


def test_doctor_checks_the_session(lab: tuple[Lab, Collector]) -> None:
    env, _ = lab
    _established(env)
    result = run_doctor(REFLECTOR, LAB_DIR, PREFIX)
    checks = json.loads(result.stdout)["checks"]
    (line,) = [c for c in checks if c["id"] == "bgp.session dn42collector"]
    assert line["status"] == "ok", line
    assert COLLECTOR in line["summary"], line
