"""The web service's first look at a request, before it issues a challenge: every
field against the core's own grammar for it (the token regexes and ranges the
field table exports in fields.json), so a stranger is told at once which field
is wrong. The privileged apply unit checks everything again through the core;
this check only refuses early, it never lets through what the core would not."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from ibgp_tunnel import fieldtable
from ibgp_tunnel.autopeer.errors import AutopeerRefused

# A request's keys -> the field-table entry (scope, key) whose grammar they take.
REQUEST_FIELDS: dict[str, tuple[str, str]] = {
    "asn": ("dn42Peer", "asn"),
    "public_key": ("dn42Tunnel", "public_key"),
    "endpoint": ("dn42Tunnel", "endpoint"),
    "neighbor": ("dn42Peer", "neighbor"),
    "peer_ipv4": ("dn42Tunnel", "peer_ipv4"),
    "mtu": ("dn42Tunnel", "mtu"),
}
REQUIRED = ("asn", "public_key", "neighbor")
# No value of these fields is longer (an endpoint: a 253-character name and a port).
MAX_TEXT = 300
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


@cache
def _pattern(regex: str) -> re.Pattern[str]:
    # The core's grammars are POSIX EREs: `[[]` and `[]]` are Python's `\[` and `\]`.
    return re.compile(regex.replace("[[]", r"\[").replace("[]]", r"\]"))


@cache
def _entry(scope: str, key: str) -> dict[str, Any]:
    for field in fieldtable.of(scope):
        if field["key"] == key:
            return field
    raise KeyError(f"fields.json has no {scope}.{key}; regenerate it")


def shown_name(key: str) -> str:
    """An unknown key as an error may name it: itself when it looks like a field
    name, else a placeholder (the stranger's text is not echoed)."""
    return key if _NAME.fullmatch(key) else "(unknown field)"


def check_request(request: object, asn: int) -> dict[str, Any]:
    """The request as a dict of checked values (nulls dropped), or AutopeerRefused
    naming the first wrong field as `request.<key>`."""
    if not isinstance(request, dict):
        raise AutopeerRefused("request: give an object with the peering's fields", "request")
    unknown = sorted(shown_name(key) for key in request if key not in REQUEST_FIELDS)
    if unknown:
        raise AutopeerRefused(
            f"request.{unknown[0]}: not a field of a peering request; the fields are "
            + ", ".join(REQUEST_FIELDS),
            f"request.{unknown[0]}",
        )
    for key in REQUIRED:
        if request.get(key) is None:
            raise AutopeerRefused(f"request.{key}: required", f"request.{key}")
    checked = {key: _value(key, value) for key, value in request.items() if value is not None}
    if checked["asn"] != asn:
        raise AutopeerRefused(
            "request.asn: must be the ASN the challenge is asked for", "request.asn"
        )
    return checked


def _value(key: str, value: object) -> int | str:
    entry = _entry(*REQUEST_FIELDS[key])
    name = f"request.{key}"
    if entry["type"] == "int":
        # bool is an int to Python, never to a request.
        if not isinstance(value, int) or isinstance(value, bool):
            raise AutopeerRefused(f"{name}: give a whole number", name)
        low, high = fieldtable.bounds(entry)
        if not low <= value <= high:
            raise AutopeerRefused(f"{name}: must be between {low} and {high}", name)
        return value
    if not isinstance(value, str):
        raise AutopeerRefused(f"{name}: give a string", name)
    if len(value) > MAX_TEXT or _pattern(entry["regex"]).fullmatch(value) is None:
        raise AutopeerRefused(f"{name}: give {entry['expect']}", name)
    return value
