"""The lab's pure parts: topology, prefix matching, firewall text, parsers. No root."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from labtools import EXAMPLE_PLAN, THREE_CLIENTS_PLAN

from ibgp_tunnel.core import evaluate_core
from ibgp_tunnel.lab import dn42lab, firewall
from ibgp_tunnel.lab.artifacts import render_plan
from ibgp_tunnel.lab.netns import address_command, ns_argv, route_command
from ibgp_tunnel.lab.peer import dn42_peer_bird_config
from ibgp_tunnel.lab.status import parse_protocols, parse_route_counts
from ibgp_tunnel.lab.topology import (
    Address,
    Route,
    build_topology,
    expected_client_routes,
    expected_kernel_routes,
    probe_address,
)


def plan(path):
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize(
    ("prefix", "pattern", "expected"),
    [
        ("172.21.80.0/24", "172.20.0.0/14{21,29}", True),
        ("172.20.0.0/16", "172.20.0.0/14{21,29}", False),
        ("172.31.5.0/24", "172.31.0.0/16+", True),
        # BIRD compares the first min(len, pattern len) bits: shorter covering nets match.
        ("10.0.0.0/7", "10.0.0.0/8-", True),
        ("12.0.0.0/7", "10.0.0.0/8-", False),
        ("10.0.0.0/8", "10.0.0.0/8-", True),
        ("104.16.0.0/13", "104.16.0.0/13", True),
        ("104.16.0.0/14", "104.16.0.0/13", False),
        ("fd42:4200::/48", "fd00::/8{44,64}", True),
        ("2001:db8::/48", "fd00::/8{44,64}", False),
        ("172.21.0.0/24", "fd00::/8{44,64}", False),
    ],
)
def test_prefix_matches_bird_semantics(prefix, pattern, expected):
    """The core's one matcher (grammar/patterns.nix), which the route model filters with."""
    found = evaluate_core(
        "{ coreFile, pattern, prefix }: (import coreFile).routes.matches pattern prefix",
        "the core's matcher failed",
        pattern=pattern,
        prefix=prefix,
    )
    assert found is expected


def test_probe_prefers_the_seed_address():
    assert probe_address("104.16.0.0/13", "104.16.132.229") == "104.16.132.229"
    assert probe_address("172.64.0.0/13", "104.16.132.229") == "172.64.0.1"


def test_example_topology():
    topo = build_topology(plan(EXAMPLE_PLAN))
    assert set(topo.nodes) == {"dmz", "pve", "inet", "dn42", "lan-pve"}
    assert all(node.netns.startswith("ibgpt-") for node in topo.nodes.values())
    uplink = next(v for v in topo.veths if v.a_node == "dmz" and v.b_node == "inet")
    # Clients dial the plan's endpoint: it must be the reflector's uplink address.
    assert uplink.a.name == "eth0"
    assert uplink.a.addresses[0].cidr == "203.0.113.10/32"
    # The example's DN42 peer is behind a tunnel the module runs: the veth only
    # carries its UDP; dn42-peer1 is the rendered WireGuard interface.
    underlay = next(v for v in topo.veths if v.b_node == "dn42")
    assert underlay.a.name == "dn42u0"
    assert underlay.b.addresses[0].cidr == "198.18.0.1/31"
    (peer,) = topo.dn42_peers
    assert peer.tunnel is not None and peer.tunnel.interface == "dn42-peer1"
    assert peer.neighbor == "fe80::1080" and peer.tunnel.reflector_link_local == "fe80::38"
    lan = next(v for v in topo.veths if v.b_node == "lan-pve")
    assert lan.a.name == "vmbr0"
    assert topo.probes["dmz"] == ("104.16.132.229", "2606:4700::1111")
    # Nothing of the lab ever sits in the root namespace.
    assert {v.a_node for v in topo.veths} | {v.b_node for v in topo.veths} <= set(topo.nodes)


def test_example_expected_routes_filter_like_bird():
    data = plan(EXAMPLE_PLAN)
    expected = expected_client_routes(render_plan(EXAMPLE_PLAN, data), "pve")
    assert expected["ipv4"] == set(data["hosts"]["dmz"]["announce"]["ipv4"]) | {
        "172.21.80.0/24",
        "172.22.80.0/26",
    }
    # The DN42 peer's 2001:db8:d420::/48 is not DN42 space: the reflector drops it.
    assert expected["ipv6"] == {
        "2606:4700::/32",
        "2803:f800::/32",
        "fd42:4200::/48",
        "fd42:4200:1::/64",
    }


def test_three_clients_topology():
    topo = build_topology(plan(THREE_CLIENTS_PLAN))
    assert {"vps", "home", "office", "laptop", "lan-home", "lan-office", "lan-laptop"} <= set(
        topo.nodes
    )
    names = {(v.a_node, v.a.name) for v in topo.veths}
    assert {("vps", "eth0"), ("vps", "dn42-peer1"), ("home", "lan0"), ("laptop", "wan0")} <= names
    # A LAN sits inside the prefix its router announces, so LAN-to-LAN routing is real.
    home = next(lan for lan in topo.lan_clients if lan.router == "home")
    assert (home.ipv4, home.gateway_ipv4) == ("192.168.1.100", "192.168.1.1")
    laptop = next(lan for lan in topo.lan_clients if lan.router == "laptop")
    assert laptop.ipv4.startswith("10.42.")


def test_firewall_mimics_nixos():
    inputs = firewall.FirewallInputs(
        (51821,), 'iifname "wg-ibgp" accept\n', 'iifname "wg-ibgp" accept\n'
    )
    text = firewall.nixos_firewall(inputs)
    assert "table inet nixos-fw {" in text
    assert "type filter hook input priority filter; policy drop;" in text
    assert "udp dport { 51821 } accept" in text
    assert "type filter hook forward priority filter; policy drop;" in text
    assert "established : accept, related : accept" in text
    assert "fib saddr . mark . iif oif exists accept" in text
    chain = text[text.index("chain forward-allow") :]
    assert 'iifname "wg-ibgp" accept' in chain
    blocked = firewall.nixos_firewall(firewall.FirewallInputs((), "", ""))
    assert "udp dport {" not in blocked[blocked.index("chain input-allow") :]


def test_rendered_interface_ports_become_input_rules():
    artifacts = {
        "firewallInterfaces": {
            "wg-ibgp": {"allowedTCPPorts": [179], "allowedUDPPorts": [4784]},
            "dn42-peer1": {"allowedTCPPorts": [179], "allowedUDPPorts": []},
        },
        "nftables": {},
    }
    assert firewall.interface_input_rules(artifacts) == (
        'iifname "wg-ibgp" tcp dport { 179 } accept\n'
        'iifname "wg-ibgp" udp dport { 4784 } accept\n'
        'iifname "dn42-peer1" tcp dport { 179 } accept\n'
    )
    assert firewall.interface_input_rules({"nftables": {}}) == ""


def test_replace_table_is_idempotent_text():
    script = firewall.replace_table("inet", "ibgp-tunnel", "table inet ibgp-tunnel {\n}\n")
    assert script.startswith("table inet ibgp-tunnel\ndelete table inet ibgp-tunnel\n")


def test_commands():
    assert ns_argv("ibgpt-x", ["wg", "show"])[:4] == ["ip", "netns", "exec", "ibgpt-x"]
    assert address_command("eth0", Address("2001:db8::1/64")).endswith("nodad")
    assert route_command(Route("default", "2001:db8::1")) == "route replace ::/0 via 2001:db8::1"


def test_dn42_peer_config_names_the_ipv6_next_hop():
    # A peer reached over a plain interface (three-clients plan): one IPv4 session.
    (peer,) = build_topology(plan(THREE_CLIENTS_PLAN)).dn42_peers
    assert peer.tunnel is None
    text = dn42_peer_bird_config(peer)
    assert f"neighbor {peer.reflector_ipv4} as {peer.reflector_asn};" in text
    assert f"next hop address {peer.neighbor_ipv6};" in text


def test_dn42_tunnel_peer_config_is_one_link_local_session():
    (peer,) = build_topology(plan(EXAMPLE_PLAN)).dn42_peers
    text = dn42lab.peer_bird_config(peer)
    assert "neighbor fe80::38 as 4242420038;" in text
    assert 'interface "wg0";' in text and "source address fe80::1080;" in text
    assert "extended next hop on;" in text


def test_parsers():
    protocols = parse_protocols(
        "BIRD 2.0.12 ready.\n"
        "Name       Proto      Table      State  Since         Info\n"
        "device1    Device     ---        up     17:19:16.060  \n"
        "ibgp_pve   BGP        ---        start  17:20:03.441  Active        Socket: x\n"
    )
    assert [(p.name, p.state, p.info) for p in protocols] == [
        ("device1", "up", ""),
        ("ibgp_pve", "start", "Active        Socket: x"),
    ]
    assert parse_route_counts("8 of 8 routes for 8 networks in table master4\n") == {"master4": 8}


def test_expected_kernel_routes_follow_the_kernel_export_sets() -> None:
    """What `lab up` waits for: a reflector installs its DN42 routes (and its clients'
    announcements), a client what it learns; nobody its own unreachable statics."""
    artifacts = render_plan(EXAMPLE_PLAN, plan(EXAMPLE_PLAN))
    assert expected_kernel_routes(artifacts, "dmz") == {
        "172.21.80.0/24",
        "172.22.80.0/26",
        "fd42:4200::/48",
        "fd42:4200:1::/64",
    }
    client = expected_client_routes(artifacts, "pve")
    assert expected_kernel_routes(artifacts, "pve") == client["ipv4"] | client["ipv6"]
    three = render_plan(THREE_CLIENTS_PLAN, plan(THREE_CLIENTS_PLAN))
    vps = expected_kernel_routes(three, "vps")
    assert {"192.168.1.0/24", "fd42:4242:2::/64"} <= vps
    assert "104.16.0.0/13" not in vps  # its own announcement: an unreachable static


def test_lab_location_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second lab is a matter of two variables (the CLI's --lab-dir and --prefix set
    them); a prefix that could clash or is too long is refused with the fix."""
    from ibgp_tunnel.lab import location
    from ibgp_tunnel.lab.errors import LabError

    monkeypatch.setenv(location.LAB_DIR_ENV, "/run/other-lab")
    monkeypatch.setenv(location.PREFIX_ENV, "other-")
    assert location.lab_dir() == Path("/run/other-lab")
    assert location.netns_prefix() == "other-"
    assert build_topology(plan(EXAMPLE_PLAN), "other-").nodes["dmz"].netns == "other-dmz"
    for bad in ("Caps-", "nodash", "much-too-long-", "a b-", "../x-"):
        monkeypatch.setenv(location.PREFIX_ENV, bad)
        with pytest.raises(LabError, match="namespace prefix"):
            location.netns_prefix()
    monkeypatch.setenv(location.LAB_DIR_ENV, "relative/dir")
    with pytest.raises(LabError, match="absolute path"):
        location.lab_dir()
    monkeypatch.setenv(location.BIRD_DIR_ENV, "/nonexistent")
    with pytest.raises(LabError, match="holds no executable bird"):
        location.bird_tool("bird")
