"""A reflector without a route to a client's LAN refuses that LAN's packets; it
never sends them out of its uplink (docs/performance.md, "The soak's BIRD 2
violations, traced": for milliseconds, while two reflectors withdraw a blocked
client's LAN at once, the kernel forwarded it by the default route, masqueraded,
outside the tunnels).

The moment is made to last, deterministically: on both reflectors of the
two-reflector lab (python/tests/plans/two-reflectors.toml) a policy rule sends
the lookup for office's LAN to a table holding only the reflector's default
route, what the kernel finds when BIRD's route is gone, while BGP still tells
home that office's LAN is behind the reflectors. Home's LAN then pings office's:
  * the answer is an ICMP unreachable from a reflector (render/nftables.nix's
    reject), for IPv4 and IPv6;
  * the `inet` router sees no packet for office's LAN (an nft counter there);
  * with the reject rules deleted from the reflectors' table, the same pings
    do reach `inet`: the counter sees a leak when there is one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labtools import TEST_LAB_DIR, TEST_PREFIX, environment, in_node, ping, poll, skip_reason

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import location
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.topology import INET, LanClient, build_topology
from ibgp_tunnel.lab.up import apply_nft, node_dir, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

PLAN = Path(__file__).resolve().parent / "plans" / "two-reflectors.toml"
LAB_DIR = TEST_LAB_DIR + "-ug"
PREFIX = TEST_PREFIX[:-1] + "g-"
REFLECTORS = ("vps1", "vps2")
# Generous: a loaded 2-core machine, BIRD's error wait and WireGuard handshakes.
DEADLINE = 90
# The table and rule preference of the simulated loss; the lab uses neither.
TABLE = "4242"
COUNTER_TABLE = "uplink_leak_count"
FAMILIES = ("-4", "-6")


@dataclass
class Lab:
    st: LabState
    plan: dict[str, Any]
    sender: LanClient
    target: LanClient


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with environment(**{location.LAB_DIR_ENV: LAB_DIR, location.PREFIX_ENV: PREFIX}):
        down()
        try:
            st = up(PLAN, timeout=120)
            plan = planfile.load(PLAN)
            lans = {lan.router: lan for lan in build_topology(plan, PREFIX).lan_clients}
            yield Lab(st, plan, lans["home"], lans["office"])
        finally:
            down()


def _run(lab: Lab, node: str, *argv: str) -> str:
    done = in_node(lab.st, node, list(argv))
    assert done.returncode == 0, f"{node}: {' '.join(argv)}: {done.stderr}"
    return done.stdout


def _target(lab: Lab, family: str) -> str:
    return lab.target.ipv4 if family == "-4" else lab.target.ipv6


def _lan_of(lab: Lab, family: str) -> str:
    key = "ipv4" if family == "-4" else "ipv6"
    (prefix,) = lab.plan["hosts"]["office"]["announce"][key]
    return str(prefix)


def _lose_route(lab: Lab, reflector: str) -> None:
    """The reflector's lookup for office's LAN finds only its default route."""
    for family in FAMILIES:
        default = _run(lab, reflector, "ip", family, "route", "show", "default").split()
        via = default[default.index("via") + 1]
        dev = default[default.index("dev") + 1]
        onlink = ["onlink"] if "onlink" in default else []
        _run(
            lab,
            reflector,
            "ip",
            family,
            "route",
            "replace",
            "default",
            "via",
            via,
            "dev",
            dev,
            *onlink,
            "table",
            TABLE,
        )
        _run(
            lab,
            reflector,
            "ip",
            family,
            "rule",
            "add",
            "to",
            _lan_of(lab, family),
            "lookup",
            TABLE,
            "pref",
            TABLE,
        )
        got = _run(lab, reflector, "ip", family, "route", "get", _target(lab, family))
        assert f"dev {dev}" in got, f"{reflector} still routes office's LAN: {got}"


def _count_at_inet(lab: Lab) -> None:
    script = (
        f"table inet {COUNTER_TABLE} {{\n  chain prerouting {{\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        f"    ip daddr {_lan_of(lab, '-4')} counter\n"
        f"    ip6 daddr {_lan_of(lab, '-6')} counter\n  }}\n}}\n"
    )
    path = node_dir(Path(lab.st.lab_dir), INET) / "uplink-leak-count.nft"
    apply_nft(lab.st.nodes[INET]["netns"], script, path)


def _leaked(lab: Lab) -> int:
    """Packets for office's LAN that reached `inet` out of a reflector's uplink."""
    listing = json.loads(_run(lab, INET, "nft", "-j", "list", "table", "inet", COUNTER_TABLE))
    return sum(
        int(expr["counter"]["packets"])
        for item in listing["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    )


def _addresses(lab: Lab, node: str) -> set[str]:
    out = _run(lab, node, "ip", "-o", "addr", "show")
    return {word.split("/")[0] for word in re.findall(r"inet6? (\S+)", out)}


def _errors_from(lab: Lab, family: str) -> tuple[bool, set[str]]:
    """Whether home's LAN got an answer from office's, and who sent ICMP errors."""
    done = in_node(
        lab.st,
        lab.sender.node,
        ["ping", family, "-n", "-c", "3", "-i", "0.3", "-W", "1", _target(lab, family)],
    )
    return done.returncode == 0, set(
        re.findall(r"From (\S+) icmp_seq=\d+ Destination", done.stdout)
    )


def _delete_rejects(lab: Lab, reflector: str) -> int:
    listing = _run(lab, reflector, "nft", "-a", "list", "chain", "inet", "ibgp-tunnel", "forward")
    handles = re.findall(r"reject with .* # handle (\d+)", listing)
    for handle in handles:
        _run(
            lab,
            reflector,
            "nft",
            "delete",
            "rule",
            "inet",
            "ibgp-tunnel",
            "forward",
            "handle",
            handle,
        )
    return len(handles)


def test_a_reflector_without_a_route_rejects_a_lan_instead_of_leaking_it(lab: Lab) -> None:
    for family in FAMILIES:
        poll(
            lambda f=family: ping(lab.st, lab.sender.node, _target(lab, f)),
            DEADLINE,
            f"home's LAN reaches office's ({family})",
        )
    reflectors = set().union(*(_addresses(lab, r) for r in REFLECTORS))
    _count_at_inet(lab)
    for reflector in REFLECTORS:
        _lose_route(lab, reflector)

    for family in FAMILIES:
        answered, senders = _errors_from(lab, family)
        assert not answered, f"office's LAN answered ({family}) with no route at the reflectors"
        assert senders and senders <= reflectors, (
            f"{family}: ICMP errors from {senders}, not from a reflector {sorted(reflectors)}"
        )
    assert _leaked(lab) == 0, "packets for office's LAN left a reflector's uplink"

    # The counter can see a leak: without the reject rules the same pings reach inet.
    assert sum(_delete_rejects(lab, r) for r in REFLECTORS) == 2 * len(REFLECTORS)
    # The finding itself: the errors now come from beyond the uplink (`inet`'s router).
    for family in FAMILIES:
        answered, senders = _errors_from(lab, family)
        assert not answered and senders and not senders & reflectors, (family, senders)
    assert _leaked(lab) > 0, "without the reject rules nothing reached inet: the count is blind"
