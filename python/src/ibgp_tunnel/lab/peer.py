"""The BIRD configuration of the lab's DN42 peer (not rendered by the core: in
real life it is somebody else's router)."""

from __future__ import annotations

from ibgp_tunnel.lab.topology import Dn42Peer


def dn42_peer_bird_config(peer: Dn42Peer, interface: str = "eth0") -> str:
    """eBGP to the reflector over IPv4, carrying IPv4 and IPv6 statics."""
    statics4 = "\n".join(f"  route {p} unreachable;" for p in peer.announce_ipv4)
    statics6 = "\n".join(f"  route {p} unreachable;" for p in peer.announce_ipv6)
    return f"""\
# Lab stand-in for the DN42 peer {peer.name} of {peer.reflector}; written by ibgp-tunnel lab.
router id {peer.neighbor};

protocol device {{
  scan time 10;
}}

protocol static announce4 {{
  ipv4;
{statics4}
}}

protocol static announce6 {{
  ipv6;
{statics6}
}}

protocol bgp to_{peer.reflector.replace("-", "_")} {{
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
