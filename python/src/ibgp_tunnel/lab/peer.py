"""The BIRD configuration of the lab's DN42 peer (not rendered by the core: in
real life it is somebody else's router)."""

from __future__ import annotations

import ipaddress

from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.topology import Dn42Peer

# Where extra announcements come from (a route flood, the 10k+10k bench): inside
# the DN42 sets 10.0.0.0/8{15,24} and fd00::/8{44,64}, and clear of every address
# the lab itself uses (10.42.x LANs, 10.255.255.x tunnels, fd42:/fdb7:/fd00:42:).
EXTRA_IPV4 = ipaddress.ip_network("10.128.0.0/9")
EXTRA_IPV4_LENGTH = 24
EXTRA_IPV6 = ipaddress.ip_network("fd99::/32")
EXTRA_IPV6_LENGTH = 48


def extra_prefixes(ipv4: int, ipv6: int) -> tuple[list[str], list[str]]:
    """The first `ipv4` /24s of 10.128.0.0/9 and the first `ipv6` /48s of fd99::/32."""
    pools = (
        (EXTRA_IPV4, EXTRA_IPV4_LENGTH, ipv4),
        (EXTRA_IPV6, EXTRA_IPV6_LENGTH, ipv6),
    )
    result: list[list[str]] = []
    for pool, length, count in pools:
        room = 2 ** (length - pool.prefixlen)
        if not 0 <= count <= room:
            raise LabError(f"the DN42 peer can announce 0 to {room} extra routes from {pool}")
        first = int(pool.network_address)
        step = 2 ** (pool.max_prefixlen - length)
        result.append([f"{ipaddress.ip_address(first + i * step)}/{length}" for i in range(count)])
    return result[0], result[1]


def _static(name: str, family: str, prefixes: list[str] | tuple[str, ...]) -> str:
    routes = "\n".join(f"  route {p} unreachable;" for p in prefixes)
    return f"protocol static {name} {{\n  {family};\n{routes}\n}}\n"


def dn42_peer_bird_config(
    peer: Dn42Peer, interface: str = "eth0", *, extra_ipv4: int = 0, extra_ipv6: int = 0
) -> str:
    """eBGP to the reflector over IPv4, carrying IPv4 and IPv6 statics, plus
    `extra_ipv4`/`extra_ipv6` more routes (see `extra_prefixes`)."""
    more4, more6 = extra_prefixes(extra_ipv4, extra_ipv6)
    extras = ""
    if more4:
        extras += "\n" + _static("extra4", "ipv4", more4)
    if more6:
        extras += "\n" + _static("extra6", "ipv6", more6)
    return f"""\
# Lab stand-in for the DN42 peer {peer.name} of {peer.reflector}; written by ibgp-tunnel lab.
router id {peer.neighbor};

protocol device {{
  scan time 10;
}}

{_static("announce4", "ipv4", peer.announce_ipv4)}
{_static("announce6", "ipv6", peer.announce_ipv6)}{extras}
protocol bgp {peer_protocol(peer)} {{
  local {peer.neighbor} as {peer.asn};
  neighbor {peer.reflector_ipv4} as {peer.reflector_asn};
  interface "{interface}";
  ipv4 {{
    import all;
    export where source = RTS_STATIC;
  }};
  ipv6 {{
    import all;
    export where source = RTS_STATIC;
    # The session runs over IPv4: IPv6 routes need an explicit next hop.
    next hop address {peer.neighbor_ipv6};
  }};
}}
"""


def peer_protocol(peer: Dn42Peer) -> str:
    """The name of the stand-in's BGP protocol toward its reflector."""
    return f"to_{peer.reflector.replace('-', '_')}"
