"""Walking a packet through a parsed nftables ruleset: what would the firewall do
with it?

Only what doctor needs: a packet described by its hook, family, interfaces,
protocol and destination port, with conntrack state "new". Matches on things the
packet does not say (addresses, marks...) are "unknown": such a rule is skipped,
but remembered, so a verdict that an unknown rule might have changed is reported
as uncertain instead of as a fact.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ibgp_tunnel.doctor.parse_nft import Chain, Rule, Ruleset

# Verdicts that end a base chain's walk. `masquerade`/`snat` end a nat chain.
_TERMINAL = {"accept", "drop", "reject", "masquerade", "snat", "dnat", "redirect"}
_IGNORED = {"counter", "log", "limit", "meta", "mangle", "notrack", "ct", "set", "quota"}
_MAX_DEPTH = 16


@dataclass(frozen=True)
class _Address:
    """An address field's value, compared by prefix membership."""

    text: str


@dataclass(frozen=True)
class Packet:
    hook: str  # prerouting, input, forward, postrouting, output
    nfproto: str = "ipv4"  # ipv4 or ipv6
    l4proto: str | None = None  # udp, tcp
    dport: int | None = None
    iifname: str | None = None
    oifname: str | None = None
    ct_state: str = "new"
    # Whether the reverse-path lookup (nft `fib saddr ... oif`) succeeds.
    fib_ok: bool = True
    saddr: str | None = None  # unknown unless given
    daddr: str | None = None


@dataclass
class Verdict:
    action: str  # accept, drop, masquerade, ... ("accept" when nothing said otherwise)
    chain: str = ""  # "inet nixos-fw forward"
    rule: str = ""  # the deciding rule's text, or "policy drop"
    # Rules that might have decided otherwise, had the packet been more specific.
    uncertain: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.chain}: {self.rule}" if self.rule else self.chain


def _families(nfproto: str) -> set[str]:
    return {"inet", "ip" if nfproto == "ipv4" else "ip6"}


def _set_elements(ruleset: Ruleset, rule: Rule, right: Any) -> list[Any] | None:
    if isinstance(right, str) and right.startswith("@"):
        return ruleset.sets.get((rule.family, rule.table, right[1:]))
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    return None


def _address_equal(value: str, candidate: Any) -> bool | None:
    try:
        address = ipaddress.ip_address(value)
        if isinstance(candidate, dict) and "prefix" in candidate:
            prefix = candidate["prefix"]
            return address in ipaddress.ip_network(
                f"{prefix['addr']}/{prefix['len']}", strict=False
            )
        if isinstance(candidate, dict) and "range" in candidate:
            low, high = (ipaddress.ip_address(str(v)) for v in candidate["range"])
            return bool(low <= address <= high)  # type: ignore[operator]
        if isinstance(candidate, str):
            return address in ipaddress.ip_network(candidate, strict=False)
    except (ValueError, TypeError):
        return None
    return None


def _equal(value: Any, candidate: Any) -> bool | None:
    if isinstance(value, _Address):
        return _address_equal(value.text, candidate)
    if isinstance(candidate, dict):
        if "range" in candidate and isinstance(value, int):
            low, high = candidate["range"]
            return bool(low <= value <= high)
        return None
    if isinstance(value, str) and isinstance(candidate, str):
        if candidate.endswith("*") and not candidate.endswith("\\*"):
            return value.startswith(candidate[:-1])
        return value == candidate
    return bool(value == candidate)


def _match_value(value: Any, right: Any, elements: list[Any] | None) -> bool | None:
    candidates = elements if elements is not None else [right]
    results = [_equal(value, c) for c in candidates]
    if any(r is True for r in results):
        return True
    if any(r is None for r in results):
        return None
    return False


def _field(packet: Packet, left: Any) -> tuple[bool, Any]:
    """(known, value) of what the match's left side reads from the packet. An unknown
    field yields (False, None); a protocol the packet does not have yields (True, None)."""
    if not isinstance(left, dict):
        return False, None
    if "meta" in left:
        key = left["meta"].get("key")
        if key == "iifname":
            return packet.iifname is not None, packet.iifname
        if key == "oifname":
            return packet.oifname is not None, packet.oifname
        if key == "nfproto":
            return True, packet.nfproto
        if key == "l4proto":
            return packet.l4proto is not None, packet.l4proto
        return False, None
    if "payload" in left:
        payload = left["payload"]
        protocol, name = payload.get("protocol"), payload.get("field")
        if protocol in ("udp", "tcp", "th"):
            if protocol != "th" and packet.l4proto is not None and protocol != packet.l4proto:
                return True, None  # a UDP match never matches a TCP packet
            if name == "dport" and packet.dport is not None:
                return True, packet.dport
            return False, None
        if protocol in ("icmp", "icmpv6"):
            return (True, None) if packet.l4proto in ("udp", "tcp") else (False, None)
        if protocol in ("ip", "ip6"):
            if (protocol == "ip") != (packet.nfproto == "ipv4"):
                return True, None  # an IPv4 header match never matches IPv6, and back
            address = {"saddr": packet.saddr, "daddr": packet.daddr}.get(str(name))
            return (True, _Address(address)) if address else (False, None)
        return False, None
    if "ct" in left:
        key = left["ct"].get("key")
        if key == "state":
            return True, packet.ct_state
        if key == "status":
            return True, "none"
        return False, None
    if "fib" in left:
        return True, packet.fib_ok
    return False, None


def _match_concat(packet: Packet, left: dict[str, Any], candidates: list[Any]) -> bool | None:
    """`a . b` against concatenations (a set's elements): a candidate whose known
    parts differ from the packet's cannot match."""
    parts = [_field(packet, part) for part in left["concat"]]
    if any(known and value is None for known, value in parts):
        return False
    possible = False
    for candidate in candidates:
        values = candidate.get("concat", []) if isinstance(candidate, dict) else []
        if len(values) != len(parts):
            return None
        if all(not known or value == v for (known, value), v in zip(parts, values, strict=True)):
            if all(known for known, _ in parts):
                return True
            possible = True
    return None if possible else False


def _match(ruleset: Ruleset, rule: Rule, packet: Packet, body: dict[str, Any]) -> bool | None:
    left = body.get("left")
    if isinstance(left, dict) and "concat" in left and body.get("op", "==") in ("==", "in"):
        right = body.get("right")
        elements = _set_elements(ruleset, rule, right)
        return _match_concat(packet, left, elements if elements is not None else [right])
    known, value = _field(packet, left)
    if not known:
        return None
    op = body.get("op", "==")
    right = body.get("right")
    if value is None:
        # The packet lacks the header (a tcp match on a UDP packet): the match's
        # implied protocol check fails, whatever the operator.
        return False
    if isinstance(value, bool):
        matched: bool | None = value == bool(right)
    elif op == "in" and isinstance(right, str) and right in ("dnat", "snat"):
        matched = value == right
    else:
        if isinstance(right, list):  # ct state { established, related }
            right = {"set": right}
        matched = _match_value(value, right, _set_elements(ruleset, rule, right))
    if matched is None:
        return None
    return (not matched) if op == "!=" else matched


@dataclass
class _Walk:
    ruleset: Ruleset
    packet: Packet
    uncertain: list[str] = field(default_factory=list)


def _verdict_of(statement: dict[str, Any]) -> tuple[str, str | None] | None:
    """(kind, jump target) of a verdict statement, or None."""
    for kind in ("jump", "goto"):
        if kind in statement:
            return kind, str(statement[kind]["target"])
    for kind in _TERMINAL | {"return", "continue"}:
        if kind in statement:
            return kind, None
    return None


def _vmap(walk: _Walk, rule: Rule, body: dict[str, Any]) -> tuple[str, str | None] | None:
    known, value = _field(walk.packet, body.get("key"))
    if not known:
        walk.uncertain.append(f"{rule.table} {rule.chain}: {rule.text()}")
        return None
    data = body.get("data", {})
    entries = data.get("set", []) if isinstance(data, dict) else []
    for key, verdict in entries:
        keys = key.get("set", [key]) if isinstance(key, dict) else [key]
        if value in keys:
            return _verdict_of(verdict)
    return None


def _run_chain(walk: _Walk, chain: Chain, depth: int) -> tuple[str, Rule | None] | None:
    """The terminal verdict reached in `chain` (and what it jumps to), or None when
    the chain ran out (or returned) without one."""
    if depth > _MAX_DEPTH:
        return None
    key = (chain.family, chain.table, chain.name)
    for rule in walk.ruleset.rules.get(key, []):
        decision: tuple[str, str | None] | None = None
        skipped = False
        for statement in rule.expr:
            if not isinstance(statement, dict) or not statement:
                continue
            kind = next(iter(statement))
            if kind == "match":
                matched = _match(walk.ruleset, rule, walk.packet, statement["match"])
                if matched is False:
                    skipped = True
                    break
                if matched is None:
                    # Would this rule decide anything? Only then it matters.
                    if any(_verdict_of(s) for s in rule.expr if isinstance(s, dict)):
                        walk.uncertain.append(f"{rule.table} {rule.chain}: {rule.text()}")
                    skipped = True
                    break
            elif kind == "vmap":
                decision = _vmap(walk, rule, statement["vmap"])
                if decision is None:
                    skipped = True
                break
            elif kind in _IGNORED:
                continue
            else:
                decision = _verdict_of(statement)
                if decision is not None:
                    break
        if skipped or decision is None:
            continue
        kind, target = decision
        if kind in ("jump", "goto") and target is not None:
            called = walk.ruleset.chains.get((chain.family, chain.table, target))
            if called is None:
                continue
            result = _run_chain(walk, called, depth + 1)
            if result is not None:
                return result if result[1] is not None else (result[0], rule)
            if kind == "goto":
                return None
            continue
        if kind == "return":
            return None
        if kind == "continue":
            continue
        return kind, rule
    return None


def evaluate(ruleset: Ruleset, packet: Packet) -> Verdict:
    """What the ruleset does with `packet` at its hook: the first drop in any base
    chain, else the last accepting or NAT verdict."""
    walk = _Walk(ruleset, packet)
    outcome = Verdict("accept", "", "no rule or policy stops it")
    for chain in ruleset.base_chains(packet.hook):
        if chain.family not in _families(packet.nfproto):
            continue
        name = f"{chain.family} {chain.table} {chain.name}"
        result = _run_chain(walk, chain, 0)
        if result is None:
            action, text = chain.policy, f"policy {chain.policy}"
        else:
            action, rule = result
            text = rule.text() if rule is not None else action
        if action in ("drop", "reject"):
            return Verdict("drop", name, text, walk.uncertain)
        if action in ("masquerade", "snat"):
            outcome = Verdict(action, name, text)
    outcome.uncertain = walk.uncertain
    return outcome


def walk_hooks(ruleset: Ruleset, packet: Packet, hooks: Iterable[str]) -> Verdict:
    """`packet` through several hooks in turn (e.g. prerouting, then input): the first
    that drops it decides; else the last hook's verdict."""
    verdict = Verdict("accept")
    uncertain: list[str] = []
    for hook in hooks:
        verdict = evaluate(ruleset, Packet(**{**packet.__dict__, "hook": hook}))
        uncertain += verdict.uncertain
        if verdict.action == "drop":
            break
    verdict.uncertain = uncertain
    return verdict
