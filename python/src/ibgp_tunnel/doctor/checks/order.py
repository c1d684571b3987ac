"""The checks: live state against what the plan says, root causes first.

`run_checks` runs them in an order where a cause comes before its symptoms:
BIRD running, self-service peering's units and firewall elements, then the
tunnel (interface, keys, addresses), the firewall's ports, whether packets
come back through the tunnel (measured: a dead tunnel is named before what it
causes), the handshake, the path MTU measured through the tunnel (a black
hole stalls BGP on its first large UPDATE), BIRD's sessions (with BIRD's own reason),
BFD, graceful restart recovery, routes in the kernel, forwarding/NAT/reverse-path
filtering, the IPv6 next hop (the write-up's pitfall 4), overlaps, MTU and import
limits, the RTR caches (RPKI), and last drift of BIRD's config and our nftables
table from what the plan renders (WireGuard's drift runs before the firewall: a
peer changed by hand is a cause). So the first failing line is the one to act on.
"""

from __future__ import annotations

from ibgp_tunnel.doctor.checks.autopeer import check_autopeer
from ibgp_tunnel.doctor.checks.bird import (
    check_bfd,
    check_bird_running,
    check_recovery,
    check_sessions,
)
from ibgp_tunnel.doctor.checks.common import CheckFn
from ibgp_tunnel.doctor.checks.dn42latency import check_dn42_latency
from ibgp_tunnel.doctor.checks.drift import (
    check_bird_drift,
    check_nft_drift,
    check_wireguard_drift,
)
from ibgp_tunnel.doctor.checks.firewall import check_firewall_ports
from ibgp_tunnel.doctor.checks.forwarding import (
    check_accept_ra,
    check_forward_rules,
    check_forwarding_sysctl,
    check_ipv6_routes,
    check_kernel_routes,
    check_masquerade,
    check_rp_filter,
)
from ibgp_tunnel.doctor.checks.limits import check_import_limits, check_mtu, check_overlaps
from ibgp_tunnel.doctor.checks.liveness import check_tunnel_alive
from ibgp_tunnel.doctor.checks.pmtu import check_path_mtu
from ibgp_tunnel.doctor.checks.rpki import check_rpki_caches
from ibgp_tunnel.doctor.checks.tunnel import (
    check_handshakes,
    check_keys,
    check_tunnel_addresses,
    check_tunnel_interfaces,
)
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.result import Check

CHECKS: tuple[CheckFn, ...] = (
    check_bird_running,
    # Self-service peering's units and firewall elements: the cause when an applied
    # peering's interface or session is missing below.
    check_autopeer,
    check_tunnel_interfaces,
    check_keys,
    check_tunnel_addresses,
    # A peer's allowed IPs or endpoint changed by hand: the cause of what follows.
    check_wireguard_drift,
    check_firewall_ports,
    check_tunnel_alive,
    check_handshakes,
    check_path_mtu,
    check_sessions,
    check_bfd,
    check_recovery,
    check_kernel_routes,
    check_forwarding_sysctl,
    check_forward_rules,
    check_masquerade,
    check_rp_filter,
    check_accept_ra,
    check_ipv6_routes,
    check_overlaps,
    check_mtu,
    check_import_limits,
    check_rpki_caches,
    # What a DN42 peer's routes carry: a consequence of the session, never a cause.
    check_dn42_latency,
    # Last: a hand edit other checks name more precisely keeps their line first.
    check_bird_drift,
    check_nft_drift,
)


def run_checks(exp: Expectations, live: Live) -> list[Check]:
    """Every check, in order (see the module docstring)."""
    return [check for function in CHECKS for check in function(exp, live)]
