"""The network rules a plan must follow beyond its shape, as findings.

Every rule is a generator over a parsed `Plan` that yields findings; `check_rules`
runs them all, so one run reports every problem. Each message names what is
wrong and how to fix it; the path names the TOML key (links.pve.client_ipv4).
A value that does not parse is reported once, by the rule that owns it; other
rules skip it silently.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from itertools import combinations
from typing import Any, TypeVar

from ibgp_tunnel.findings import Finding, Severity, toml_path
from ibgp_tunnel.paths import defaults
from ibgp_tunnel.plan import Host, Link, Plan
from ibgp_tunnel.prefixes import (
    Family,
    Network,
    parse_address,
    parse_pattern,
    parse_prefix,
)

T = TypeVar("T")
Rule = Callable[[Plan], Iterator[Finding]]
Path = list[str | int]

FAMILIES: tuple[Family, Family] = ("ipv4", "ipv6")
DN42_ASNS = range(4242420000, 4242429999 + 1)
PRIVATE_ASNS = (range(64512, 65534 + 1), range(4200000000, 4294967294 + 1))
RESERVED_ASNS = {0, 23456, 65535, 4294967295}  # 23456 = AS_TRANS (RFC 6793)

# Names become BIRD symbols (ibgp_<host>, dn42_<peer>, <SET>_NET_v4: at most 64
# characters, so 57 for the name), file names (secrets/<host>.yaml) and sops keys.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,56}")
# The Nix core's own test (problems.nix); Linux allows more, nft and BIRD quoting less.
INTERFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")
DOCUMENTATION_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
LINK_LOCAL6 = ipaddress.ip_network("fe80::/10")


def _error(path: Path, message: str) -> Finding:
    return Finding(toml_path(path), message, Severity.ERROR)


def _warning(path: Path, message: str) -> Finding:
    return Finding(toml_path(path), message, Severity.WARNING)


def _parsed(path: Path, parse: Callable[..., T], *args: Any) -> Iterator[Finding]:
    """Parse, yielding an error finding on failure; `value = yield from _parsed(...)`."""
    try:
        return parse(*args)
    except ValueError as error:
        yield _error(path, str(error))
        return None


def _quietly(parse: Callable[..., T], *args: Any) -> T | None:
    try:
        return parse(*args)
    except ValueError:
        return None


def _names(items: Iterable[str]) -> str:
    listed = ", ".join(sorted(items))
    return listed or "none"


def _known_sets(plan: Plan) -> dict[str, dict[str, list[str]]]:
    """The plan's prefix sets over the shared defaults (a plan's dn42 replaces the default)."""
    known = {name: dict(value) for name, value in defaults()["prefix_sets"].items()}
    known.update({name: value.model_dump() for name, value in plan.prefix_sets.items()})
    return known


def _bird_identifier(name: str) -> str:
    # What the Nix core makes of a name in bird.conf (render/bird.nix: identifier).
    return name.replace("-", "_").replace(".", "_").casefold()


# --- the network -----------------------------------------------------------


def asn_rules(plan: Plan) -> Iterator[Finding]:
    """The ASN is usable, and a DN42 one unless the user means otherwise (warning)."""
    if plan.asn in RESERVED_ASNS:
        yield _error(["asn"], f"{plan.asn} is a reserved ASN; use your own (DN42: 424242xxxx)")
    elif plan.asn not in DN42_ASNS:
        if any(plan.asn in r for r in PRIVATE_ASNS):
            yield _warning(
                ["asn"],
                f"{plan.asn} is a private ASN outside the DN42 range 4242420000-4242429999: "
                "fine for a network of your own, but DN42 peers expect your registered DN42 ASN",
            )
        else:
            yield _warning(
                ["asn"],
                f"{plan.asn} is a public ASN: use it only if it is assigned to you; "
                "DN42 ASNs are 4242420000-4242429999",
            )
    for host_name, host in plan.hosts.items():
        for peer_name, peer in host.dn42_peers.items():
            path: Path = ["hosts", host_name, "dn42_peers", peer_name, "asn"]
            if peer.asn == plan.asn:
                yield _error(
                    path,
                    f"{peer.asn} is this network's own ASN; a DN42 peer is an eBGP neighbour, "
                    "give its ASN",
                )
            elif peer.asn in RESERVED_ASNS:
                yield _error(path, f"{peer.asn} is a reserved ASN; give the peer's real ASN")


def name_rules(plan: Plan) -> Iterator[Finding]:
    """Names are usable as BIRD symbols, file names and sops keys, and stay distinct there."""
    groups: list[tuple[str, Path, Iterable[str]]] = [
        ("host", ["hosts"], plan.hosts),
        ("link", ["links"], plan.links),
        ("prefix set", ["prefix_sets"], plan.prefix_sets),
    ]
    groups += [
        ("DN42 peer", ["hosts", host_name, "dn42_peers"], host.dn42_peers)
        for host_name, host in plan.hosts.items()
    ]
    for kind, base, names in groups:
        seen: dict[str, str] = {}
        for name in names:
            if not NAME.fullmatch(name):
                yield _error(
                    [*base, name],
                    f'{kind} name "{name}" must start with a letter and contain only letters, '
                    "digits, '_' and '-', at most 57 characters (it becomes a BIRD name, a file "
                    "name and a sops key)",
                )
                continue
            key = _bird_identifier(name)
            if key in seen:
                yield _error(
                    [*base, name],
                    f'{kind} names "{seen[key]}" and "{name}" become the same name in bird.conf '
                    "and on disk ('-' turns into '_', case is ignored); rename one",
                )
            seen.setdefault(key, name)


def prefix_set_rules(plan: Plan) -> Iterator[Finding]:
    """Every prefix-set entry is a BIRD prefix pattern of its list's family."""
    for set_name, prefix_set in plan.prefix_sets.items():
        for family in FAMILIES:
            for index, entry in enumerate(getattr(prefix_set, family)):
                path: Path = ["prefix_sets", set_name, family, index]
                yield from _parsed(path, parse_pattern, entry, family)


def set_reference_rules(plan: Plan) -> Iterator[Finding]:
    """Every set a host or peer names exists (in the plan or in defaults.toml)."""
    known = _known_sets(plan)
    for host_name, host in plan.hosts.items():
        references: list[tuple[Path, list[str]]] = [
            (["hosts", host_name, "import_sets"], host.import_sets),
            (["hosts", host_name, "kernel_export_sets"], host.kernel_export_sets),
        ]
        references += [
            (["hosts", host_name, "dn42_peers", peer_name, "export_sets"], peer.export_sets)
            for peer_name, peer in host.dn42_peers.items()
        ]
        for path, names in references:
            for index, name in enumerate(names):
                if name not in known:
                    yield _error(
                        [*path, index],
                        f'names prefix set "{name}", which is not defined; define '
                        f"[prefix_sets.{name}] or use one of: {_names(known)}",
                    )


# --- hosts -----------------------------------------------------------------


def router_id_rules(plan: Plan) -> Iterator[Finding]:
    """Router ids are IPv4 dotted quads, not 0.0.0.0, and unique."""
    owners: dict[ipaddress.IPv4Address, str] = {}
    for host_name, host in plan.hosts.items():
        path: Path = ["hosts", host_name, "router_id"]
        try:
            router_id = parse_address(host.router_id, "ipv4")
        except ValueError:
            yield _error(
                path,
                f'"{host.router_id}" is not an IPv4 dotted quad; BIRD router ids look like '
                '"172.23.101.1" (use one of your own IPv4 addresses)',
            )
            continue
        assert isinstance(router_id, ipaddress.IPv4Address)
        if router_id.is_unspecified:
            yield _error(path, "0.0.0.0 is not a usable router id; use one of the host's IPv4s")
        elif router_id in owners:
            yield _error(
                path,
                f"{router_id} is also the router id of host {owners[router_id]}; "
                "router ids must be unique in the network",
            )
        owners.setdefault(router_id, host_name)


def public_key_rules(plan: Plan) -> Iterator[Finding]:
    """Public keys, where present, are base64 of 32 bytes and not shared by two hosts."""
    owners: dict[str, str] = {}
    for host_name, host in plan.hosts.items():
        if host.public_key is None:
            continue
        path: Path = ["hosts", host_name, "public_key"]
        if not _is_wireguard_key(host.public_key):
            yield _error(
                path,
                f'"{host.public_key}" is not a WireGuard public key (44 characters of base64 '
                "encoding 32 bytes, as `wg pubkey` prints); remove it and run `ibgp-tunnel keys`",
            )
        elif host.public_key in owners:
            yield _error(
                path,
                f"is the same key as host {owners[host.public_key]}'s; every host needs its own "
                "key pair (run `ibgp-tunnel keys --rotate` for one of them)",
            )
        owners.setdefault(host.public_key, host_name)


def _is_wireguard_key(text: str) -> bool:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    # Canonical form only: what `wg` prints and what the Nix core accepts.
    return len(raw) == 32 and base64.b64encode(raw).decode("ascii") == text


def role_rules(plan: Plan) -> Iterator[Finding]:
    """Role-specific keys sit on the right role; reflectors have an endpoint."""
    if not plan.hosts:
        yield _error(["hosts"], "the plan has no hosts; add a [hosts.<name>] reflector and client")
    for host_name, host in plan.hosts.items():
        base: Path = ["hosts", host_name]
        if host.role == "reflector":
            if host.lan_interfaces:
                yield _error(
                    [*base, "lan_interfaces"],
                    "is for clients; a reflector masquerades tunnel traffic out of "
                    "uplink_interfaces instead",
                )
            if host.endpoint is None:
                yield _error(
                    [*base, "endpoint"],
                    "is missing: a reflector needs the public address its clients dial, "
                    'e.g. endpoint = "203.0.113.10"',
                )
            else:
                yield from _endpoint_findings([*base, "endpoint"], host.endpoint)
            continue
        misplaced = {
            "endpoint": host.endpoint is not None,
            "uplink_interfaces": bool(host.uplink_interfaces),
            "dn42_peers": bool(host.dn42_peers),
        }
        for key in (key for key, present in misplaced.items() if present):
            yield _error(
                [*base, key],
                "is for reflectors and would be ignored on a client; move it to the reflector "
                "or remove it",
            )


def _endpoint_findings(path: Path, endpoint: str) -> Iterator[Finding]:
    if endpoint.startswith("["):
        yield _error(path, f'"{endpoint}": write an IPv6 endpoint without brackets or port')
        return
    address = _quietly(parse_address, endpoint)
    if address is None:
        if ":" in endpoint:
            yield _error(
                path,
                f'"{endpoint}" is not an address: write the address or DNS name alone, '
                "the port comes from each link's port",
            )
        elif not HOSTNAME.fullmatch(endpoint):
            yield _error(path, f'"{endpoint}" is neither an IP address nor a DNS name')
        return
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        yield _error(path, f"{address} cannot be dialled by clients; use the reflector's address")
    elif any(address in net for net in DOCUMENTATION_NETS if net.version == address.version):
        yield _warning(
            path,
            f"{address} is a documentation address (an example); replace it with the "
            "reflector's public address",
        )


def announce_rules(plan: Plan) -> Iterator[Finding]:
    """Announced statics are plain prefixes of their list's family."""
    for host_name, host in plan.hosts.items():
        for family in FAMILIES:
            for index, entry in enumerate(getattr(host.announce, family)):
                path: Path = ["hosts", host_name, "announce", family, index]
                yield from _parsed(path, parse_prefix, entry, family)


def interface_name_rules(plan: Plan) -> Iterator[Finding]:
    """Interface names are valid Linux names the Nix core accepts."""
    for host_name, host in plan.hosts.items():
        for key in ("lan_interfaces", "uplink_interfaces"):
            for index, name in enumerate(getattr(host, key)):
                yield from _interface_findings(["hosts", host_name, key, index], name)
        for peer_name, peer in host.dn42_peers.items():
            if peer.interface is not None:
                path: Path = ["hosts", host_name, "dn42_peers", peer_name, "interface"]
                yield from _interface_findings(path, peer.interface)
    for link_name, link in plan.links.items():
        yield from _interface_findings(["links", link_name, "interface"], link.interface)


def _interface_findings(path: Path, name: str) -> Iterator[Finding]:
    if not INTERFACE.fullmatch(name) or name in {".", ".."}:
        yield _error(
            path,
            f'"{name}" is not a usable interface name: use 1 to 15 letters, digits, '
            "'-', '_' or '.' (Linux allows at most 15 characters)",
        )


def dn42_peer_rules(plan: Plan) -> Iterator[Finding]:
    """DN42 neighbours are addresses; a link-local one needs its interface."""
    for host_name, host in plan.hosts.items():
        for peer_name, peer in host.dn42_peers.items():
            base: Path = ["hosts", host_name, "dn42_peers", peer_name]
            address = yield from _parsed([*base, "neighbor"], parse_address, peer.neighbor)
            if address is not None and address.is_link_local and peer.interface is None:
                yield _error(
                    [*base, "interface"],
                    f"is missing: the link-local neighbor {address} is only reachable through "
                    "a named interface",
                )


# --- links -----------------------------------------------------------------


def link_end_rules(plan: Plan) -> Iterator[Finding]:
    """A link joins an existing reflector to an existing client, once per pair."""
    pairs: dict[tuple[str, str], str] = {}
    for link_name, link in plan.links.items():
        for role in ("reflector", "client"):
            host_name = getattr(link, role)
            host = plan.hosts.get(host_name)
            path: Path = ["links", link_name, role]
            if host is None:
                yield _error(
                    path,
                    f'names host "{host_name}", which is not in [hosts] '
                    f"(hosts: {_names(plan.hosts)})",
                )
            elif host.role != role:
                yield _error(
                    path, f'host "{host_name}" is a {host.role}; name a {role} here (or swap ends)'
                )
        pair = (link.reflector, link.client)
        if pair in pairs:
            yield _error(
                ["links", link_name],
                f"joins {link.reflector} and {link.client} again (links.{pairs[pair]} already "
                "does); one link per reflector-client pair",
            )
        pairs.setdefault(pair, link_name)


def link_subnet_rules(plan: Plan) -> Iterator[Finding]:
    """Link subnets: IPv4 /30 or /31; IPv6 /64 or /127 and global."""
    for link_name, link in plan.links.items():
        base: Path = ["links", link_name]
        v4 = yield from _parsed([*base, "ipv4"], parse_prefix, link.ipv4, "ipv4")
        if v4 is not None and v4.prefixlen not in (30, 31):
            yield _error(
                [*base, "ipv4"],
                f"{v4} is a /{v4.prefixlen}; a point-to-point tunnel takes a /30 or a /31",
            )
        v6 = yield from _parsed([*base, "ipv6"], parse_prefix, link.ipv6, "ipv6")
        if v6 is None:
            continue
        if v6.prefixlen not in (64, 127):
            yield _error(
                [*base, "ipv6"], f"{v6} is a /{v6.prefixlen}; the tunnel's IPv6 takes a /64 or /127"
            )
        if v6.overlaps(LINK_LOCAL6):
            yield _error(
                [*base, "ipv6"],
                f"{v6} is link-local: BIRD learns no next hop from fe80::/10, so IPv6 routes "
                "would be withdrawn; use a global or ULA (fd00::/8) subnet",
            )
        elif v6.is_multicast or v6.is_loopback or v6.is_unspecified:
            yield _error([*base, "ipv6"], f"{v6} is not a unicast subnet; use a global or ULA one")


def link_address_rules(plan: Plan) -> Iterator[Finding]:
    """Both ends sit inside the link subnet, differ, and are usable host addresses."""
    for link_name, link in plan.links.items():
        for family in FAMILIES:
            subnet = _quietly(parse_prefix, getattr(link, family), family)
            ends = {}
            for role in ("reflector", "client"):
                key = f"{role}_{family}"
                path: Path = ["links", link_name, key]
                address = yield from _parsed(path, parse_address, getattr(link, key), family)
                if address is None:
                    continue
                ends[role] = address
                if subnet is not None:
                    yield from _end_findings(path, address, subnet, f"links.{link_name}.{family}")
            if len(ends) == 2 and ends["reflector"] == ends["client"]:
                yield _error(
                    ["links", link_name, f"client_{family}"],
                    f"{ends['client']} is also the reflector's address; the two ends need "
                    "different addresses",
                )


def _end_findings(path: Path, address: Any, subnet: Network, where: str) -> Iterator[Finding]:
    if address not in subnet:
        yield _error(path, f"{address} is outside {where} ({subnet}); {_usable_hint(subnet)}")
    elif subnet.version == 4 and subnet.prefixlen == 30:
        if address in (subnet.network_address, subnet.broadcast_address):
            yield _error(
                path,
                f"{address} is the network or broadcast address of {subnet}; "
                f"{_usable_hint(subnet)}",
            )
    elif subnet.version == 6 and subnet.prefixlen == 64 and address == subnet.network_address:
        yield _error(
            path,
            f"{address} is the subnet-router anycast address of {subnet}; {_usable_hint(subnet)}",
        )


def _usable_hint(subnet: Network) -> str:
    if subnet.version == 4 and subnet.prefixlen >= 30:
        hosts = list(subnet.hosts())
        return f"use {hosts[0]} or {hosts[1]}"
    if subnet.version == 6 and subnet.prefixlen == 127:
        return f"use {subnet.network_address} or {subnet.broadcast_address}"
    return f"use an address such as {subnet.network_address + 1} or {subnet.network_address + 2}"


def host_link_rules(plan: Plan) -> Iterator[Finding]:
    """Every client has a link; ports and interface names are unique per host."""
    by_host: dict[str, list[tuple[str, Link]]] = defaultdict(list)
    for link_name, link in plan.links.items():
        for host_name in {link.reflector, link.client}:
            by_host[host_name].append((link_name, link))
    for host_name, host in plan.hosts.items():
        links = by_host.get(host_name, [])
        if not links:
            yield _lonely_host(plan, host_name, host)
        yield from _port_clashes(host_name, links)
        yield from _interface_clashes(host_name, host, links)


def _lonely_host(plan: Plan, host_name: str, host: Host) -> Finding:
    if host.role == "client":
        reflectors = [name for name, other in plan.hosts.items() if other.role == "reflector"]
        reflector = reflectors[0] if reflectors else "<a reflector>"
        return _error(
            ["hosts", host_name],
            f'client {host_name} has no link; add [links.{host_name}] with client = "{host_name}" '
            f'and reflector = "{reflector}"',
        )
    return _warning(
        ["hosts", host_name],
        f"reflector {host_name} has no link, so no client uses it; add a [links.<name>] "
        f'with reflector = "{host_name}"',
    )


def _port_clashes(host_name: str, links: list[tuple[str, Link]]) -> Iterator[Finding]:
    first: dict[int, str] = {}
    for link_name, link in links:
        if link.port in first:
            yield _error(
                ["links", link_name, "port"],
                f"{link.port} is also the port of links.{first[link.port]} on host {host_name}; "
                "give each link on a host its own port",
            )
        first.setdefault(link.port, link_name)


def _interface_clashes(
    host_name: str, host: Host, links: list[tuple[str, Link]]
) -> Iterator[Finding]:
    taken: dict[str, str] = {
        name: f"hosts.{host_name}.lan_interfaces" for name in host.lan_interfaces
    }
    taken |= {name: f"hosts.{host_name}.uplink_interfaces" for name in host.uplink_interfaces}
    taken |= {
        peer.interface: f"hosts.{host_name}.dn42_peers.{peer_name}"
        for peer_name, peer in host.dn42_peers.items()
        if peer.interface is not None
    }
    for link_name, link in links:
        if link.interface in taken:
            yield _error(
                ["links", link_name, "interface"],
                f'"{link.interface}" is already used on host {host_name} by '
                f"{taken[link.interface]}; give this link its own interface name",
            )
        taken.setdefault(link.interface, f"links.{link_name}")


def overlap_rules(plan: Plan) -> Iterator[Finding]:
    """Link subnets overlap no other link, no announced prefix; sets are warned about."""
    subnets = _link_subnets(plan)
    for (a_name, family, a), (b_name, b_family, b) in combinations(subnets, 2):
        if family == b_family and a.overlaps(b):
            yield _error(
                ["links", b_name, family],
                f"{b} overlaps links.{a_name}.{family} ({a}); give every link its own subnet",
            )
    announced = [
        (f"hosts.{host_name}.announce.{family}[{index}]", prefix)
        for host_name, host in plan.hosts.items()
        for family in FAMILIES
        for index, entry in enumerate(getattr(host.announce, family))
        if (prefix := _quietly(parse_prefix, entry, family)) is not None
    ]
    for link_name, family, subnet in subnets:
        for where, prefix in announced:
            if prefix.version == subnet.version and prefix.overlaps(subnet):
                yield _error(
                    ["links", link_name, family],
                    f"{subnet} overlaps {where} ({prefix}): routes for it would compete with "
                    "the tunnel; use a link subnet outside every announced prefix",
                )


def _link_subnets(plan: Plan) -> list[tuple[str, Family, Network]]:
    return [
        (link_name, family, subnet)
        for link_name, link in plan.links.items()
        for family in FAMILIES
        if (subnet := _quietly(parse_prefix, getattr(link, family), family)) is not None
    ]


RULES: tuple[Rule, ...] = (
    asn_rules,
    name_rules,
    prefix_set_rules,
    set_reference_rules,
    router_id_rules,
    public_key_rules,
    role_rules,
    announce_rules,
    interface_name_rules,
    dn42_peer_rules,
    link_end_rules,
    link_subnet_rules,
    link_address_rules,
    host_link_rules,
    overlap_rules,
)


def check_rules(plan: Plan) -> list[Finding]:
    """Every finding of every rule, errors and warnings, in a stable order."""
    found = [finding for rule in RULES for finding in rule(plan)]
    # Two rules may phrase the same fact the same way; say it once.
    return sorted(Counter(found))
