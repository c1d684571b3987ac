"""`nft -j list ruleset`: tables, chains, rules and named sets, plus a readable
text for a rule (the evidence doctor quotes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ibgp_tunnel.errors import InputError

ChainKey = tuple[str, str, str]  # family, table, chain


@dataclass(frozen=True)
class Chain:
    family: str
    table: str
    name: str
    hook: str | None = None
    type: str | None = None
    prio: int = 0
    policy: str = "accept"


@dataclass(frozen=True)
class Rule:
    family: str
    table: str
    chain: str
    expr: tuple[Any, ...]

    def text(self) -> str:
        return rule_text(self.expr)


@dataclass
class Ruleset:
    tables: set[tuple[str, str]] = field(default_factory=set)
    chains: dict[ChainKey, Chain] = field(default_factory=dict)
    rules: dict[ChainKey, list[Rule]] = field(default_factory=dict)
    # (family, table, set name) -> elements
    sets: dict[ChainKey, list[Any]] = field(default_factory=dict)

    def base_chains(self, hook: str) -> list[Chain]:
        """The chains attached to `hook`, in the order the kernel runs them."""
        found = [c for c in self.chains.values() if c.hook == hook]
        return sorted(found, key=lambda c: c.prio)


def _prio(value: Any) -> int:
    # nft -j prints standard priorities as numbers; some versions print names.
    names = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50}
    names["srcnat"] = 100
    if isinstance(value, int):
        return value
    return names.get(str(value), 0)


def parse_ruleset(text: str) -> Ruleset:
    try:
        data = json.loads(text) if text.strip() else {"nftables": []}
    except ValueError as error:
        raise InputError(f"nft -j printed something that is not JSON: {error}") from None
    ruleset = Ruleset()
    for item in data.get("nftables", []):
        if "table" in item:
            ruleset.tables.add((item["table"]["family"], item["table"]["name"]))
        elif "chain" in item:
            c = item["chain"]
            chain = Chain(
                c["family"],
                c["table"],
                c["name"],
                c.get("hook"),
                c.get("type"),
                _prio(c.get("prio", 0)),
                str(c.get("policy", "accept")),
            )
            ruleset.chains[(chain.family, chain.table, chain.name)] = chain
        elif "rule" in item:
            r = item["rule"]
            rule = Rule(r["family"], r["table"], r["chain"], tuple(r.get("expr", [])))
            ruleset.rules.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
        elif "set" in item:
            s = item["set"]
            elements = s.get("elem", [])
            ruleset.sets[(s["family"], s["table"], s["name"])] = [
                e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e for e in elements
            ]
    return ruleset


# --- readable text ---------------------------------------------------------------


def value_text(value: Any) -> str:
    if isinstance(value, dict):
        if "set" in value:
            return "{ " + ", ".join(value_text(v) for v in value["set"]) + " }"
        if "prefix" in value:
            return f"{value['prefix']['addr']}/{value['prefix']['len']}"
        if "range" in value:
            low, high = value["range"]
            return f"{value_text(low)}-{value_text(high)}"
        if "concat" in value:
            return " . ".join(value_text(v) for v in value["concat"])
        if "meta" in value:
            return str(value["meta"]["key"])
        if "payload" in value:
            return f"{value['payload'].get('protocol', '')} {value['payload'].get('field', '')}"
        if "ct" in value:
            return f"ct {value['ct']['key']}"
        if "fib" in value:
            flags = " . ".join(value["fib"].get("flags", []))
            return f"fib {flags} {value['fib'].get('result', '')}"
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return "{ " + ", ".join(value_text(v) for v in value) + " }"
    if isinstance(value, str) and not value.startswith("@") and value.replace("-", "").isalnum():
        return value
    return json.dumps(value) if isinstance(value, str) else str(value)


def _quoted(left: Any, right: Any) -> str:
    # Interface names are quoted as nft prints them.
    if isinstance(left, dict) and left.get("meta", {}).get("key") in ("iifname", "oifname"):
        if isinstance(right, str) and not right.startswith("@"):
            return f'"{right}"'
        if isinstance(right, dict) and "set" in right:
            return "{ " + ", ".join(f'"{v}"' for v in right["set"]) + " }"
    return value_text(right)


def statement_text(statement: Any) -> str:
    if not isinstance(statement, dict) or not statement:
        return str(statement)
    kind, body = next(iter(statement.items()))
    if kind == "match":
        op = body.get("op", "==")
        left = body.get("left")
        shown_op = "" if op in ("==", "in") else f"{op} "
        return f"{value_text(left)} {shown_op}{_quoted(left, body.get('right'))}"
    if kind in ("jump", "goto"):
        return f"{kind} {body['target']}"
    if kind == "vmap":
        return f"{value_text(body['key'])} vmap {{ ... }}"
    return str(kind)


def rule_text(expr: tuple[Any, ...] | list[Any]) -> str:
    return " ".join(statement_text(s) for s in expr if not (isinstance(s, dict) and "counter" in s))
