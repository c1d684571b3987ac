"""One reflector, three clients (tests/plans/three-clients.toml) in the lab.

Every client has its own tunnel interface and port at the reflector. All
clients learn the reflector's and the DN42 peer's routes; home and office
import each other's announced LANs and reach them, laptop does not.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labtools import (
    THREE_CLIENTS_PLAN,
    Lab,
    bgp_networks,
    birdc,
    clear_test_lab,
    kernel_bird_routes,
    ping,
    skip_reason,
    tracepath_hops,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab.artifacts import render_plan
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.topology import build_topology, expected_client_routes
from ibgp_tunnel.lab.up import up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

CLIENTS = ("home", "office", "laptop")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    clear_test_lab()
    try:
        st = up(THREE_CLIENTS_PLAN, timeout=60)
        plan = planfile.load(THREE_CLIENTS_PLAN)
        yield Lab(st, plan, render_plan(THREE_CLIENTS_PLAN, plan), build_topology(plan))
    finally:
        down()


def test_reflector_has_one_interface_and_port_per_client(lab: Lab) -> None:
    wireguard = lab.artifacts["vps"]["wireguard"]
    assert sorted(wireguard) == ["wg-home", "wg-laptop", "wg-office"]
    assert len({spec["listenPort"] for spec in wireguard.values()}) == 3
    protocols = birdc(lab.st, "vps", "show", "protocols")
    for client in CLIENTS:
        line = next(row for row in protocols.splitlines() if row.startswith(f"ibgp_{client} "))
        assert "Established" in line


@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_learns_the_routes(lab: Lab, client: str) -> None:
    expected = expected_client_routes(lab.artifacts, client)
    assert expected["ipv4"] >= {"104.16.0.0/13", "172.21.80.0/24"}
    assert bgp_networks(lab.st, client, "ibgp_vps", "master4") == expected["ipv4"]
    assert bgp_networks(lab.st, client, "ibgp_vps", "master6") == expected["ipv6"]
    interface = f"wg-{client}"
    for family, flag in (("ipv4", "-4"), ("ipv6", "-6")):
        routes = kernel_bird_routes(lab.st, client, flag)
        assert set(routes) == expected[family]
        assert all(f"dev {interface} proto bird" in line for line in routes.values())


@pytest.mark.parametrize("client", CLIENTS)
def test_every_lan_leaves_through_the_reflector(lab: Lab, client: str) -> None:
    probe = lab.topo.probes["vps"][0]
    lan = lab.lan(client)
    assert ping(lab.st, lan.node, probe)
    reflector_end = lab.plan["links"][client]["reflector_ipv4"]
    hops = tracepath_hops(lab.st, lan.node, probe)
    assert lan.gateway_ipv4 in hops.get(1, set()), hops
    assert reflector_end in hops.get(2, set()), hops


@pytest.mark.parametrize(("src", "dst"), [("home", "office"), ("office", "home")])
def test_lans_that_import_each_other_reach_each_other(lab: Lab, src: str, dst: str) -> None:
    target = lab.lan(dst)
    assert ping(lab.st, lab.lan(src).node, target.ipv4, count=2)
    assert ping(lab.st, lab.lan(src).node, target.ipv6, count=2)


def test_laptop_does_not_reach_the_lans(lab: Lab) -> None:
    # laptop's import sets leave out "lans": no IPv4 route to them, so its
    # traffic goes out of its WAN, where nothing routes private space back.
    assert "192.168.1.0/24" not in kernel_bird_routes(lab.st, "laptop", "-4")
    assert not ping(lab.st, lab.lan("laptop").node, lab.lan("home").ipv4)
