"""The core's token grammars (modules/lib/grammar/tokens.nix): what each kind accepts,
that its problem says why, that its regex (the NixOS option type) agrees, and
that TOML paths are written alike by the helper and the core."""

from __future__ import annotations

import json
import random

import pytest
from nixcore import CORE, core_call, needs_nix

from ibgp_tunnel.findings import toml_path

pytestmark = needs_nix

GOOD = {
    "name": ["dmz", "peer-1", "a_b", "A" + "b" * 56],
    "interface": ["wg-ibgp", "eth0.100", "..a", ".a", "a" * 15],
    "ipv4": ["172.20.42.1", "0.0.0.0", "255.255.255.255"],
    "ipv6": ["fd00::1", "::", "::1", "1:2:3:4:5:6:7:8", "fe80::1", "1::"],
    "cidr": ["10.255.255.1/30", "fd00::2/64", "0.0.0.0/0", "::/128"],
    "prefix4": ["10.0.0.0/8", "104.16.0.0/13", "0.0.0.0/0"],
    "prefix6": ["fd00::/8", "2606:4700::/32"],
    "pattern4": [
        "172.20.0.0/14{21,29}",
        "172.31.0.0/16+",
        "10.0.0.0/8-",
        "104.16.0.0/13",
        "0.0.0.0/0{0,32}",
    ],
    "pattern6": ["fd00::/8{44,64}", "2606:4700::/32+"],
    "endpoint": ["203.0.113.10:51821", "[fd00::1]:1", "vps.example.com:65535", "a:1"],
    "endpointHost": ["203.0.113.10", "fd00::1", "vps.example.com."],
    "publicKey": ["YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixo="],
    "runtimePath": ["/run/secrets/wg_ibgp/psk/pve", "/run/keys/a.b", "/var/lib/x/.hidden"],
    "routerId": ["172.23.101.1"],
}

BAD = {
    "name": ["", "1abc", "a b", "a;b", "../x", "a/b", "a" * 58, "ä"],
    "interface": ["", ".", "..", "a" * 16, 'wg"0', "wg 0", "wg{", "wg\n0"],
    "ipv4": ["1.2.3", "1.2.3.4.5", "256.1.1.1", "010.0.0.1", "1.2.3.4 ", "\u0661.2.3.4"],
    "ipv6": ["fe80::1%eth0", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8:9", ":::", "fd00::1;", "g::1"],
    "cidr": ["10.0.0.1", "10.0.0.1/33", "fd00::/129", "10.0.0.1/3 ", "10.0.0.1/08"],
    "prefix4": ["10.0.0.1/8", "10.0.0.0/8+", "fd00::/8", "10.0.0.0/\uff18"],
    "prefix6": ["fd00::1/8", "10.0.0.0/8"],
    "pattern4": [
        "172.20.0.0/14{29,21}",
        "172.20.0.0/14{8,21}",
        "172.20.0.0/14{21,33}",
        "172.20.0.0/14{21}",
        "172.20.0.0/14{ 21,29 }",
        "172.20.0.0/14++",
        "172.20.0.0",
        "172.20.0.1/14",
        "fd00::/8",
        "172.20.0/14",
        "010.0.0.0/8",
        "1.2.3.4/8; }",
        "",
        "/8",
    ],
    "pattern6": ["fd00::/8{44,129}", "172.20.0.0/14", "fd00::1/8"],
    "endpoint": [
        "203.0.113.10",
        "203.0.113.10:0",
        "203.0.113.10:65536",
        "fd00::1:5",
        "a;b:1",
        "999.1.1.1:5",
    ],
    "endpointHost": ["[fd00::1]", "203.0.113.10:51821", "a b", "$(id)", "203.0.113.256"],
    "publicKey": ["short", "YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixp=", "x" * 44],
    "runtimePath": [
        "relative",
        "/nix/store/abc-key",
        "/run/../etc/shadow",
        "/a b",
        "/a;b",
        "/a\nb",
    ],
    "routerId": ["0.0.0.0", "not-an-ip", "::1"],
}


def _judge(kind: str, values: list[str]) -> list[dict[str, object]]:
    return core_call(
        f"map (v: {{ problem = core.tokens.{kind}.problem v; "
        f"matches = builtins.match core.tokens.{kind}.regex v != null; }}) "
        f"(builtins.fromJSON {json.dumps(json.dumps(values))})"
    )


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_good_tokens_pass_and_match_their_regex(kind: str) -> None:
    for value, verdict in zip(GOOD[kind], _judge(kind, GOOD[kind]), strict=True):
        assert verdict == {"problem": None, "matches": True}, (value, verdict)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_tokens_say_why(kind: str) -> None:
    for value, verdict in zip(BAD[kind], _judge(kind, BAD[kind]), strict=True):
        assert isinstance(verdict["problem"], str) and len(verdict["problem"]) > 10, value
        # The message quotes the value on one line, whatever it holds.
        assert "\n" not in verdict["problem"]


def test_emit_names_the_field() -> None:
    from nixcore import nix_eval_error

    error = nix_eval_error(
        f'(import {CORE}).tokens.interface.emit "services.ibgpTunnel.links.pve.interface" "wg\\"0"'
    )
    assert 'ibgp-tunnel: services.ibgpTunnel.links.pve.interface: "wg\\"0" is not' in error


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [
        ("holdTime", 0, 65535),
        ("keepaliveTime", 1, 65535),
        ("bfdMultiplier", 1, 255),
        ("gracefulRestartTime", 1, 4095),
        ("longLivedStaleTime", 0, 16777215),
        ("importLimit", 1, 4294967295),
    ],
)
def test_tuning_ranges_are_birds(kind: str, low: int, high: int) -> None:
    verdicts = core_call(
        f"map core.tokens.tuning.{kind}.problem [ ({low}) ({high}) ({low - 1}) ({high + 1}) ]"
    )
    assert verdicts[:2] == [None, None]
    assert all(isinstance(v, str) for v in verdicts[2:])


def test_hold_time_one_and_two_are_refused() -> None:
    assert all(core_call("map core.tokens.tuning.holdTime.problem [ 1 2 ]"))


def test_toml_paths_quote_what_needs_quoting() -> None:
    assert toml_path(["links", "pve", "client_ipv4"]) == "links.pve.client_ipv4"
    assert toml_path(["prefix_sets", "dn42", "ipv4", 0]) == "prefix_sets.dn42.ipv4[0]"
    assert toml_path(["hosts", "my host", "role"]) == 'hosts."my host".role'
    assert toml_path(["hosts", 'a"b\nc']) == 'hosts."a\\"b\\u000ac"'


def _address_like(rng: random.Random) -> str:
    """Strings near the IPv6 and IPv4 forms: groups, '::', stray characters, suffixes."""
    groups = [
        rng.choice(["0", "1", "fd42", "FFFF", "abcd", "12345", "g", "", "0db8"])
        for _ in range(rng.randint(0, 10))
    ]
    text = ":".join(groups)
    if groups and rng.random() < 0.6:
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(["::", ":::", ":"]) + text[at:]
    if rng.random() < 0.2:
        text = ".".join(
            str(rng.choice([0, 1, 10, 255, 256, 1000])) for _ in range(rng.randint(3, 5))
        )
    if rng.random() < 0.1:
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(["x", "/", ".", " ", "%", "[", "]"]) + text[at:]
    suffix = rng.choice(
        ["", "", "/64", "/128", "/129", "/08", "/0", "/", "/8+", "/8{44,64}", "/8-", "/8{1}"]
    )
    return text + suffix


@pytest.mark.parametrize(
    "kind", ["ipv6", "address", "cidr", "prefix4", "prefix6", "pattern4", "pattern6", "prefixAny"]
)
def test_fast_test_is_the_regex(kind: str) -> None:
    # The IPv6-bearing kinds check their regex's language in parts (std::regex
    # is slow on its alternatives); both must accept exactly the same strings.
    rng = random.Random(kind)
    values = [_address_like(rng) for _ in range(3000)]
    listed = f"(builtins.fromJSON {json.dumps(json.dumps(values))})"
    test = f"core.tokens.{kind}.test"
    regex = f"core.tokens.{kind}.regex"
    verdicts = core_call(f"map (v: {test} v == (builtins.match {regex} v != null)) {listed}")
    assert [v for v, same in zip(values, verdicts, strict=True) if not same] == []
    accepted = core_call(f"builtins.length (builtins.filter {test} {listed})")
    # Both answers occur, so the comparison says something.
    assert 0 < accepted < len(values)
