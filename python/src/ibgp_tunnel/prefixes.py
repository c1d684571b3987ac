"""Addresses, prefixes and BIRD prefix patterns, parsed with messages for people.

Each parser returns the value or raises ValueError whose text says what is
wrong and what would be right; rules.py turns that text into a finding.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

Family = Literal["ipv4", "ipv6"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_LENGTH = {"ipv4": 32, "ipv6": 128}
_VERSION = {"ipv4": 4, "ipv6": 6}

# a.b.c.d/n, then optionally +, - or {lo,hi}: the pattern forms BIRD's filters accept.
_PATTERN_OPERATOR = re.compile(r"[+{}-]")
_PATTERN = re.compile(
    r"(?P<base>[^/{}+\s-][^/{}+\s]*/\d{1,3})(?P<op>\+|-|\{(\d{1,3}),(\d{1,3})\})?"
)


@dataclass(frozen=True)
class PrefixPattern:
    """BIRD `prefix{low,high}`: prefixes inside `network` with length low..high."""

    network: Network
    low: int
    high: int

    def can_match_inside(self, subnet: Network) -> bool:
        """Whether some prefix this pattern accepts lies inside (or equals) `subnet`."""
        return self.network.version == subnet.version and (
            self.network.overlaps(subnet) and self.high >= subnet.prefixlen
        )


def parse_address(text: str, family: Family | None = None) -> Address:
    """A single address (no prefix length) of the given family, if any."""
    if "/" in text:
        raise ValueError(f'"{text}" has a prefix length; write the address alone')
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        want = {"ipv4": "an IPv4", "ipv6": "an IPv6", None: "an IP"}[family]
        raise ValueError(f'"{text}" is not {want} address') from None
    if family is not None and address.version != _VERSION[family]:
        raise ValueError(f'"{text}" is an IPv{address.version} address where {family} is expected')
    return address


def parse_prefix(text: str, family: Family) -> Network:
    """A plain prefix `address/length` of `family` with no host bits set."""
    if "/" not in text:
        raise ValueError(f'"{text}" has no prefix length; write it as address/length')
    address_text, _, length_text = text.partition("/")
    if _PATTERN_OPERATOR.search(length_text):
        raise ValueError(f'"{text}" is a prefix pattern; write a plain prefix such as "10.0.0.0/8"')
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise ValueError(f'"{text}" does not start with an IP address') from None
    if address.version != _VERSION[family]:
        raise ValueError(
            f'"{text}" is an IPv{address.version} prefix where {family} is expected; '
            f"it belongs in the ipv{address.version} list"
        )
    if not length_text.isascii() or not length_text.isdigit():
        raise ValueError(f'"{text}" has prefix length "{length_text}"; use a number')
    length = int(length_text)
    if length > _MAX_LENGTH[family]:
        raise ValueError(
            f'"{text}" has prefix length {length}; {family} allows at most {_MAX_LENGTH[family]}'
        )
    network = ipaddress.ip_network(f"{address}/{length}", strict=False)
    if network.network_address != address:
        raise ValueError(f'"{text}" has host bits set; did you mean {network}?')
    return network


def parse_pattern(text: str, family: Family) -> PrefixPattern:
    """A BIRD prefix pattern: prefix, prefix+, prefix- or prefix{low,high}."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(
            f'"{text}" is not a BIRD prefix pattern; write a prefix such as "172.20.0.0/14", '
            'optionally followed by "+", "-" or "{low,high}", without spaces'
        )
    network = parse_prefix(match["base"], family)
    length, most = network.prefixlen, _MAX_LENGTH[family]
    op = match["op"]
    if op is None:
        return PrefixPattern(network, length, length)
    if op == "+":
        return PrefixPattern(network, length, most)
    if op == "-":
        return PrefixPattern(network, 0, length)
    low, high = int(match[3]), int(match[4])
    if not length <= low <= high <= most:
        raise ValueError(
            f'"{text}": the range {{{low},{high}}} must satisfy '
            f"{length} <= low <= high <= {most} (the prefix length, then the family's maximum)"
        )
    return PrefixPattern(network, low, high)
