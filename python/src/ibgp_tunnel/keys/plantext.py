"""Public keys into a plan's text, leaving every other byte of it as it was.

    with_public_keys(text: str, public_keys: Mapping[str, str], where: str)
        -> tuple[str, list[str]]
        The plan's text with ``hosts.<name>.public_key`` set to each given key, and
        the hosts whose value changed. A new key is a line of its own right after
        the host's ``router_id`` (else ``role``, else its ``[hosts.<name>]`` header),
        indented and ended like that line (a one-line inline table in ``[hosts]``
        gets it before its closing brace); a changed key is replaced inside its
        quotes. With ``key = "dn42_public_key"`` the same for our DN42 key, whose
        new line goes right after the host's ``public_key``. Raises PlanTextError
        (exit 2; ``where`` names the plan in it) when the text is not TOML or no
        edit gives exactly the wanted plan.

Why by hand: a TOML library re-emits what it parsed, and where it puts a new key
and the blank lines around it is its own choice, which changes between releases
(tomlkit 0.15.3 dropped the insert-after that kept the key beside ``router_id``,
so the key went after the comments of the next table and a blank line moved).
Each edit here is checked by parsing the result: it must be the plan with only
those keys set. A host this cannot place (dotted keys, a key already in an inline
table) is left to tomlkit, whose output is checked the same way.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from ibgp_tunnel.errors import InputError

KEY = "public_key"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+=*")
_ANCHORS = ("router_id", "role")  # a new key goes right after the first found


class PlanTextError(InputError):
    """The plan's text cannot take the public keys (exit 2)."""


def with_public_keys(
    text: str, public_keys: Mapping[str, str], where: str, key: str = KEY
) -> tuple[str, list[str]]:
    """The text with ``hosts.<name>.<key>`` set per host, and the hosts changed.

    ``key`` is ``public_key`` (iBGP) or ``dn42_public_key``, which goes right
    after the host's ``public_key`` line."""
    data = _loads(text)
    if data is None:
        raise PlanTextError(f"{where} is not valid TOML: {_decode_error(text)}")
    hosts = data.get("hosts", {})
    changed = {h: k for h, k in public_keys.items() if hosts[h].get(key) != k}
    if not changed:
        return text, []
    wanted = copy.deepcopy(data)
    for host, public_key in changed.items():
        wanted["hosts"][host][key] = public_key
    lines = _lines(text)
    left = {h: k for h, k in changed.items() if not _edit_lines(lines, h, k, key)}
    edited = _with_tomlkit("".join(lines), left, key) if left else "".join(lines)
    if _loads(edited) != wanted:
        # Our own edit misread the text (a header-like line inside a value, say):
        # the library's rendering of the whole plan may still be right.
        edited = _with_tomlkit(text, changed, key)
    if _loads(edited) != wanted:
        by_hand = "\n".join(f'  [hosts.{h}] {key} = "{k}"' for h, k in changed.items())
        raise PlanTextError(
            f"add these public keys to {where} by hand, then run `ibgp-tunnel keys` again "
            f"(the way its host tables are written defeated the edit that changes nothing "
            f"else; the secrets were not written either):\n{by_hand}"
        )
    return edited, list(changed)


def _loads(text: str) -> dict[str, Any] | None:
    # Floats as their text: the comparison is exact and NaN equals itself.
    try:
        return tomllib.loads(text, parse_float=str)
    except tomllib.TOMLDecodeError:
        return None


def _decode_error(text: str) -> str:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return str(exc)
    return "unreadable"


def _quoted(public_key: str) -> str:
    # Keys come from public_key_of; anything else would need TOML escaping.
    if not _BASE64.fullmatch(public_key):
        raise ValueError(f"not a base64 WireGuard key: {public_key!r}")
    return f'"{public_key}"'


def _lines(text: str) -> list[str]:
    # Each line with its own ending ("\n" or "\r\n"); not str.splitlines, which
    # also splits at characters TOML allows inside strings and comments.
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _header(line: str) -> tuple[str, ...] | None:
    """The table a ``[a."b".c]`` line opens, or None for any other line."""
    if not line.lstrip().startswith("[") or line.lstrip().startswith("[["):
        return None
    try:
        node: Any = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        name, node = next(iter(node.items()))
        path.append(name)
    return tuple(path) if node == {} else None


def _assigns(line: str, key: str) -> re.Match[str] | None:
    """``key = value`` (bare or quoted key) at the start of the line."""
    name = re.escape(key)
    return re.match(rf"""\s*(?:{name}|"{name}"|'{name}')\s*=\s*""", line)


def _table_body(lines: list[str], table: tuple[str, ...]) -> range | None:
    """Indices of the lines between the table's ``[...]`` header and the next header."""
    start = next((i for i, line in enumerate(lines) if _header(line) == table), None)
    if start is None:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    return range(start + 1, end)


def _edit_lines(lines: list[str], host: str, public_key: str, key: str) -> bool:
    """Set the key in ``lines`` in place; False where the host is not written in a way
    handled here (a ``[hosts.<host>]`` table or a one-line inline table in ``[hosts]``)."""
    body = _table_body(lines, ("hosts", host))
    if body is None:
        return _edit_inline(lines, host, public_key, key)
    for i in body:
        match = _assigns(lines[i], key)
        if match:
            value = re.compile(r"\"[^\"\\\r\n]*\"|'[^'\r\n]*'").match(lines[i], match.end())
            if value is None:
                return False  # escapes or a multi-line string: leave it to tomlkit
            quote = value.group()[0]  # kept: only what is between the quotes changes
            new = quote + _quoted(public_key)[1:-1] + quote
            lines[i] = lines[i][: value.start()] + new + lines[i][value.end() :]
            return True
    anchor = next(
        (i for anchor in _anchors(key) for i in body if _assigns(lines[i], anchor)),
        body.start - 1,  # the header line itself
    )
    line = lines[anchor]
    indent = re.match(r"[ \t]*", line).group()  # type: ignore[union-attr]
    new = f"{indent}{key} = {_quoted(public_key)}"
    ending = line[len(line.rstrip("\r\n")) :]
    if ending:
        lines.insert(anchor + 1, new + ending)
    else:  # the file's last line, without a newline: it gets one, the new line none
        lines[anchor] = line + _ending_of(lines)
        lines.insert(anchor + 1, new)
    return True


def _edit_inline(lines: list[str], host: str, public_key: str, key: str) -> bool:
    """``<host> = { ... }`` in ``[hosts]`` gets ``, <key> = "..."`` before its brace."""
    body = _table_body(lines, ("hosts",)) or range(0)
    line_no = next((i for i in body if _assigns(lines[i], host)), None)
    if line_no is None:
        return False
    line = lines[line_no]
    value = _assigns(line, host).end()  # type: ignore[union-attr]
    if not line.startswith("{", value):
        return False
    # Its closing brace: the first "}" up to which the value parses (not one in a
    # string or a comment, not a nested table's).
    close = next(
        (
            c
            for c in range(value, len(line))
            if line[c] == "}" and _loads(f"x = {line[value : c + 1]}")
        ),
        None,
    )
    if close is None:
        return False
    inside = line[value + 1 : close]
    before = line[:close].rstrip()
    separator = ", " if inside.strip() else " "
    pair = f"{key} = {_quoted(public_key)}"
    lines[line_no] = before + separator + pair + line[len(before) : close] + line[close:]
    return True


def _anchors(key: str) -> tuple[str, ...]:
    # The DN42 key sits beside the iBGP one, which keys writes first.
    return _ANCHORS if key == KEY else (KEY, *_ANCHORS)


def _ending_of(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def _with_tomlkit(text: str, public_keys: Mapping[str, str], key: str) -> str:
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError:
        return text  # the check that follows reports it
    for host, public_key in public_keys.items():
        doc["hosts"][host][key] = public_key  # type: ignore[index]
    return tomlkit.dumps(doc)
