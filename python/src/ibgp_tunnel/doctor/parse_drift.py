"""Drift, as text: a running config file against the rendered one, BIRD's own clock
against the file's age, and an nftables table as nft prints it against the rendered
table.

Pure functions on strings; checks/drift.py turns their answers into lines.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

# What an excerpt of a difference shows at most (the rest is counted).
EXCERPT_LINES = 3
HIDDEN = '"(hidden)"'

# --- bird.conf ---------------------------------------------------------------------------

_INCLUDE = re.compile(r'^(\s*include\s+)"([^"]*)"(\s*;.*)$')
_PASSWORD = re.compile(r'(\bpassword\s+)"(?:[^"\\]|\\.)*"')


def hide_passwords(text: str) -> str:
    """`password "..."` (a BGP session's MD5 secret) as "(hidden)": saved outputs, and
    the excerpts doctor prints, never hold it."""
    return _PASSWORD.sub(lambda m: m[1] + HIDDEN, text)


def bird_lines(text: str) -> list[str]:
    """The lines compared: without indentation and blank lines (neither changes what
    BIRD runs), and an include's path reduced to its file name (the lab points the
    rendered ROA includes at its own directory; the file a config includes is the
    same file by name)."""
    lines = [line.strip() for line in hide_passwords(text).splitlines()]
    return [
        _INCLUDE.sub(lambda m: f'{m[1]}"{m[2].rsplit("/", 1)[-1]}"{m[3]}', x) for x in lines if x
    ]


@dataclass(frozen=True)
class TextDrift:
    """How a running file differs from the rendered one: `changes` are excerpt lines
    ("- rendered line", "+ running line"), `count` how many lines differ in all."""

    changes: tuple[str, ...]
    count: int

    def excerpt(self) -> str:
        # " | " between lines: BIRD's own lines end in ";".
        shown = " | ".join(self.changes[:EXCERPT_LINES])
        more = self.count - min(self.count, EXCERPT_LINES)
        return shown + (f" | and {more} more" if more else "")


def text_drift(rendered: str, running: str, *, contained: bool) -> TextDrift | None:
    """None when `running` is `rendered` (or, `contained`, holds it as one block: the
    host's own text may come before and after it). Otherwise the differing lines."""
    want, have = bird_lines(rendered), bird_lines(running)
    matcher = difflib.SequenceMatcher(a=want, b=have, autojunk=False)
    opcodes = matcher.get_opcodes()
    if contained:
        # The host's own text before and after ours is no drift: only what changed
        # between the first and the last of our lines counts.
        while opcodes and opcodes[0][0] == "insert":
            opcodes.pop(0)
        while opcodes and opcodes[-1][0] == "insert":
            opcodes.pop()
    changes: list[str] = []
    for tag, a1, a2, b1, b2 in opcodes:
        if tag == "equal":
            continue
        changes += [f"- {line}" for line in want[a1:a2]]
        changes += [f"+ {line}" for line in have[b1:b2]]
    if not changes:
        return None
    return TextDrift(tuple(changes), len(changes))


_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
# `protocol ospf v2 NAME`: the version is no name.
_PROTOCOL = re.compile(
    r"^\s*protocol\s+([A-Za-z0-9_]+)(?:\s+v[23]\b)?(?:\s+([A-Za-z_][A-Za-z0-9_]*))?"
)


@dataclass(frozen=True)
class ConfigProtocols:
    named: frozenset[str]  # protocols the file names
    unnamed_types: frozenset[str]  # types of unnamed ones (BIRD calls them device1, ...)
    # An include outside any block may define protocols the file does not show.
    includes_at_top: bool


def config_protocols(text: str) -> ConfigProtocols:
    """The protocol names a bird.conf defines, read from its text (comments dropped)."""
    names: set[str] = set()
    unnamed: set[str] = set()
    depth = 0
    top_include = False
    for raw in _BLOCK_COMMENT.sub(" ", text).splitlines():
        line = raw.split("#", 1)[0]
        if depth == 0:
            found = _PROTOCOL.match(line)
            if found and found[2] and found[2] != "from":
                names.add(found[2])
            elif found:
                unnamed.add(found[1])
            if re.match(r"^\s*include\b", line):
                top_include = True
        depth = max(0, depth + line.count("{") - line.count("}"))
    return ConfigProtocols(frozenset(names), frozenset(unnamed), top_include)


# --- BIRD's clock --------------------------------------------------------------------------

_STAMP = r"(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?)"
_SERVER = re.compile(r"^Current server time is " + _STAMP, re.MULTILINE)
_RECONFIGURED = re.compile(r"^Last reconfiguration on " + _STAMP, re.MULTILINE)


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace(" ", "T"))


def reconfigured_ago(status: str) -> float | None:
    """Seconds between BIRD's last reconfiguration (its start counts) and the moment
    `show status` ran, both on BIRD's clock (so its time zone does not matter); None
    when the status does not say (another `timeformat`, an old BIRD)."""
    server, reconfigured = _SERVER.search(status), _RECONFIGURED.search(status)
    if server is None or reconfigured is None:
        return None
    try:
        return (_stamp(server[1]) - _stamp(reconfigured[1])).total_seconds()
    except ValueError:
        return None


def file_age(stat_line: str) -> float | None:
    """`MTIME NOW` (collect's `bird_config_mtime`) -> how old the file was then."""
    try:
        mtime, now = (float(x) for x in stat_line.split())
    except ValueError:
        return None
    return max(0.0, now - mtime)


# --- nftables --------------------------------------------------------------------------------

_SET = re.compile(r"\{([^{}]*)\}")
_COUNTER = re.compile(r"\bcounter(?: packets \d+ bytes \d+)?")
_HANDLE = re.compile(r"\s*# handle \d+\s*$")


def _canonical(token: str) -> str:
    # nft prints an address as the kernel holds it: 10.0.0.1/32 as 10.0.0.1,
    # 10.0.0.1/30 as 10.0.0.0/30, IPv6 in its short form.
    if token.startswith('"') or not any(c in token for c in ".:/"):
        return token
    try:
        net = ipaddress.ip_network(token, strict=False)
    except ValueError:
        return token
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


Interval = tuple[int, int, int]  # IP version, first, last address


def _interval(element: str) -> Interval | None:
    """An address, prefix or `first-last` range as its interval; None for anything
    else (a port, a name)."""
    try:
        if "-" in element and not element.startswith('"'):
            first, last = (ipaddress.ip_address(x.strip()) for x in element.split("-", 1))
        else:
            net = ipaddress.ip_network(element, strict=False)
            first, last = net.network_address, net.broadcast_address
    except ValueError:
        return None
    if first.version != last.version or int(last) < int(first):
        return None
    return first.version, int(first), int(last)


def _interval_text(version: int, first: int, last: int) -> str:
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    start, end = make(first), make(last)
    if first == last:
        return str(start)
    nets = list(ipaddress.summarize_address_range(start, end))
    return str(nets[0]) if len(nets) == 1 else f"{start}-{end}"


def _merged(elements: list[str]) -> list[str] | None:
    """Address elements as nft holds them in an interval set: adjacent and
    overlapping ones merged (fd::/64 and fe::/127 become one range)."""
    intervals = [_interval(e) for e in elements]
    if not intervals or any(i is None for i in intervals):
        return None
    merged: list[list[int]] = []
    for version, first, last in sorted(i for i in intervals if i is not None):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1][2] = max(merged[-1][2], last)
        else:
            merged.append([version, first, last])
    return [_interval_text(*m) for m in merged]


def _set_text(match: re.Match[str]) -> str:
    # nft prints a one-element anonymous set as the element, sorts the elements and
    # merges adjacent address intervals.
    elements = [e.strip() for e in match[1].split(",") if e.strip()]
    shown = _merged(elements) or sorted(_canonical(e) for e in elements)
    return shown[0] if len(shown) == 1 else "{ " + ", ".join(shown) + " }"


def nft_rule(line: str) -> str:
    """A rule as text, in one form whether rendered or printed by `nft list`."""
    text = _COUNTER.sub("", _HANDLE.sub("", line))
    text = _SET.sub(_set_text, text)
    tokens = [_canonical(token) for token in text.split()]
    # `meta nfproto ipv4` before an `ip saddr` match is implied by it: nft leaves
    # it out when it prints the rule (ipv6 and `ip6` alike).
    for proto, match in (("ipv4", "ip"), ("ipv6", "ip6")):
        for i in range(len(tokens) - 2):
            if tokens[i : i + 3] == ["meta", "nfproto", proto] and match in tokens[i + 3 :]:
                del tokens[i : i + 3]
                break
    return " ".join(tokens)


@dataclass(frozen=True)
class NftChain:
    header: tuple[str, ...]  # "type ... priority ...;", "policy accept;"
    rules: tuple[str, ...]


def nft_chains(text: str) -> dict[str, NftChain]:
    """The chains of one table (`table FAMILY NAME { chain X { ... } }`), by name."""
    chains: dict[str, NftChain] = {}
    current: str | None = None
    header: list[str] = []
    rules: list[str] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        found = re.fullmatch(r"chain (\S+) \{", line)
        if found:
            current, header, rules = found[1], [], []
            continue
        if line == "}" and current is not None:
            chains[current] = NftChain(tuple(header), tuple(rules))
            current = None
            continue
        if current is None:
            continue
        if line.startswith("type "):
            # "type nat hook postrouting priority srcnat; policy accept;" in one
            # line (as rendered) or two.
            header += [part.strip() + ";" for part in line.split(";") if part.strip()]
        elif line.startswith("policy "):
            header.append(line)
        else:
            rules.append(nft_rule(line))
    return chains


def nft_drift(rendered: str, running: str) -> TextDrift | None:
    """How the running table differs from the rendered one, chain by chain (rules in
    order: in a firewall, order matters)."""
    want, have = nft_chains(rendered), nft_chains(running)
    changes: list[str] = []
    for name in sorted(set(want) | set(have)):
        if name not in have:
            changes.append(f"chain {name} is missing")
            continue
        if name not in want:
            changes.append(f"+ chain {name} (not rendered)")
            continue
        if want[name].header != have[name].header:
            changes.append(
                f"chain {name}: {' '.join(have[name].header)} "
                f"instead of {' '.join(want[name].header)}"
            )
        matcher = difflib.SequenceMatcher(a=want[name].rules, b=have[name].rules, autojunk=False)
        for tag, a1, a2, b1, b2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            changes += [f"chain {name}: - {rule}" for rule in want[name].rules[a1:a2]]
            changes += [f"chain {name}: + {rule}" for rule in have[name].rules[b1:b2]]
    return TextDrift(tuple(changes), len(changes)) if changes else None
