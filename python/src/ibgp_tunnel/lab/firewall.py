"""The per-host nftables ruleset: a copy of NixOS's nftables firewall plus ours.

A NixOS host runs `table inet nixos-fw` (input policy drop, the allowed
ports in input-allow; forward policy drop with `filterForward`, the
`extraForwardRules` in forward-allow; a strict reverse-path check with
`extraReversePathFilterRules` in rpfilter-allow) next to the table our
module renders. The lab loads the same shape, filled from the rendered
artifacts, so a missing rule breaks the lab as it would break the host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NIXOS_TABLE = "nixos-fw"


@dataclass(frozen=True)
class FirewallInputs:
    """What the host firewall gets from our artifacts (and from the lab, for DN42)."""

    allowed_udp_ports: tuple[int, ...]
    forward_rules: str
    reverse_path_rules: str
    input_rules: str = ""
    # allowedUDPPortRanges as (from, to): the autopeer WireGuard ports.
    allowed_udp_port_ranges: tuple[tuple[int, int], ...] = ()


def interface_input_rules(artifacts: Mapping[str, Any]) -> str:
    """`networking.firewall.interfaces.<name>.allowed{TCP,UDP}Ports` from the rendered
    `firewallInterfaces` (BGP, BFD), as NixOS's input-allow chain renders them."""
    lines = []
    for name, ports in artifacts.get("firewallInterfaces", {}).items():
        for proto in ("tcp", "udp"):
            allowed = ports.get(f"allowed{proto.upper()}Ports", [])
            if allowed:
                lines.append(f'iifname "{name}" {proto} dport {{ {_ports(allowed)} }} accept\n')
    return "".join(lines)


def inputs_from_artifacts(artifacts: Mapping[str, Any]) -> FirewallInputs:
    nft = artifacts["nftables"]
    input_rules = interface_input_rules(artifacts) + str(nft.get("hostInputRules", ""))
    ranges = (artifacts.get("autopeer") or {}).get("allowedUDPPortRanges", [])
    return FirewallInputs(
        allowed_udp_port_ranges=tuple((int(r["from"]), int(r["to"])) for r in ranges),
        allowed_udp_ports=tuple(int(p) for p in artifacts.get("allowedUDPPorts", [])),
        forward_rules=str(nft.get("forwardRules", "")),
        reverse_path_rules=str(nft.get("reversePathRules", "")),
        input_rules=input_rules,
    )


def _indent(text: str, depth: int = 2) -> list[str]:
    return [" " * depth + line for line in text.splitlines() if line.strip()]


def _ports(ports: Iterable[int], ranges: Iterable[tuple[int, int]] = ()) -> str:
    # As portsToNftSet: the ports, then the ranges as from-to.
    items = [str(p) for p in sorted(set(ports))] + [f"{a}-{b}" for a, b in ranges]
    return ", ".join(items)


def nixos_firewall(inputs: FirewallInputs) -> str:
    """`table inet nixos-fw { ... }` as NixOS builds it (nftables backend,
    checkReversePath = true, filterForward = true, allowPing = true)."""
    # As firewall-nftables.nix: the global ports as one set (nft lists a set of one
    # port as `udp dport P accept`), the per-interface ports (NixOS orders them with
    # the global entry by name; all accept, so the order changes nothing), the
    # temporarily opened ports (nixos-firewall-tool), ping, ICMPv6, DHCPv6.
    input_allow = []
    if inputs.allowed_udp_ports or inputs.allowed_udp_port_ranges:
        udp = _ports(inputs.allowed_udp_ports, inputs.allowed_udp_port_ranges)
        input_allow.append(f"udp dport {{ {udp} }} accept")
    input_allow += [
        *_indent(inputs.input_rules, 0),
        "meta l4proto . th dport @temp-ports accept",
        'icmp type echo-request accept comment "allow ping"',
        "icmpv6 type != { nd-redirect, 139 } accept",
        "ip6 daddr fe80::/64 udp dport 546 accept",
    ]
    vmap = (
        "ct state vmap { invalid : drop, established : accept, related : accept, "
        "new : jump {chain}, untracked : jump {chain} }"
    )
    lines = [
        f"table inet {NIXOS_TABLE} {{",
        "  set temp-ports {",
        '    comment "Temporarily opened ports"',
        "    type inet_proto . inet_service",
        "    flags interval",
        "    auto-merge",
        "  }",
        "  chain rpfilter {",
        "    type filter hook prerouting priority mangle + 10; policy drop;",
        "    meta nfproto ipv4 udp sport . udp dport { 67 . 68, 68 . 67 } accept",
        "    fib saddr . mark . iif oif exists accept",
        "    jump rpfilter-allow",
        "  }",
        "  chain rpfilter-allow {",
        *_indent(inputs.reverse_path_rules, 4),
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        '    iifname { "lo" } accept comment "trusted interfaces"',
        "    " + vmap.replace("{chain}", "input-allow"),
        "  }",
        "  chain input-allow {",
        *_indent("\n".join(input_allow), 4),
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "    " + vmap.replace("{chain}", "forward-allow"),
        "  }",
        "  chain forward-allow {",
        "    icmpv6 type != { router-renumbering, 139 } accept",
        '    ct status dnat accept comment "allow port forward"',
        *_indent(inputs.forward_rules, 4),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def replace_table(family: str, name: str, body: str) -> str:
    """An `nft -f` script that replaces table `family name` atomically with `body`
    (a full `table ... { }` text) — and deletes it when `body` is empty."""
    # Declaring the table first makes the delete succeed whether or not it existed.
    head = f"table {family} {name}\ndelete table {family} {name}\n"
    return head + body


def host_ruleset(inputs: FirewallInputs, rendered_ruleset: str, table: str) -> str:
    """Everything a plan host loads: the NixOS firewall copy and our rendered table."""
    return replace_table("inet", NIXOS_TABLE, nixos_firewall(inputs)) + replace_table(
        "inet", table, rendered_ruleset
    )
