"""Prefix patterns, prefixes and TOML paths: the parsing the rules build on."""

from __future__ import annotations

import ipaddress

import pytest

from ibgp_tunnel.findings import toml_path
from ibgp_tunnel.prefixes import parse_address, parse_pattern, parse_prefix


@pytest.mark.parametrize(
    ("text", "family", "low", "high"),
    [
        ("172.20.0.0/14{21,29}", "ipv4", 21, 29),
        ("172.31.0.0/16+", "ipv4", 16, 32),
        ("10.0.0.0/8-", "ipv4", 0, 8),
        ("104.16.0.0/13", "ipv4", 13, 13),
        ("0.0.0.0/0{0,32}", "ipv4", 0, 32),
        ("fd00::/8{44,64}", "ipv6", 44, 64),
        ("2606:4700::/32+", "ipv6", 32, 128),
    ],
)
def test_valid_patterns(text: str, family: str, low: int, high: int) -> None:
    pattern = parse_pattern(text, family)  # type: ignore[arg-type]
    assert (pattern.low, pattern.high) == (low, high)


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("172.20.0.0/14{29,21}", "ipv4"),  # low > high
        ("172.20.0.0/14{8,21}", "ipv4"),  # low < length
        ("172.20.0.0/14{21,33}", "ipv4"),  # high > 32
        ("fd00::/8{44,129}", "ipv6"),
        ("172.20.0.0/14{21}", "ipv4"),
        ("172.20.0.0/14{ 21,29 }", "ipv4"),
        ("172.20.0.0/14++", "ipv4"),
        ("172.20.0.0", "ipv4"),
        ("172.20.0.1/14", "ipv4"),  # host bits
        ("fd00::/8", "ipv4"),  # family
        ("172.20.0.0/14", "ipv6"),
        ("172.20.0/14", "ipv4"),
        ("010.0.0.0/8", "ipv4"),  # leading zeros are ambiguous
        ("1.2.3.4/8; }", "ipv4"),  # nothing can be smuggled into bird.conf
        ("", "ipv4"),
        ("/8", "ipv4"),
    ],
)
def test_invalid_patterns_say_why(text: str, family: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_pattern(text, family)  # type: ignore[arg-type]


def test_pattern_matching_inside_a_subnet() -> None:
    v4 = ipaddress.ip_network("10.255.255.0/30")
    assert not parse_pattern("10.0.0.0/8{15,24}", "ipv4").can_match_inside(v4)
    assert parse_pattern("10.0.0.0/8+", "ipv4").can_match_inside(v4)
    assert parse_pattern("10.255.255.0/31", "ipv4").can_match_inside(v4)
    assert not parse_pattern("172.20.0.0/14+", "ipv4").can_match_inside(v4)
    v6 = ipaddress.ip_network("fdb7:1dec:4d21:ff::/64")
    assert parse_pattern("fd00::/8{44,64}", "ipv6").can_match_inside(v6)
    assert not parse_pattern("fd00::/8{44,63}", "ipv6").can_match_inside(v6)
    assert not parse_pattern("fd00::/8{44,64}", "ipv6").can_match_inside(v4)


def test_prefix_and_address_messages() -> None:
    with pytest.raises(ValueError, match=r"did you mean 10\.255\.255\.0/30"):
        parse_prefix("10.255.255.1/30", "ipv4")
    with pytest.raises(ValueError, match="prefix pattern"):
        parse_prefix("10.0.0.0/8+", "ipv4")
    with pytest.raises(ValueError, match="prefix length"):
        parse_address("10.0.0.1/32", "ipv4")
    with pytest.raises(ValueError, match="IPv6 address where ipv4"):
        parse_address("::1", "ipv4")


def test_toml_paths_quote_what_needs_quoting() -> None:
    assert toml_path(["links", "pve", "client_ipv4"]) == "links.pve.client_ipv4"
    assert toml_path(["prefix_sets", "dn42", "ipv4", 0]) == "prefix_sets.dn42.ipv4[0]"
    assert toml_path(["hosts", "my host", "role"]) == 'hosts."my host".role'
    assert toml_path(["hosts", 'a"b\nc']) == 'hosts."a\\"b\\u000ac"'
