"""What the plan says a host should have, taken from the Nix core's output.

Nothing is derived again here: the rendered artifacts (`render_host`) and the
host spec say which tunnels, keys, ports and rules the host runs, and the core's
route model (modules/lib/spec/routes.nix) which BGP sessions, as data; this module only
reads them into plain records the checks compare with the live state.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ibgp_tunnel.paths import defaults

_AUTOPEER = defaults()["autopeer"]


@dataclass(frozen=True)
class PeerExpect:
    name: str  # the plan host at the other end
    public_key: str
    endpoint: str | None
    keepalive: int | None
    allowed_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class TunnelExpect:
    interface: str
    ips: tuple[str, ...]  # CIDR, as the plan gives them
    listen_port: int | None
    peers: tuple[PeerExpect, ...]
    link: str = ""  # the plan's [links.NAME]
    # The systemd unit that makes the interface ("": NixOS's wireguard-<interface>;
    # an autopeer's is the apply unit's).
    unit: str = ""

    @property
    def global_ipv6(self) -> list[str]:
        return [
            ip
            for ip in self.ips
            if ipaddress.ip_interface(ip).version == 6
            and not ipaddress.ip_interface(ip).ip.is_link_local
        ]


@dataclass(frozen=True)
class SessionExpect:
    protocol: str  # the BIRD protocol name, e.g. ibgp_dmz
    neighbor: str
    neighbor_as: int | None
    local_as: int | None
    internal: bool  # iBGP over one of our tunnels
    bfd: bool
    ipv6_next_hop: str | None  # `next hop address` of the IPv6 channel
    peer_host: str | None = None  # the plan host at the other end (iBGP)
    interface: str | None = None  # the tunnel (iBGP) or the peering interface (eBGP)
    import_limit: int | None = None
    # DN42's route collector: multihop over DN42, export only (no interface of ours).
    collector: bool = False
    # A DN42 session: the plan's dn42_peers.<name> it runs to, its receive limit.
    dn42_peer: str | None = None
    receive_limit: int | None = None


@dataclass(frozen=True)
class MasqueradeRule:
    iifnames: tuple[str, ...]
    oifnames: tuple[str, ...]
    nfprotos: tuple[str, ...]
    text: str
    # Sources the rule leaves alone (`ip saddr != { ... }`: prefixes a client announces).
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class InterfaceRule:
    """A rendered `iifname "X" accept` / `oifname "X" accept` line."""

    direction: str  # iifname or oifname
    interface: str
    text: str


@dataclass(frozen=True)
class Peering:
    """One applied peering as the core renders it now."""

    name: str
    asn: int
    interface: str
    listen_port: int
    protocol: str


@dataclass(frozen=True)
class AutopeerExpect:
    state_dir: str
    peerings: tuple[Peering, ...]
    # peers/ records the apply unit would not run: (record, why)
    refused: tuple[tuple[str, str], ...]
    interfaces_set: str = str(_AUTOPEER["nft_interfaces_set"])
    ports_set: str = str(_AUTOPEER["nft_ports_set"])
    group: int = int(_AUTOPEER["interface_group"])


@dataclass(frozen=True)
class Expectations:
    host: str
    role: str
    asn: int
    own_public_key: str | None
    tunnels: tuple[TunnelExpect, ...]
    sessions: tuple[SessionExpect, ...]
    graceful_restart: bool
    graceful_restart_wait: int | None
    allowed_udp_ports: tuple[int, ...]
    # interface -> (tcp ports, udp ports) the host firewall must let in there
    interface_ports: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    forward_rules: tuple[InterfaceRule, ...]
    reverse_path_rules: tuple[InterfaceRule, ...]
    masquerade: tuple[MasqueradeRule, ...]
    sysctl: dict[str, str]
    uplinks: tuple[str, ...]
    lans: tuple[str, ...]
    nft_table: str
    # Peer host -> whether it announces IPv6 prefixes (so IPv6 routes must arrive).
    peers_announce_ipv6: dict[str, bool] = field(default_factory=dict)
    # Where the public keys come from, for people to read ("the plan", or a lab's keys).
    key_source: str = "the plan"
    # Tunnel interface -> the IPv4 address of the host at its other end: the only
    # source a client lets reach its BGP, BFD and ping through that tunnel.
    tunnel_neighbors: dict[str, str] = field(default_factory=dict)
    # Tunnel interface -> the IPv6 tunnel address of the host at its other end (the
    # plan's reflector_ipv6/client_ipv6), where the link has one: path MTU probes.
    tunnel_neighbors6: dict[str, str] = field(default_factory=dict)
    # Family -> an address inside the plan's own networks (internalPrefixes): a
    # source a client forwards new connections from out of its tunnels.
    internal_sources: dict[str, str] = field(default_factory=dict)
    # Drift: the rendered bird.conf (standalone: the whole file; else our part, which
    # the host's merged config holds as one block) and our rendered nftables table.
    bird_config: str = ""
    bird_standalone: bool = True
    nft_ruleset: str = ""
    # DN42 peer with latency = "auto" -> the BIRD constant holding its measured class.
    latency_auto: dict[str, str] = field(default_factory=dict)
    # Self-service peering on (doctor/autopeer.py): the applied peerings (their
    # tunnels and sessions are in `tunnels` and `sessions` beside the static
    # ones). None: off.
    autopeer: AutopeerExpect | None = None

    @property
    def tunnel_names(self) -> tuple[str, ...]:
        return tuple(t.interface for t in self.tunnels)

    def with_public_keys(self, keys: Mapping[str, str], source: str) -> Expectations:
        """The same, with every host's public key taken from `keys` (host -> key): a lab
        that generated its own keys runs those, not the plan's."""
        tunnels = tuple(
            replace(
                tunnel,
                peers=tuple(
                    replace(peer, public_key=keys.get(peer.name, peer.public_key))
                    for peer in tunnel.peers
                ),
            )
            for tunnel in self.tunnels
        )
        own = keys.get(self.host, self.own_public_key)
        return replace(self, tunnels=tunnels, own_public_key=own, key_source=source)


def sample_address(prefix: str) -> str:
    """An address inside `prefix` (its first host, or the address of a /32 or /128)."""
    net = ipaddress.ip_network(prefix, strict=False)
    return str(net.network_address + 1 if net.num_addresses > 1 else net.network_address)


_NAMES = re.compile(r'(iifname|oifname) (?:\{ ([^}]*) \}|"([^"]+)")')
_NFPROTO = re.compile(r"meta nfproto (ipv4|ipv6)")
_EXCLUDED = re.compile(r"ip6? saddr != (?:\{ ([^}]*) \}|(\S+))")


def bgp_sessions(model_sessions: Sequence[Mapping[str, Any]]) -> list[SessionExpect]:
    """The host's BGP sessions as the route model lists them (`sessions`)."""
    return [
        SessionExpect(
            protocol=str(session["name"]),
            neighbor=str(session["neighbor"]),
            neighbor_as=int(session["neighborAs"]),
            local_as=int(session["localAs"]),
            internal=int(session["neighborAs"]) == int(session["localAs"]),
            bfd=bool(session["bfd"]),
            ipv6_next_hop=session.get("ipv6NextHop"),
            peer_host=session.get("peerHost"),
            interface=session.get("interface"),
            import_limit=session.get("importLimit"),
            collector=session.get("kind") == "dn42-collector",
            dn42_peer=session.get("dn42Peer"),
            receive_limit=session.get("receiveLimit"),
        )
        for session in model_sessions
    ]


def interface_rules(text: str) -> tuple[InterfaceRule, ...]:
    """`iifname "X" accept`-style lines of rendered rules."""
    rules = []
    for line in text.splitlines():
        found = re.fullmatch(r'\s*(iifname|oifname) "([^"]+)" accept\s*', line)
        if found:
            rules.append(InterfaceRule(found[1], found[2], line.strip()))
    return tuple(rules)


def masquerade_rules(ruleset: str) -> tuple[MasqueradeRule, ...]:
    rules = []
    for line in ruleset.splitlines():
        if "masquerade" not in line:
            continue
        names: dict[str, tuple[str, ...]] = {"iifname": (), "oifname": ()}
        for direction, listed, single in _NAMES.findall(line):
            values = tuple(v.strip().strip('"') for v in listed.split(",")) if listed else (single,)
            names[direction] = values
        protos = tuple(_NFPROTO.findall(line)) or ("ipv4", "ipv6")
        excluded = tuple(
            prefix.strip()
            for listed, single in _EXCLUDED.findall(line)
            for prefix in (listed.split(",") if listed else [single])
        )
        rules.append(
            MasqueradeRule(names["iifname"], names["oifname"], protos, line.strip(), excluded)
        )
    return tuple(rules)


def _neighbors6(host: str, spec: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, str]:
    """Tunnel interface -> the other end's IPv6 tunnel address, from the plan's links,
    where that end is a reflector: a client answers pings through its tunnel only from
    the reflector's IPv4 address (its rendered input rules), so probing its IPv6 would
    cost every doctor run a ping timeout."""
    links = plan.get("links") if isinstance(plan.get("links"), dict) else {}
    hosts = plan.get("hosts") if isinstance(plan.get("hosts"), dict) else {}
    found = {}
    for name, end in spec.get("links", {}).items():
        link = links.get(name) if isinstance(links, dict) else None
        if not isinstance(link, dict) or not end.get("interface"):
            continue
        other_end = "client" if link.get("reflector") == host else "reflector"
        other = hosts.get(link.get(other_end)) if isinstance(hosts, dict) else None
        address = link.get(f"{other_end}_ipv6")
        if (
            isinstance(other, dict)
            and other.get("role") == "reflector"
            and isinstance(address, str)
        ):
            found[str(end["interface"])] = address
    return found


def expectations(
    host: str,
    artifacts: Mapping[str, Any],
    spec: Mapping[str, Any],
    plan: Mapping[str, Any],
    model: Mapping[str, Any],
) -> Expectations:
    """The host's expected state from its rendered artifacts, its spec, the plan (for
    public keys and what its peers announce) and its route model (its sessions)."""
    hosts = plan.get("hosts", {}) if isinstance(plan.get("hosts"), dict) else {}
    tunnels = []
    links_by_interface = {
        str(link.get("interface")): name for name, link in spec.get("links", {}).items()
    }
    for interface, wg in artifacts.get("wireguard", {}).items():
        tunnels.append(
            TunnelExpect(
                interface=interface,
                ips=tuple(wg.get("ips", [])),
                listen_port=wg.get("listenPort"),
                peers=tuple(
                    PeerExpect(
                        name=str(peer.get("name", "")),
                        public_key=str(peer.get("publicKey") or ""),
                        endpoint=peer.get("endpoint"),
                        keepalive=peer.get("persistentKeepalive"),
                        allowed_ips=tuple(str(ip) for ip in peer.get("allowedIPs") or ()),
                    )
                    for peer in wg.get("peers", [])
                ),
                link=links_by_interface.get(interface, ""),
            )
        )
    sessions = bgp_sessions(model.get("sessions", []))
    tuning = spec.get("tuning", {})
    nft = artifacts.get("nftables", {})
    interface_ports = {
        name: (
            tuple(int(p) for p in ports.get("allowedTCPPorts", [])),
            tuple(int(p) for p in ports.get("allowedUDPPorts", [])),
        )
        for name, ports in artifacts.get("firewallInterfaces", {}).items()
    }
    own = hosts.get(host, {}) if isinstance(hosts.get(host), dict) else {}
    announces = {
        name: bool((data.get("announce") or {}).get("ipv6"))
        for name, data in hosts.items()
        if isinstance(data, dict)
    }
    internal = spec.get("internalPrefixes") or {}
    bird = spec.get("bird") if isinstance(spec.get("bird"), dict) else {}
    latency = artifacts.get("dn42Latency") or {}
    return Expectations(
        latency_auto={str(p["name"]): str(p["symbol"]) for p in latency.get("peers", [])},
        bird_config=str(artifacts.get("birdConfig", "")),
        bird_standalone=bool(bird.get("standalone", True)),
        nft_ruleset=str(nft.get("ruleset", "")),
        tunnel_neighbors={
            str(link["interface"]): str(link["neighborAddress"])
            for link in spec.get("links", {}).values()
            if link.get("interface") and link.get("neighborAddress")
        },
        tunnel_neighbors6=_neighbors6(host, spec, plan),
        internal_sources={
            family: sample_address(prefixes[0])
            for family in ("ipv4", "ipv6")
            if (prefixes := internal.get(family))
        },
        host=host,
        role=str(spec.get("role", "")),
        asn=int(spec.get("asn", 0)),
        own_public_key=own.get("public_key") or None,
        tunnels=tuple(tunnels),
        sessions=tuple(sessions),
        graceful_restart=bool(tuning.get("gracefulRestart", False)),
        graceful_restart_wait=tuning.get("gracefulRestartWait"),
        allowed_udp_ports=tuple(int(p) for p in artifacts.get("allowedUDPPorts", [])),
        interface_ports=interface_ports,
        forward_rules=interface_rules(str(nft.get("forwardRules", ""))),
        reverse_path_rules=interface_rules(str(nft.get("reversePathRules", ""))),
        masquerade=masquerade_rules(str(nft.get("ruleset", ""))),
        sysctl={k: str(v) for k, v in artifacts.get("sysctl", {}).items()},
        uplinks=tuple(spec.get("uplinkInterfaces", [])),
        lans=tuple(spec.get("lanInterfaces", [])),
        nft_table=f"{nft.get('family', 'inet')} {nft.get('table', '')}",
        peers_announce_ipv6=announces,
    )
