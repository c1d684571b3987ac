"""DN42 peering in the lab, the way DN42 peers expect it: the example plan's
peer1 behind the WireGuard tunnel the module renders (link-local only), one
multiprotocol session over fe80::, ROA from files the lab serves (file://)
and refreshes with the module's script, DN42's link communities. ROA files: the
plan is the example's twin with them (plans/example-roa-files.toml); the example
itself runs RPKI over RTR (test_lab_rtr.py).

The plan is that twin with pve announcing its LAN (in DN42 space, so the
reflector routes it) and opening one port there to DN42 (`dn42_inbound`): DN42
reaches nothing else at home unsolicited (issue 19, item 4), while the LAN
reaches DN42.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). This module runs in a lab of its own
(directory and namespace prefix), never in another test's or a user's."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from labtools import (
    EXAMPLE_PLAN,
    EXAMPLE_ROA_FILES_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    environment,
    in_node,
    kernel_bird_routes,
    poll,
    skip_reason,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import dn42lab, location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.firewall import interface_input_rules
from ibgp_tunnel.lab.topology import build_topology
from ibgp_tunnel.lab.up import (
    apply_nft,
    find_secrets_dir,
    host_firewall_script,
    node_dir,
    reconfigure_bird,
    up,
)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

# Beside the other lab tests' lab, named after it, so IBGP_TUNNEL_TEST_LAB_DIR and
# IBGP_TUNNEL_TEST_LAB_PREFIX move it too (two test runs can share a machine).
LAB_DIR = TEST_LAB_DIR + "-dn42"
PREFIX = TEST_PREFIX[:-1] + "n-"
REFLECTOR, CLIENT, PEER = "dmz", "pve", "dn42"
PEER_V4, PEER_V6 = "172.21.80.0/24", "fd42:4200::/48"
# Announced by the peer, but the ROA says another AS originates it.
HIJACK_V4 = "172.21.99.0/24"
OTHER_AS = 4242429999
# Polls without a deadline of their own (the longest one before 0eb15e4 raised them
# all to 90 s for the ROA stall, since explained: docs/performance.md "ROA refresh").
DEADLINE = 30
# pve's LAN, announced (DN42 space: the reflector installs it), and the one port
# there the plan opens to DN42.
HOME_V4, HOME_V6 = "172.23.101.64/27", "fd42:4242:38::/64"
OPENED_PORT = 8443
HOME_LAN = f"""announce = {{ ipv4 = ["{HOME_V4}"], ipv6 = ["{HOME_V6}"] }}
dn42_inbound = [
  {{ prefix = "{HOME_V4}", proto = "tcp", port = {OPENED_PORT} }},
  {{ prefix = "{HOME_V6}", proto = "tcp", port = {OPENED_PORT} }},
]
"""
# The peer's own hosts: the first address of each prefix it announces (lab topology).
PEER_HOST4, PEER_HOST6 = "172.21.80.1", "fd42:4200::1"
EXPORTER_PORTS = (9324, 9586, 9100)  # BIRD, WireGuard, node (DN42 latency)
CLOSED_PORT = 80


def inbound_plan(directory: Path) -> Path:
    """The example plan on ROA files with pve announcing its LAN and opening
    OPENED_PORT there."""
    text = EXAMPLE_ROA_FILES_PLAN.read_text()
    anchor = "accept_ra_interfaces = []\n"
    assert text.count(anchor) == 1, "the example's [hosts.pve] changed: update inbound_plan"
    path = directory / "plan.toml"
    path.write_text(text.replace(anchor, anchor + HOME_LAN))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dn42lab.Dn42Lab]]:
    plan_path = inbound_plan(tmp_path_factory.mktemp("dn42-plan"))
    with environment(
        **{
            location.LAB_DIR_ENV: LAB_DIR,
            location.PREFIX_ENV: PREFIX,
            "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "test-age-key.txt"),
        }
    ):
        down()
        try:
            plan = planfile.load(plan_path)
            secrets = find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
            st = up(plan_path, timeout=90, secrets_dir=secrets)
            topo = build_topology(plan, PREFIX)
            artifacts = saved_artifacts(Path(LAB_DIR))
            yield Lab(st, plan, artifacts, topo), dn42lab.Dn42Lab(Path(LAB_DIR), topo)
        finally:
            down()


def _peer(lab: Lab) -> dn42lab.Dn42Peer:
    (peer,) = lab.topo.dn42_peers
    assert peer.tunnel is not None
    return peer


def test_one_session_over_ipv6_link_local(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    out = birdc(env.st, REFLECTOR, "show", "protocols", "all", "dn42_peer1")
    assert "Established" in out
    assert "Neighbor address: fe80::1080%dn42-peer1" in out
    # IPv4 and IPv6 over the one session, IPv4 with extended next hop.
    assert "Channel ipv4" in out and "Channel ipv6" in out
    assert "Extended next hop" in out
    # IPv6 on the tunnel is link-local only; IPv4 only the plan's /32 pair.
    assert "fe80::38/64" in _addresses(env, REFLECTOR, "dn42-peer1")
    for node, ifname in ((REFLECTOR, "dn42-peer1"), (PEER, dn42lab.PEER_INTERFACE)):
        v6 = [a for a in _addresses(env, node, ifname) if ":" in a]
        assert v6 and all(a.startswith("fe80:") for a in v6), v6
    v4 = [a for a in _addresses(env, REFLECTOR, "dn42-peer1") if ":" not in a]
    assert v4 == ["172.23.101.1"], v4  # `ip -o` prints a peer address as "A peer B/32"


def test_the_ipv4_pair_is_point_to_point(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    import subprocess

    out = subprocess.run(
        ["ip", "-n", env.ns(REFLECTOR), "-4", "address", "show", "dev", "dn42-peer1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "inet 172.23.101.1 peer 172.20.42.1/32" in out, out


def _addresses(env: Lab, node: str, ifname: str) -> list[str]:
    import subprocess

    out = subprocess.run(
        ["ip", "-n", env.ns(node), "-o", "address", "show", "dev", ifname],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split()[3] for line in out.splitlines()]


def test_peer_routes_reach_the_client_kernel_through_the_reflector(
    lab: tuple[Lab, dn42lab.Dn42Lab],
) -> None:
    env, _ = lab
    # On the reflector: IPv4 via the peer's IPv6 link-local next hop (RFC 8950).
    v4 = poll(lambda: kernel_bird_routes(env.st, REFLECTOR, "-4").get(PEER_V4), 10, "v4 route")
    assert "via inet6 fe80::1080 dev dn42-peer1" in v4
    v6 = poll(lambda: kernel_bird_routes(env.st, REFLECTOR, "-6").get(PEER_V6), 10, "v6 route")
    assert "via fe80::1080 dev dn42-peer1" in v6
    # On the client: over iBGP with next hop self, into its own tunnel.
    for family, prefix in (("-4", PEER_V4), ("-6", PEER_V6)):
        line = poll(
            lambda f=family, p=prefix: kernel_bird_routes(env.st, CLIENT, f).get(p), 10, prefix
        )
        assert "dev wg-ibgp" in line and "fe80" not in line


def test_client_routes_carry_the_dn42_link_communities(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    out = birdc(env.st, CLIENT, "show", "route", PEER_V4, "all")
    # hosts/plan.toml: latency 2, bandwidth 24; crypto 34 from the WireGuard tunnel.
    assert "(64511,2) (64511,24) (64511,34)" in out, out


def test_communities_keep_the_worst_of_each_kind(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    peer = _peer(env)
    # The peer sends a route already marked slower, thinner and unencrypted upstream.
    config = dn42lab.peer_bird_config(peer).replace(
        f"  route {peer.announce_ipv4[0]} unreachable;",
        f"  route {peer.announce_ipv4[0]} unreachable {{ bgp_community.add((64511, 5)); "
        "bgp_community.add((64511, 1)); bgp_community.add((64511, 22)); "
        "bgp_community.add((64511, 26)); bgp_community.add((64511, 31)); };",
    )
    reconfigure_bird(env.lab_dir, PEER, config)
    try:

        def tagged() -> str | None:
            out = birdc(env.st, CLIENT, "show", "route", PEER_V4, "all")
            return out if "(64511,5) (64511,22) (64511,31)" in out else None

        out = poll(tagged, 15, "worst-of communities at the client")
        for better in ("(64511,1)", "(64511,2)", "(64511,24)", "(64511,26)", "(64511,34)"):
            assert better not in out
    finally:
        reconfigure_bird(env.lab_dir, PEER, dn42lab.peer_bird_config(peer))


def test_roa_invalid_route_is_refused_until_the_roa_file_changes(
    lab: tuple[Lab, dn42lab.Dn42Lab],
) -> None:
    env, dn42 = lab
    peer = _peer(env)
    served = dn42.served(REFLECTOR, "ipv4")
    good = served.read_text()
    socket = Path(env.st.nodes[REFLECTOR]["bird_socket"])
    # The registry says another AS originates HIJACK_V4; the peer announces it anyway.
    dn42.serve_roa(REFLECTOR, "ipv4", good + f"route {HIJACK_V4} max 24 as {OTHER_AS};\n")
    refreshed = dn42.refresh_roa(REFLECTOR, socket)
    assert refreshed.returncode == 0, refreshed.stderr
    config = dn42lab.peer_bird_config(peer).replace(
        "protocol static announce4 {\n  ipv4;\n",
        f"protocol static announce4 {{\n  ipv4;\n  route {HIJACK_V4} unreachable;\n",
    )
    reconfigure_bird(env.lab_dir, PEER, config)
    try:
        # The peer exports it; the reflector refuses it (ROA invalid).
        poll(
            lambda: HIJACK_V4 in birdc(env.st, PEER, "show", "route", "export", "to_dmz"),
            10,
            "the peer exporting the hijack",
        )
        assert HIJACK_V4 not in birdc(env.st, REFLECTOR, "show", "route", "table", "master4")
        assert HIJACK_V4 not in kernel_bird_routes(env.st, CLIENT, "-4")
        # The ROA file changes (the prefix moved to the peer's AS): refreshed, BIRD
        # reloads, and the route is imported and reaches the client.
        dn42.serve_roa(REFLECTOR, "ipv4", good + f"route {HIJACK_V4} max 24 as {peer.asn};\n")
        refreshed = dn42.refresh_roa(REFLECTOR, socket)
        assert refreshed.returncode == 0, refreshed.stderr
        assert "BIRD reconfigured" in refreshed.stdout
        # BIRD 3 took up to 20 s here when the client's kernel scanned every 20 s: its
        # kernel protocol can leave a route out until the next scan (now every second;
        # docs/upstream/bird3-krt-seen-map). bench/roa_refresh.py measures it.
        poll(lambda: kernel_bird_routes(env.st, CLIENT, "-4").get(HIJACK_V4), 15, "ROA-valid")
        # An unchanged file leaves BIRD alone.
        again = dn42.refresh_roa(REFLECTOR, socket)
        assert again.returncode == 0 and "reconfigured" not in again.stdout
    finally:
        dn42.serve_roa(REFLECTOR, "ipv4", good)
        dn42.refresh_roa(REFLECTOR, socket)
        reconfigure_bird(env.lab_dir, PEER, dn42lab.peer_bird_config(peer))


# A ROA file that closes its `protocol static` and opens its own: the reflector
# would reflect the route to the clients, which import the dn42 set.
INJECTED_V4 = "172.22.99.0/24"


def _injection(good: str) -> str:
    return (
        good + f"}}\nprotocol static evil4 {{\n  ipv4;\n  route {INJECTED_V4} unreachable;\n}}\n"
        "protocol static evil_tail {\n  roa4 { table dn42_roa4; };\n"
    )


def test_a_roa_file_that_injects_config_never_reaches_the_clients(
    lab: tuple[Lab, dn42lab.Dn42Lab],
) -> None:
    env, dn42 = lab
    socket = Path(env.st.nodes[REFLECTOR]["bird_socket"])
    installed = dn42.installed(REFLECTOR, "ipv4")
    good = dn42.served(REFLECTOR, "ipv4").read_text()
    before = installed.read_bytes()
    try:
        dn42.serve_roa(REFLECTOR, "ipv4", _injection(good))
        refused = dn42.refresh_roa(REFLECTOR, socket)
        assert refused.returncode == 1
        assert "not a BIRD ipv4 ROA file" in refused.stderr
        assert installed.read_bytes() == before
        assert "evil4" not in birdc(env.st, REFLECTOR, "show", "protocols")
        # The attack is real: installed as the old check let it through, BIRD runs
        # it and the client gets the route ...
        installed.write_text(_injection(good))
        assert "Reconfigur" in birdc(
            env.st, REFLECTOR, "configure"
        )  # BIRD 3: "...ation in progress"
        poll(
            lambda: INJECTED_V4 in birdc(env.st, CLIENT, "show", "route", "table", "master4"),
            DEADLINE,
            "the injected route at the client",
        )
        # ... and the next refresh, with a good download, takes it away.
        dn42.serve_roa(REFLECTOR, "ipv4", good)
        cleaned = dn42.refresh_roa(REFLECTOR, socket)
        assert cleaned.returncode == 0, cleaned.stderr
        assert installed.read_text() == good
        poll(
            lambda: INJECTED_V4 not in birdc(env.st, CLIENT, "show", "route", "table", "master4"),
            DEADLINE,
            "the injected route withdrawn",
        )
    finally:
        dn42.serve_roa(REFLECTOR, "ipv4", good)
        dn42.refresh_roa(REFLECTOR, socket)


def test_a_peer_flap_withdraws_and_restores(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    birdc(env.st, PEER, "disable", "to_dmz")
    try:
        poll(
            lambda: (
                PEER_V4 not in kernel_bird_routes(env.st, CLIENT, "-4")
                and PEER_V6 not in kernel_bird_routes(env.st, CLIENT, "-6")
            ),
            20,
            "withdrawn at the client",
        )
        assert PEER_V4 not in kernel_bird_routes(env.st, REFLECTOR, "-4")
    finally:
        birdc(env.st, PEER, "enable", "to_dmz")
    poll(lambda: kernel_bird_routes(env.st, CLIENT, "-4").get(PEER_V4), 30, "v4 restored")
    poll(lambda: kernel_bird_routes(env.st, CLIENT, "-6").get(PEER_V6), 30, "v6 restored")
    assert "Established" in birdc(env.st, REFLECTOR, "show", "protocols", "dn42_peer1")


def test_lab_files_sit_in_the_lab(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, dn42 = lab
    conf = (node_dir(env.lab_dir, REFLECTOR) / "bird.conf").read_text()
    assert f'include "{dn42.installed(REFLECTOR, "ipv4")}";' in conf
    assert "/var/lib/ibgp-tunnel" not in conf


# --- inbound from DN42 (issue 19, item 4) ------------------------------------------

_LISTEN = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    conn.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\n")
    conn.close()
"""

_CONNECT = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(3)
s.bind((sys.argv[1], 0))
s.connect((sys.argv[2], int(sys.argv[3])))
print(s.recv(64).decode(errors="replace"), end="")
"""


@contextmanager
def listening(env: Lab, node: str, address: str, port: int) -> Iterator[None]:
    """A TCP server in `node` answering "HTTP/1.0 200 OK" on address:port."""
    record = env.st.nodes[node]
    argv = netns.ns_argv(record["netns"], [sys.executable, "-c", _LISTEN, address, str(port)])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        yield
    finally:
        proc.kill()
        proc.wait()


def connects(env: Lab, node: str, source: str, address: str, port: int) -> str | None:
    """What a TCP connection from `source` in `node` to address:port reads, or None
    when it is not established (dropped: connect times out)."""
    done = in_node(env.st, node, [sys.executable, "-c", _CONNECT, source, address, str(port)])
    return done.stdout if done.returncode == 0 else None


def pings(env: Lab, node: str, source: str, address: str) -> bool:
    argv = ["ping", "-n", "-c", "2", "-W", "1", "-I", source, address]
    return in_node(env.st, node, argv).returncode == 0


@contextmanager
def readme_monitoring_advice(env: Lab, host: str, *interfaces: str) -> Iterator[None]:
    """The monitoring advice (docs/operations.md) on `host`: the exporters' ports
    opened on `interfaces` in the host firewall
    (networking.firewall.interfaces.<name>.allowedTCPPorts)."""
    artifacts = env.artifacts[host]
    ports = ", ".join(map(str, EXPORTER_PORTS))
    advice = "".join(f'iifname "{name}" tcp dport {{ {ports} }} accept\n' for name in interfaces)
    path = node_dir(env.lab_dir, host) / "nftables.nft"
    opened = host_firewall_script(artifacts, input_rules=interface_input_rules(artifacts) + advice)
    apply_nft(env.ns(host), opened, path)
    try:
        yield
    finally:
        apply_nft(env.ns(host), host_firewall_script(artifacts), path)


def _home(env: Lab) -> dict[str, str]:
    lan = env.lan(CLIENT)
    return {
        "router tunnel": str(env.plan["links"][CLIENT]["client_ipv4"]),
        "router LAN": lan.gateway_ipv4,
        "router LAN v6": lan.gateway_ipv6,
        "LAN host": lan.ipv4,
        "LAN host v6": lan.ipv6,
    }


def _from_peer(address: str) -> str:
    return PEER_HOST6 if ":" in address else PEER_HOST4


def test_the_home_lan_is_routed_from_dn42(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    # The premise of the tests below: routing alone would let DN42 in; only the
    # firewall decides.
    import ipaddress

    env, _ = lab
    assert HOME_V4 in kernel_bird_routes(env.st, REFLECTOR, "-4")
    assert HOME_V6 in kernel_bird_routes(env.st, REFLECTOR, "-6")
    assert ipaddress.ip_address(env.lan(CLIENT).ipv4) in ipaddress.ip_network(HOME_V4)
    assert ipaddress.ip_address(env.lan(CLIENT).ipv6) in ipaddress.ip_network(HOME_V6)


@pytest.mark.parametrize("target", ["router tunnel", "router LAN", "LAN host", "LAN host v6"])
def test_dn42_gets_no_ping_reply_from_home(lab: tuple[Lab, dn42lab.Dn42Lab], target: str) -> None:
    env, _ = lab
    address = _home(env)[target]
    assert not pings(env, PEER, _from_peer(address), address), f"{target} {address} answered"


# The router's own ports: the BGP test below (NixOS's input chain closes the rest).
@pytest.mark.parametrize("target", ["LAN host", "LAN host v6"])
def test_dn42_cannot_open_a_closed_port_at_home(
    lab: tuple[Lab, dn42lab.Dn42Lab], target: str
) -> None:
    env, _ = lab
    address = _home(env)[target]
    with listening(env, env.lan(CLIENT).node, address, CLOSED_PORT):
        assert connects(env, PEER, _from_peer(address), address, CLOSED_PORT) is None


def test_dn42_cannot_reach_the_home_routers_bgp_port(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    router = _home(env)["router tunnel"]
    # BIRD listens on every address (the reflector's session uses it).
    assert "Established" in birdc(env.st, CLIENT, "show", "protocols", "ibgp_dmz")
    assert connects(env, PEER, PEER_HOST4, router, 179) is None


@pytest.mark.parametrize("port", EXPORTER_PORTS)
@pytest.mark.parametrize("path", ["dn42 to home", "reflector to home", "dn42 to reflector"])
def test_the_exporters_are_never_reachable_through_a_tunnel(
    lab: tuple[Lab, dn42lab.Dn42Lab], port: int, path: str
) -> None:
    env, _ = lab
    router = _home(env)["router tunnel"]
    reflector_end = str(env.plan["links"][CLIENT]["reflector_ipv4"])
    dn42_address = str(env.plan["hosts"][REFLECTOR]["dn42_peers"]["peer1"]["ipv4"])
    node, source, target = {
        "dn42 to home": (PEER, PEER_HOST4, router),
        "reflector to home": (REFLECTOR, reflector_end, router),
        "dn42 to reflector": (PEER, PEER_HOST4, dn42_address),
    }[path]
    # Stand-ins for the exporters, on every address as nixpkgs' listen by default,
    # with docs/operations.md's advice applied to the tunnels on both hosts (and pve's LAN).
    with (
        listening(env, CLIENT, "0.0.0.0", port),
        listening(env, REFLECTOR, "0.0.0.0", port),
        readme_monitoring_advice(env, CLIENT, "wg-ibgp", "vmbr0"),
        readme_monitoring_advice(env, REFLECTOR, "dn42-peer1"),
    ):
        # Reachable at home from the LAN (the stand-ins do answer)...
        assert connects(env, env.lan(CLIENT).node, env.lan(CLIENT).ipv4, router, port)
        # ...never through a tunnel: not from DN42, not even from the reflector.
        assert connects(env, node, source, target, port) is None


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_the_opened_port_is_reachable_from_dn42(
    lab: tuple[Lab, dn42lab.Dn42Lab], family: str
) -> None:
    env, _ = lab
    lan = env.lan(CLIENT)
    address = lan.ipv4 if family == "ipv4" else lan.ipv6
    with listening(env, lan.node, address, OPENED_PORT):
        got = connects(env, PEER, _from_peer(address), address, OPENED_PORT)
        assert got is not None and "200 OK" in got, got
        # Only that port: the same host on another stays closed.
    with listening(env, lan.node, address, OPENED_PORT + 1):
        assert connects(env, PEER, _from_peer(address), address, OPENED_PORT + 1) is None


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_the_home_lan_reaches_dn42(lab: tuple[Lab, dn42lab.Dn42Lab], family: str) -> None:
    env, _ = lab
    lan = env.lan(CLIENT)
    source, target = (lan.ipv4, PEER_HOST4) if family == "ipv4" else (lan.ipv6, PEER_HOST6)
    assert pings(env, lan.node, source, target)
    with listening(env, PEER, target, CLOSED_PORT):
        got = connects(env, lan.node, source, target, CLOSED_PORT)
        assert got is not None and "200 OK" in got, got


def test_the_reflector_still_pings_its_client(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    # doctor's advice for a session that does not come up: ping the other end.
    env, _ = lab
    reflector_end = str(env.plan["links"][CLIENT]["reflector_ipv4"])
    assert pings(env, REFLECTOR, reflector_end, _home(env)["router tunnel"])


# --- DN42 key rotation (issue 22, items 1 and 2): `keys --rotate`, then the peer --------
# Last in the module: the lab keeps running with the rotated keys on both ends.


def test_rotated_dn42_keys_bring_the_tunnel_back_once_the_peer_has_them(
    lab: tuple[Lab, dn42lab.Dn42Lab], tmp_path: Path
) -> None:
    import json
    import shlex

    from cli_helpers import run
    from sopstools import recipient, write_sops_config

    from ibgp_tunnel.keys import public_key_of, sops
    from ibgp_tunnel.lab.labkeys import install_secret

    env, _ = lab
    peer = _peer(env)
    assert peer.tunnel is not None
    current = dn42lab.running(Path(LAB_DIR), env.topo, env.artifacts)
    old_key, old_psk = current.reflector_keys[REFLECTOR], current.psks[peer.node]
    # A project whose secrets hold the keys the lab runs, as `keys` wrote them.
    root = tmp_path / "project"
    plan = inbound_plan(tmp_path)
    (root / "hosts").mkdir(parents=True)
    plan = plan.rename(root / "hosts" / "plan.toml")
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    secrets = root / "secrets" / f"{REFLECTOR}.yaml"
    secrets.parent.mkdir()
    seeded = {"wg_dn42": {"private_key": old_key, "psk": {peer.name: old_psk}}}
    sops.encrypt_to_file(seeded, secrets, root / ".sops.yaml")

    rotated = run(
        "keys", plan, "--rotate", f"dn42:{REFLECTOR}", "--rotate", f"dn42:{REFLECTOR}:{peer.name}"
    )
    assert rotated.exit_code == 0, rotated.output
    new = sops.decrypt_file(secrets)["wg_dn42"]
    new_key, new_psk = new["private_key"], new["psk"][peer.name]
    assert new_key != old_key and new_psk != old_psk
    assert f"tell DN42 peer {peer.name} of {REFLECTOR}: our new DN42 public key" in rotated.stdout
    assert new_psk not in rotated.output and new_key not in rotated.output

    # The reflector switches to the new secrets (what the unit does after a deploy).
    spec = env.artifacts[REFLECTOR]["wireguard"][peer.tunnel.interface]
    reflector_run = Path(env.st.nodes[REFLECTOR]["run_dir"])
    key_file = install_secret(reflector_run, spec["privateKeyFile"], new_key)
    psk_file = install_secret(reflector_run, spec["peers"][0]["presharedKeyFile"], new_psk)
    peer_public = public_key_of(current.peer_keys[peer.node])
    wg = ["wg", "set", peer.tunnel.interface, "private-key", key_file, "peer", peer_public]
    assert in_node(env.st, REFLECTOR, [*wg, "preshared-key", psk_file]).returncode == 0
    reaches = ["ping", "-n", "-c", "2", "-W", "1", "-I", peer.tunnel.interface, peer.neighbor]
    # The peer still holds the old values: no handshake can succeed.
    assert in_node(env.st, REFLECTOR, reaches).returncode != 0

    # The peer's operator gets what peer-info prints and reads the PSK as it says.
    shown = run("dn42", "peer-info", plan, REFLECTOR, peer.name, "--json")
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["public_key"] == public_key_of(new_key)
    assert new_psk not in shown.output
    argv = shlex.split(info["psk_command"])
    handed = subprocess.run(
        [str(sops.find_sops()), *argv[1:]], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert handed == new_psk
    peer_run = Path(env.st.nodes[PEER]["run_dir"])
    peer_psk = install_secret(peer_run, dn42lab.PEER_PSK, handed)
    endpoint = f"{peer.tunnel.reflector_underlay}:{info['listen_port']}"
    old_public = public_key_of(old_key)
    for command in (
        ["wg", "set", dn42lab.PEER_INTERFACE, "peer", old_public, "remove"],
        [
            "wg",
            "set",
            dn42lab.PEER_INTERFACE,
            "peer",
            info["public_key"],
            "preshared-key",
            peer_psk,
            "endpoint",
            endpoint,
            "persistent-keepalive",
            str(dn42lab.PEER_KEEPALIVE),
            "allowed-ips",
            "0.0.0.0/0,::/0",
        ],
    ):
        done = in_node(env.st, PEER, command)
        assert done.returncode == 0, done.stderr
    poll(lambda: in_node(env.st, REFLECTOR, reaches).returncode == 0, DEADLINE, "tunnel back")
    # The session comes up again over the new tunnel (restarted on both ends, so
    # it is a new one, not one that outlived the dead tunnel).
    birdc(env.st, REFLECTOR, "restart", "dn42_peer1")
    birdc(env.st, PEER, "restart", "to_dmz")
    poll(
        lambda: "Established" in birdc(env.st, REFLECTOR, "show", "protocols", "dn42_peer1"),
        DEADLINE,
        "session re-established",
    )
    poll(lambda: kernel_bird_routes(env.st, CLIENT, "-4").get(PEER_V4), DEADLINE, "v4 at client")
    poll(lambda: kernel_bird_routes(env.st, CLIENT, "-6").get(PEER_V6), DEADLINE, "v6 at client")
