"""The lab's topology as plain data, derived from a plan alone.

Nothing here touches the machine: `build_topology` says which namespaces,
veth pairs, addresses and routes the lab needs; `up` carries it out. Every
address outside the plan comes from the documentation ranges (203.0.113.0/24,
198.51.100.0/24, 2001:db8::/32), RFC 1918 or ULA space, and exists only inside
the lab's namespaces.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ibgp_tunnel.lab.errors import LabError

# The default; a lab of its own (the tests') passes another (see lab.location).
NETNS_PREFIX = "ibgpt-"
INET = "inet"
# Interface names are limited to 15 bytes by the kernel.
IFNAMSIZ = 15

# Addresses the seed's tracepath used; preferred when they lie in an announced prefix.
SEED_PROBE_V4 = "104.16.132.229"
SEED_PROBE_V6 = "2606:4700::1111"


@dataclass(frozen=True)
class Address:
    """One interface address; `peer` makes it point-to-point (no shared subnet needed)."""

    cidr: str
    peer: str | None = None


@dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True)
class Veth:
    """A veth pair between two lab nodes; never one end in the root namespace."""

    a_node: str
    a: Interface
    b_node: str
    b: Interface


@dataclass(frozen=True)
class Route:
    dest: str
    via: str


@dataclass(frozen=True)
class Node:
    """One namespace. `kind`: reflector, client, inet, dn42 or lan."""

    name: str
    kind: str
    loopback: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    forwarding: bool = False
    netns_prefix: str = NETNS_PREFIX

    @property
    def netns(self) -> str:
        return self.netns_prefix + self.name


@dataclass(frozen=True)
class Dn42Tunnel:
    """A DN42 peer reached over the WireGuard tunnel the module runs (lab/dn42lab.py):
    the veth between the two namespaces is only the underlay the tunnel's UDP crosses."""

    interface: str  # the reflector's tunnel interface (the plan's, or dn42-<peer>)
    reflector_underlay: str
    peer_underlay: str
    reflector_link_local: str  # the plan's link_local, without /64
    peer_ipv4: str | None = None  # the plan's peer_ipv4 (the /32 pair), if any


@dataclass(frozen=True)
class Dn42Peer:
    """The stand-in for a DN42 neighbour of a reflector, running its own BIRD."""

    node: str
    name: str  # the plan's dn42_peers key
    reflector: str
    asn: int
    neighbor: str  # its IPv4 address, the plan's `neighbor`
    neighbor_ipv6: str  # the IPv6 next hop it announces
    reflector_ipv4: str  # the reflector's end of the peering link
    reflector_asn: int
    announce_ipv4: tuple[str, ...]
    announce_ipv6: tuple[str, ...]
    tunnel: Dn42Tunnel | None = None


@dataclass(frozen=True)
class LanClient:
    node: str
    router: str
    ipv4: str
    ipv6: str
    gateway_ipv4: str
    gateway_ipv6: str


@dataclass(frozen=True)
class Topology:
    nodes: dict[str, Node]
    veths: tuple[Veth, ...]
    dn42_peers: tuple[Dn42Peer, ...]
    lan_clients: tuple[LanClient, ...]
    # Per reflector: addresses inside its first announced prefixes, answering in `inet`.
    probes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(sorted(self.nodes))
            raise LabError(f"no lab host named {name!r}; the lab has: {known}") from None

    @property
    def plan_hosts(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.kind in ("reflector", "client")]


# --- addressing ---------------------------------------------------------------


def probe_address(prefix: str, preferred: str) -> str:
    """An address inside `prefix`: the seed's own if it fits, else the first host."""
    net = ipaddress.ip_network(prefix, strict=False)
    if ipaddress.ip_address(preferred) in net:
        return preferred
    return str(net.network_address + 1)


def lan_addresses(announced: list[str], default: str) -> tuple[str, str, int]:
    """(router, LAN host, prefix length) for a client's LAN: inside the first prefix the
    client announces (so LAN-to-LAN routing is real), else in `default`."""
    usable = [
        ipaddress.ip_network(p, strict=False)
        for p in announced
        if ipaddress.ip_network(p, strict=False).num_addresses >= 4
    ]
    net = usable[0] if usable else ipaddress.ip_network(default)
    host = 100 if net.num_addresses > 101 else 2
    return str(net.network_address + 1), str(net.network_address + host), net.prefixlen


def _v6(address: str) -> str:
    """The canonical (compressed) spelling, as the kernel and BIRD print it."""
    return str(ipaddress.IPv6Address(address))


def _peering_pair(neighbor: str) -> str:
    """The reflector's end of a /31 with the DN42 neighbour (its other address)."""
    addr = ipaddress.IPv4Address(neighbor)
    return str(ipaddress.IPv4Address(int(addr) ^ 1))


def _host_kind(name: str, host: Mapping[str, Any]) -> str:
    role = host.get("role")
    if role not in ("reflector", "client"):
        raise LabError(f"host {name!r} has role {role!r}; expected 'reflector' or 'client'")
    return str(role)


def _check_ifname(name: str, what: str) -> str:
    if not 0 < len(name) <= IFNAMSIZ:
        raise LabError(f"{what}: interface name {name!r} is not 1-{IFNAMSIZ} characters long")
    return name


def _dn42_node_names(plan: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    peers = [
        (host_name, peer_name)
        for host_name, host in plan.get("hosts", {}).items()
        for peer_name in host.get("dn42_peers", {})
    ]
    if len(peers) == 1:
        return {peers[0]: "dn42"}
    return {
        (h, p): f"dn42-{p}" if len({q for _, q in peers if q == p}) == 1 else f"dn42-{h}-{p}"
        for h, p in peers
    }


def _dn42_announcements(index: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a lab DN42 peer announces: DN42 space plus one prefix each family must drop."""
    v4 = (f"172.21.{80 + index}.0/24", f"172.22.{80 + index}.0/26", f"192.168.{80 + index}.0/24")
    v6 = (
        f"fd42:{4200 + index}::/48",
        f"fd42:{4200 + index}:1::/64",
        f"2001:db8:{0xD420 + index:x}::/48",
    )
    return v4, v6


def _tunnel_peer(
    plan: Mapping[str, Any],
    reflector: str,
    peer_name: str,
    peer: Mapping[str, Any],
    node: str,
    index: int,
) -> tuple[Veth, Dn42Peer, Node]:
    """A DN42 peer behind a tunnel the module runs: a veth carrying only the tunnel's
    UDP (198.18.<index>.0/31, the benchmarking range), the peer's routes set once
    its end of the tunnel is up (lab/dn42lab.py)."""
    ifname = _check_ifname(peer.get("interface") or f"dn42-{peer_name}", f"peer {peer_name}")
    neighbor = _v6(str(peer["neighbor"]))
    ours, theirs = f"198.18.{index}.0", f"198.18.{index}.1"
    veth = Veth(
        reflector,
        Interface(_check_ifname(f"dn42u{index}", "underlay"), (Address(f"{ours}/31"),)),
        node,
        Interface("eth0", (Address(f"{theirs}/31"),)),
    )
    v4_announce, v6_announce = _dn42_announcements(index)
    record = Dn42Peer(
        node=node,
        name=peer_name,
        reflector=reflector,
        asn=int(peer["asn"]),
        neighbor=neighbor,
        neighbor_ipv6=neighbor,
        # Toward DN42 the reflector speaks from its tunnel /32 when it has one.
        reflector_ipv4=str(peer.get("ipv4") or ours),
        reflector_asn=int(plan["asn"]),
        announce_ipv4=v4_announce,
        announce_ipv6=v6_announce,
        tunnel=Dn42Tunnel(
            ifname,
            ours,
            theirs,
            str(peer["link_local"]).split("/")[0],
            str(peer["peer_ipv4"]) if "peer_ipv4" in peer else None,
        ),
    )
    loopback = [f"{ipaddress.ip_network(p).network_address + 1}/32" for p in v4_announce]
    loopback += [f"{ipaddress.ip_network(p).network_address + 1}/128" for p in v6_announce]
    return veth, record, Node(node, "dn42", tuple(loopback))


def build_topology(plan: Mapping[str, Any], netns_prefix: str = NETNS_PREFIX) -> Topology:
    """Namespaces, veths, addresses and routes for every host of `plan` and its surroundings;
    namespace names start with `netns_prefix`."""
    hosts: Mapping[str, Any] = plan.get("hosts", {})
    if not hosts:
        raise LabError("the plan has no [hosts.*]: nothing to bring up")
    nodes: dict[str, Node] = {}
    veths: list[Veth] = []
    dn42_peers: list[Dn42Peer] = []
    lan_clients: list[LanClient] = []
    probes: dict[str, tuple[str, ...]] = {}
    inet_loopback: list[str] = []
    inet_routes: list[Route] = []

    reflectors = [n for n, h in hosts.items() if _host_kind(n, h) == "reflector"]
    clients = [n for n, h in hosts.items() if _host_kind(n, h) == "client"]
    dn42_names = _dn42_node_names(plan)
    reserved = {INET, *dn42_names.values(), *(f"lan-{c}" for c in clients)}
    clash = reserved & set(hosts)
    if clash:
        raise LabError(f"plan host names {sorted(clash)} clash with lab-only hosts; rename them")

    for index, name in enumerate(reflectors):
        host = hosts[name]
        uplink = _check_ifname((host.get("uplink_interfaces") or ["eth0"])[0], f"host {name}")
        endpoint = host.get("endpoint")
        if endpoint is None:
            raise LabError(f"reflector {name!r} has no endpoint: clients could not dial it")
        try:
            endpoint_ip = ipaddress.ip_address(endpoint)
        except ValueError:
            raise LabError(
                f"reflector {name!r}: endpoint {endpoint!r} is not an IP address; the lab "
                "puts the endpoint on the reflector's uplink, so it needs an address"
            ) from None
        v4 = str(endpoint_ip) if endpoint_ip.version == 4 else f"203.0.113.{10 + index}"
        v6 = str(endpoint_ip) if endpoint_ip.version == 6 else _v6(f"2001:db8:203:{index:x}::10")
        gw4 = "203.0.113.1" if v4 != "203.0.113.1" else "203.0.113.254"
        gw6 = _v6(f"2001:db8:203:{index:x}::" + ("fe" if v6.endswith("::1") else "1"))
        veths.append(
            Veth(
                name,
                Interface(uplink, (Address(f"{v4}/32", f"{gw4}/32"), Address(f"{v6}/64"))),
                INET,
                Interface(f"rfl{index}", (Address(f"{gw4}/32", f"{v4}/32"), Address(f"{gw6}/64"))),
            )
        )
        routes = [Route("default", gw4), Route("default", gw6)]
        announce = host.get("announce", {})
        reflector_probes = []
        for family, preferred in (("ipv4", SEED_PROBE_V4), ("ipv6", SEED_PROBE_V6)):
            prefixes = announce.get(family, [])
            if prefixes:
                address = probe_address(prefixes[0], preferred)
                reflector_probes.append(address)
                inet_loopback.append(f"{address}/{32 if family == 'ipv4' else 128}")
        probes[name] = tuple(reflector_probes)

        for peer_name, peer in host.get("dn42_peers", {}).items():
            node = dn42_names[(name, peer_name)]
            neighbor = str(peer["neighbor"])
            if "public_key" in peer:
                # The module runs this peer's tunnel: link-local over WireGuard.
                veth, peer_record, peer_node = _tunnel_peer(
                    plan, name, peer_name, peer, node, len(dn42_peers)
                )
                veths.append(veth)
                dn42_peers.append(peer_record)
                nodes[node] = peer_node
                continue
            if ipaddress.ip_address(neighbor).version != 4:
                raise LabError(f"dn42 peer {peer_name!r}: the lab supports IPv4 neighbors only")
            own4 = _peering_pair(neighbor)
            peer6 = _v6(f"fd42:d42:ffff:{len(dn42_peers):x}::1")
            own6 = _v6(f"fd42:d42:ffff:{len(dn42_peers):x}::2")
            ifname = _check_ifname(
                peer.get("interface") or f"dn42-{peer_name}", f"peer {peer_name}"
            )
            veths.append(
                Veth(
                    name,
                    Interface(ifname, (Address(f"{own4}/31"), Address(f"{own6}/64"))),
                    node,
                    Interface("eth0", (Address(f"{neighbor}/31"), Address(f"{peer6}/64"))),
                )
            )
            v4_announce, v6_announce = _dn42_announcements(len(dn42_peers))
            dn42_peers.append(
                Dn42Peer(
                    node=node,
                    name=peer_name,
                    reflector=name,
                    asn=int(peer["asn"]),
                    neighbor=neighbor,
                    neighbor_ipv6=peer6,
                    reflector_ipv4=own4,
                    reflector_asn=int(plan["asn"]),
                    announce_ipv4=v4_announce,
                    announce_ipv6=v6_announce,
                )
            )
            # One answering address per announced prefix, on lo (no dummy driver here).
            loopback = [f"{ipaddress.ip_network(p).network_address + 1}/32" for p in v4_announce]
            loopback += [f"{ipaddress.ip_network(p).network_address + 1}/128" for p in v6_announce]
            # Stand-in for the rest of DN42: everything else is behind the reflector.
            nodes[node] = Node(
                node,
                "dn42",
                tuple(loopback),
                (Route("default", own4), Route("default", own6)),
            )
        nodes[name] = Node(name, "reflector", routes=tuple(routes), forwarding=True)

    for index, name in enumerate(clients):
        host = hosts[name]
        wan4, gw4 = f"198.51.100.{10 + index}", "198.51.100.1"
        wan6, gw6 = _v6(f"2001:db8:198:{index:x}::10"), _v6(f"2001:db8:198:{index:x}::1")
        veths.append(
            Veth(
                name,
                Interface("wan0", (Address(f"{wan4}/32", f"{gw4}/32"), Address(f"{wan6}/64"))),
                INET,
                Interface(
                    f"cli{index}", (Address(f"{gw4}/32", f"{wan4}/32"), Address(f"{gw6}/64"))
                ),
            )
        )
        nodes[name] = Node(
            name, "client", routes=(Route("default", gw4), Route("default", gw6)), forwarding=True
        )
        lan_if = _check_ifname((host.get("lan_interfaces") or ["lan0"])[0], f"host {name}")
        lan = f"lan-{name}"
        announce = host.get("announce", {})
        router4, client4, len4 = lan_addresses(announce.get("ipv4", []), f"10.42.{23 + index}.0/24")
        router6, client6, len6 = lan_addresses(
            announce.get("ipv6", []), f"fd00:42:{23 + index}::/64"
        )
        veths.append(
            Veth(
                name,
                Interface(lan_if, (Address(f"{router4}/{len4}"), Address(f"{router6}/{len6}"))),
                lan,
                Interface("eth0", (Address(f"{client4}/{len4}"), Address(f"{client6}/{len6}"))),
            )
        )
        nodes[lan] = Node(lan, "lan", routes=(Route("default", router4), Route("default", router6)))
        lan_clients.append(LanClient(lan, name, client4, client6, router4, router6))

    # Two reflectors may announce the same prefix, so the same probe address: once.
    inet_loopback = list(dict.fromkeys(inet_loopback))
    nodes[INET] = Node(INET, "inet", tuple(inet_loopback), tuple(inet_routes), forwarding=True)
    nodes = {name: replace(node, netns_prefix=netns_prefix) for name, node in nodes.items()}
    return Topology(nodes, tuple(veths), tuple(dn42_peers), tuple(lan_clients), probes)


# --- what routes a host should learn: the core's route model -------------------

Artifacts = Mapping[str, Mapping[str, Any]]


def model_routes(artifacts: Artifacts, host: str, family: str) -> list[dict[str, Any]]:
    """The route model's routes of `host` (lab/artifacts.render_plan puts each host's
    part under `routes`): [{prefix, kernel, best, paths}]."""
    try:
        return list(artifacts[host]["routes"]["routes"][family])
    except KeyError:
        raise LabError(
            f"the rendered artifacts carry no route model for {host!r}: the lab was "
            "brought up by an older ibgp-tunnel; run `ibgp-tunnel lab down` and `lab up`"
        ) from None


def expected_client_routes(artifacts: Artifacts, client: str) -> dict[str, set[str]]:
    """Prefixes `client` should import, per family, as the core's route model says:
    what its reflectors heard themselves or from their twins, filtered as the rendered
    configs filter them, never its own announcements."""
    return {
        family: {route["prefix"] for route in model_routes(artifacts, client, family)}
        for family in ("ipv4", "ipv6")
    }


def as_kernel_prints(prefix: str) -> str:
    # `ip route` prints a host route as the bare address.
    net = ipaddress.ip_network(prefix, strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def expected_kernel_routes(artifacts: Artifacts, host: str) -> set[str]:
    """Every prefix BIRD should install in `host`'s kernel once the lab has settled, as
    `ip route` prints it: the route model's routes its kernel_export_sets keep."""
    return {
        as_kernel_prints(route["prefix"])
        for family in ("ipv4", "ipv6")
        for route in model_routes(artifacts, host, family)
        if route["kernel"]
    }
