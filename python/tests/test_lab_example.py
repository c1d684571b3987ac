"""The example plan in the lab: the seed's "Results", then its four pitfalls.

The lab goes up once for this module. Each pitfall test breaks one thing on
the running lab, shows the path breaks, puts the rendered configuration back
and shows the path works again (restoring in `finally`, so a failure does not
poison the tests after it).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    Lab,
    bgp_networks,
    birdc,
    clear_test_lab,
    conntrack_entries,
    kernel_bird_routes,
    peer_address_seen,
    ping,
    poll,
    skip_reason,
    tracepath_hops,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import faults, firewall, netns
from ibgp_tunnel.lab.artifacts import render_plan
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.topology import build_topology, expected_client_routes
from ibgp_tunnel.lab.up import apply_nft, firewall_script_for, node_dir, reconfigure_bird, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

REFLECTOR, CLIENT, LAN = "dmz", "pve", "lan-pve"
PROBE4, PROBE6 = "104.16.132.229", "2606:4700::1111"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    clear_test_lab()
    # The example's sops files are encrypted to the committed test-only age key.
    previous = os.environ.get("SOPS_AGE_KEY_FILE")
    os.environ["SOPS_AGE_KEY_FILE"] = str(REPO / "secrets" / "test-age-key.txt")
    try:
        st = up(EXAMPLE_PLAN, timeout=60)
        plan = planfile.load(EXAMPLE_PLAN)
        yield Lab(st, plan, render_plan(EXAMPLE_PLAN, plan), build_topology(plan))
    finally:
        down()
        if previous is None:
            os.environ.pop("SOPS_AGE_KEY_FILE", None)
        else:
            os.environ["SOPS_AGE_KEY_FILE"] = previous


# --- the seed's "Results" ------------------------------------------------------------


def test_ibgp_established_on_both_sides(lab: Lab) -> None:
    assert "Established" in birdc(lab.st, REFLECTOR, "show", "protocols", "ibgp_pve")
    assert "Established" in birdc(lab.st, CLIENT, "show", "protocols", "ibgp_dmz")
    assert "Established" in birdc(lab.st, REFLECTOR, "show", "protocols", "dn42_peer1")


def test_rendered_firewall_lets_bgp_in() -> None:
    """A NixOS host drops TCP 179 unless the artifacts open it on every tunnel and
    DN42 interface; the lab loads only the rendered rules, so its sessions prove it."""
    plan = planfile.load(EXAMPLE_PLAN)
    artifacts = render_plan(EXAMPLE_PLAN, plan)
    # DN42 tunnels carry eBGP without BFD: only TCP 179 (asserted below).
    dn42 = {
        peer.get("interface") or f"dn42-{name}"
        for host in plan["hosts"].values()
        for name, peer in host.get("dn42_peers", {}).items()
    }
    for host, rendered in artifacts.items():
        rules = firewall.interface_input_rules(rendered)
        for interface in set(rendered["wireguard"]) - dn42:
            assert f'iifname "{interface}" tcp dport {{ 179 }} accept' in rules, host
            assert f'iifname "{interface}" udp dport {{ 4784 }} accept' in rules, host
    assert 'iifname "dn42-peer1" tcp dport { 179 } accept' in firewall.interface_input_rules(
        artifacts[REFLECTOR]
    )


def test_keys_come_from_the_example_sops_files(lab: Lab) -> None:
    if any(lab.st.nodes[h].get("keys") != "sops" for h in (REFLECTOR, CLIENT)):
        pytest.skip("sops could not decrypt the example's secrets here; keys were generated")
    for host in (REFLECTOR, CLIENT):
        out = netns.ns_run(
            lab.ns(host),
            ["wg", "show", "wg-ibgp", "public-key"],
            run_dir=Path(lab.st.nodes[host]["run_dir"]),
        ).stdout.strip()
        assert out == lab.plan["hosts"][host]["public_key"]


def test_client_learns_what_the_reflector_announces_and_dn42_after_filtering(lab: Lab) -> None:
    expected = expected_client_routes(lab.artifacts, CLIENT)
    assert bgp_networks(lab.st, CLIENT, "ibgp_dmz", "master4") == expected["ipv4"]
    assert bgp_networks(lab.st, CLIENT, "ibgp_dmz", "master6") == expected["ipv6"]
    # `show route count` as in the seed: learned routes plus the tunnel's own subnet.
    counts = birdc(lab.st, CLIENT, "show", "route", "count")
    assert f"{len(expected['ipv4']) + 1} of {len(expected['ipv4']) + 1} routes" in counts


def test_client_kernel_has_the_prefixes_via_the_tunnel(lab: Lab) -> None:
    expected = expected_client_routes(lab.artifacts, CLIENT)
    for family, flag in (("ipv4", "-4"), ("ipv6", "-6")):
        routes = kernel_bird_routes(lab.st, CLIENT, flag)
        assert set(routes) == expected[family]
        for line in routes.values():
            assert "dev wg-ibgp proto bird" in line


@pytest.mark.parametrize("probe", [PROBE4, PROBE6])
def test_lan_traffic_leaves_through_the_reflector(lab: Lab, probe: str) -> None:
    assert ping(lab.st, LAN, probe, count=2)
    hops = tracepath_hops(lab.st, LAN, probe)
    lan = lab.topo.lan_clients[0]
    router = lan.gateway_ipv4 if ":" not in probe else lan.gateway_ipv6
    tunnel = next(
        ip.split("/")[0]
        for ip in lab.artifacts[REFLECTOR]["wireguard"]["wg-ibgp"]["ips"]
        if (":" in ip) == (":" in probe)
    )
    assert router in hops.get(1, set()), hops
    assert tunnel in hops.get(2, set()), hops  # 10.255.255.2: the VPS, through the tunnel
    if ":" not in probe:
        assert tunnel == "10.255.255.2"


def test_dn42_prefixes_are_reachable_from_the_lan(lab: Lab) -> None:
    peer = lab.topo.dn42_peers[0]
    for prefix in (peer.announce_ipv4[0], peer.announce_ipv6[0]):
        address = str(ipaddress.ip_network(prefix).network_address + 1)
        assert ping(lab.st, LAN, address, count=2), address


def test_nat_at_both_ends(lab: Lab) -> None:
    """The far side sees the reflector's uplink address; in between, the reflector sees
    the client's tunnel address, not the LAN host's."""
    seen = peer_address_seen(lab.st, "inet", PROBE4, LAN, port=18080)
    assert seen == lab.plan["hosts"][REFLECTOR]["endpoint"]
    flows = [e for e in conntrack_entries(lab.st, REFLECTOR) if "dport=18080" in e]
    assert flows, "no conntrack entry for the flow on the reflector"
    assert "src=10.255.255.1 " in flows[0]  # the client's masquerade
    assert "dst=203.0.113.10 " in flows[0]  # the reply goes to the reflector's masquerade
    uplink6 = next(
        a.cidr.split("/")[0]
        for v in lab.topo.veths
        if v.a_node == REFLECTOR and v.b_node == "inet"
        for a in v.a.addresses
        if ":" in a.cidr
    )
    assert peer_address_seen(lab.st, "inet", PROBE6, LAN, port=18081) == uplink6
    dn42_address = str(ipaddress.ip_network(lab.topo.dn42_peers[0].announce_ipv4[0])[1])
    # Toward DN42 the reflector masquerades behind its peering address.
    assert peer_address_seen(lab.st, "dn42", dn42_address, LAN, port=18082) == (
        lab.topo.dn42_peers[0].reflector_ipv4
    )


# --- the four pitfalls -------------------------------------------------------------

# A restarted session sometimes meets BIRD's error wait (60 s by default, see
# LAB-NOTES) before it reconnects; the deadline covers it.
SESSION_DEADLINE = 90


def _reload_firewall(lab: Lab, host: str, **overrides: Any) -> None:
    script = firewall_script_for(lab.artifacts[host], **overrides)
    apply_nft(lab.ns(host), script, node_dir(lab.lab_dir, host) / "nftables-test.nft")
    # Rules apply to new flows: forget the tracked ones, as a rebooted host would.
    netns.flush_conntrack(lab.ns(host))


def _replace_nat(lab: Lab, host: str, ruleset: str) -> None:
    nft = lab.artifacts[host]["nftables"]
    script = firewall.replace_table("inet", nft["table"], ruleset)
    apply_nft(lab.ns(host), script, node_dir(lab.lab_dir, host) / "nat-test.nft")
    netns.flush_conntrack(lab.ns(host))


def _via_tunnel(lab: Lab, address: str = PROBE4) -> bool:
    """Whether the client routes `address` into the tunnel. The probe also answers on
    the client's own internet path, so a ping alone does not show the tunnel works."""
    route = netns.run(["ip", "-n", lab.ns(CLIENT), "route", "get", address]).stdout
    return " dev wg-ibgp " in route


def _path_works(lab: Lab) -> bool:
    """LAN traffic to the probe goes through the tunnel and is answered."""
    return _via_tunnel(lab) and ping(lab.st, LAN, PROBE4)


def _assert_broken_then_fixed(lab: Lab, restore: Any) -> None:
    try:
        assert not ping(lab.st, LAN, PROBE4, count=2), "the path still works while broken"
    finally:
        restore()
    poll(lambda: _path_works(lab), 15, "path through the tunnel works again")


def test_pitfall_1_wireguard_port_blocked_on_the_reflector(lab: Lab) -> None:
    """The seed met the closed port at a cold start: the reflector had never heard from
    its client, so it knew no endpoint to send to. A running reflector does know one and
    keeps sending (BFD, keepalives), and the conntrack entries of that outbound flow let
    the client's packets in as replies even through a closed port. So: close the port,
    restart the reflector's wireguard-go (it forgets the endpoint) and forget every
    tracked flow."""
    tunnel = lab.artifacts[REFLECTOR]["wireguard"]["wg-ibgp"]["ips"][0].split("/")[0]
    _reload_firewall(lab, REFLECTOR, allowed_udp_ports=())
    try:
        faults.restart_wireguard(lab.st, REFLECTOR)
        netns.flush_conntrack(lab.ns(REFLECTOR))
        # BFD ends the session; after the graceful restart time the client drops the
        # routes and the probe falls back to the client's own default route.
        poll(lambda: not _via_tunnel(lab), 30, "the client stops routing into the tunnel")
        assert not ping(lab.st, CLIENT, tunnel, count=2), "the tunnel still carries traffic"
        handshakes = netns.ns_run(
            lab.ns(REFLECTOR),
            ["wg", "show", "wg-ibgp", "endpoints"],
            run_dir=Path(lab.st.nodes[REFLECTOR]["run_dir"]),
        ).stdout
        assert "(none)" in handshakes, "the reflector learnt the client's endpoint"
    finally:
        _reload_firewall(lab, REFLECTOR)
    # The client retries its handshake every few seconds; BGP follows within seconds.
    poll(lambda: _path_works(lab), SESSION_DEADLINE, "path through the tunnel works again")
    assert tunnel in tracepath_hops(lab.st, LAN, PROBE4).get(2, set())


@pytest.mark.parametrize("host", [CLIENT, REFLECTOR])
def test_pitfall_2_forward_rules_missing(lab: Lab, host: str) -> None:
    _reload_firewall(lab, host, forward_rules="")
    _assert_broken_then_fixed(lab, lambda: _reload_firewall(lab, host))


@pytest.mark.parametrize("host", [CLIENT, REFLECTOR])
def test_pitfall_3_nat_missing(lab: Lab, host: str) -> None:
    _replace_nat(lab, host, "")
    _assert_broken_then_fixed(
        lab, lambda: _replace_nat(lab, host, lab.artifacts[host]["nftables"]["ruleset"])
    )


def _restart_ibgp(lab: Lab) -> None:
    # A changed next hop only applies to a new session, as after a reboot.
    birdc(lab.st, REFLECTOR, "restart", "ibgp_pve")


def _client_session(lab: Lab) -> str | None:
    """The client's iBGP session's "Since" when Established, else None."""
    out = birdc(lab.st, CLIENT, "show", "protocols", "ibgp_dmz")
    row = next((line for line in out.splitlines() if line.startswith("ibgp_dmz ")), "")
    return row.split()[4] if "Established" in row else None


def test_pitfall_4_ipv6_without_explicit_next_hop(lab: Lab) -> None:
    """Without a global IPv6 address on the tunnel and without `next hop address`,
    the reflector cannot name an IPv6 next hop: IPv6 routes never reach the client."""
    spec = lab.artifacts[REFLECTOR]["wireguard"]["wg-ibgp"]
    v6 = next(ip for ip in spec["ips"] if ":" in ip)
    rendered = lab.artifacts[REFLECTOR]["birdConfig"]
    assert "next hop address" in rendered
    broken = "\n".join(line for line in rendered.splitlines() if "next hop address" not in line)

    before = _client_session(lab)
    netns.run(["ip", "-n", lab.ns(REFLECTOR), "address", "del", v6, "dev", "wg-ibgp"])
    reconfigure_bird(lab.lab_dir, REFLECTOR, broken + "\n")
    _restart_ibgp(lab)
    expected4 = expected_client_routes(lab.artifacts, CLIENT)["ipv4"]
    try:
        # A new session (not the old one still standing) with all IPv4 routes in...
        poll(
            lambda: (
                _client_session(lab) not in (before, None)
                and set(kernel_bird_routes(lab.st, CLIENT, "-4")) == expected4
            ),
            SESSION_DEADLINE,
            "new iBGP session with IPv4 routes",
        )
        # ...and no IPv6 route: the path to the IPv6 probe is broken.
        assert not ping(lab.st, LAN, PROBE6, count=2)
        assert not kernel_bird_routes(lab.st, CLIENT, "-6")
    finally:
        netns.ip_batch(lab.ns(REFLECTOR), [f"address add {v6} dev wg-ibgp nodad"])
        reconfigure_bird(lab.lab_dir, REFLECTOR, rendered)
        _restart_ibgp(lab)
    expected = expected_client_routes(lab.artifacts, CLIENT)["ipv6"]
    poll(
        lambda: set(kernel_bird_routes(lab.st, CLIENT, "-6")) == expected,
        SESSION_DEADLINE,
        "IPv6 routes back with the rendered config",
    )
    poll(lambda: ping(lab.st, LAN, PROBE6), 10, "IPv6 path works again")
