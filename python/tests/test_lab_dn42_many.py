"""A reflector with several DN42 peers in the lab (issue 22, item 7): the plan of
lab/dn42many.py (one WireGuard tunnel, PSK, ASN and link-local session per peer,
all on the same link-local and DN42 /32 of ours), one namespace per peer with its
own wireguard-go and BIRD. Every session comes up, each peer's valid routes and
only those are imported, our own DN42 prefix reaches every peer, no peer's
route crosses to another (export_sets: our own space only), and a peer announcing
another's prefixes gets none of them in. bench/dn42_lab_scale.py
runs the same lab with 50 peers and measures it.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). This module runs in a lab of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labtools import (
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    bgp_networks,
    birdc,
    environment,
    kernel_bird_routes,
    poll,
    skip_reason,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import dn42lab, dn42many, location
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.status import parse_protocols
from ibgp_tunnel.lab.topology import build_topology
from ibgp_tunnel.lab.up import reconfigure_bird, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-many"
PREFIX = TEST_PREFIX[:-1] + "m-"
PEERS = 5
REFLECTOR, CLIENT = "vps", "home"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    plan_path = dn42many.write_plan(tmp_path_factory.mktemp("many") / "plan.toml", PEERS)
    with environment(**{location.LAB_DIR_ENV: LAB_DIR, location.PREFIX_ENV: PREFIX}):
        down()
        try:
            plan = planfile.load(plan_path)
            st = up(plan_path, timeout=120)
            topo = build_topology(plan, PREFIX)
            yield Lab(st, plan, saved_artifacts(Path(LAB_DIR)), topo)
        finally:
            down()


def test_one_namespace_tunnel_and_bird_per_peer(lab: Lab) -> None:
    peers = lab.topo.dn42_peers
    assert [p.name for p in peers] == [dn42many.peer_name(i + 1) for i in range(PEERS)]
    assert len({p.node for p in peers}) == PEERS
    assert len({p.asn for p in peers}) == PEERS
    for peer in peers:
        names = {d.name for d in lab.st.daemons}
        assert f"{peer.node}/wireguard-go {dn42lab.PEER_INTERFACE}" in names
        assert f"{REFLECTOR}/wireguard-go dn42-{peer.name}" in names
        assert "Established" in birdc(lab.st, peer.node, "show", "protocols", f"to_{REFLECTOR}")


def test_every_session_established_on_the_reflector(lab: Lab) -> None:
    rows = parse_protocols(birdc(lab.st, REFLECTOR, "show", "protocols"))
    dn42 = {p.name: p.info for p in rows if p.proto == "BGP" and p.name.startswith("dn42_")}
    assert set(dn42) == {f"dn42_{p.name}" for p in lab.topo.dn42_peers}
    assert all(info.startswith("Established") for info in dn42.values()), dn42
    for peer in lab.topo.dn42_peers:
        out = birdc(lab.st, REFLECTOR, "show", "protocols", "all", f"dn42_{peer.name}")
        assert f"Neighbor address: {peer.neighbor}%dn42-{peer.name}" in out
        assert f"Neighbor AS:      {peer.asn}" in out


def test_each_peers_valid_routes_and_only_those(lab: Lab) -> None:
    for peer in lab.topo.dn42_peers:
        protocol = f"dn42_{peer.name}"
        got4 = bgp_networks(lab.st, REFLECTOR, protocol, "master4")
        got6 = bgp_networks(lab.st, REFLECTOR, protocol, "master6")
        # DN42 space with a ROA for the peer's ASN; the third of each family
        # (192.168/16, 2001:db8::/32) is outside DN42's sets and refused.
        assert got4 == set(peer.announce_ipv4[:2]), (peer.name, got4)
        assert got6 == set(peer.announce_ipv6[:2]), (peer.name, got6)
    kernel = kernel_bird_routes(lab.st, CLIENT, "-4")
    assert {p.announce_ipv4[0] for p in lab.topo.dn42_peers} <= set(kernel)


def test_our_space_reaches_every_peer_and_no_peer_transits(lab: Lab) -> None:
    proto = f"to_{REFLECTOR}"
    for peer in lab.topo.dn42_peers:
        assert bgp_networks(lab.st, peer.node, proto, "master4") == {dn42many.OWN_V4}
        assert bgp_networks(lab.st, peer.node, proto, "master6") == {dn42many.OWN_V6}


def test_a_peer_announcing_anothers_prefixes_is_refused(lab: Lab) -> None:
    """A hostile peer among many: p2 announces p1's prefixes (and a more specific of
    p1's /24). The ROA names p1's ASN, so the reflector keeps p1's routes and takes
    nothing new from p2; p1's own session and routes are untouched."""
    first, second = lab.topo.dn42_peers[0], lab.topo.dn42_peers[1]
    stolen4, stolen6 = first.announce_ipv4[0], first.announce_ipv6[0]
    more_specific = stolen4.replace(".0/24", ".128/25")
    config = (
        dn42lab.peer_bird_config(second)
        .replace(
            "protocol static announce4 {\n  ipv4;\n",
            "protocol static announce4 {\n  ipv4;\n"
            f"  route {stolen4} unreachable;\n  route {more_specific} unreachable;\n",
        )
        .replace(
            "protocol static announce6 {\n  ipv6;\n",
            f"protocol static announce6 {{\n  ipv6;\n  route {stolen6} unreachable;\n",
        )
    )
    assert config != dn42lab.peer_bird_config(second)
    reconfigure_bird(lab.lab_dir, second.node, config)
    try:
        export = ("show", "route", "export", f"to_{REFLECTOR}")
        poll(
            lambda: more_specific in birdc(lab.st, second.node, *export),
            60,
            "the hostile peer exporting its stolen routes",
        )
        # Its session stays up (a refused route is no reason to drop it) ...
        assert "Established" in birdc(lab.st, REFLECTOR, "show", "protocols", f"dn42_{second.name}")
        # ... and nothing it stole is imported: the owner's routes alone.
        assert bgp_networks(lab.st, REFLECTOR, f"dn42_{second.name}", "master4") == set(
            second.announce_ipv4[:2]
        )
        assert stolen6 not in bgp_networks(lab.st, REFLECTOR, f"dn42_{second.name}", "master6")
        assert stolen4 in bgp_networks(lab.st, REFLECTOR, f"dn42_{first.name}", "master4")
        assert more_specific not in birdc(lab.st, REFLECTOR, "show", "route", "table", "master4")
        assert more_specific not in kernel_bird_routes(lab.st, CLIENT, "-4")
    finally:
        reconfigure_bird(lab.lab_dir, second.node, dn42lab.peer_bird_config(second))
