"""Public keys into a plan's text, leaving every other byte of it as it was.

    with_public_keys(text: str, public_keys: Mapping[str, str], where: str)
        -> tuple[str, list[str]]
        The plan's text with ``hosts.<name>.public_key`` set to each given key, and
        the hosts whose value changed. A new key is a line of its own right after
        the host's ``router_id`` (else ``role``, else its ``[hosts.<name>]`` header),
        indented and ended like that line; a changed key is replaced inside its
        quotes. Raises PlanTextError (exit 2; ``where`` names the plan in it) when
        the text is not TOML or no edit gives exactly the wanted plan.

Why by hand: a TOML library re-emits what it parsed, and where it puts a new key
and the blank lines around it is its own choice, which changes between releases
(tomlkit 0.15.3 dropped the insert-after that kept the key beside ``router_id``,
so the key went after the comments of the next table and a blank line moved).
Each edit here is checked by parsing the result: it must be the plan with only
those keys set. A host this cannot place (an inline table, dotted keys) is left
to tomlkit, whose output is checked the same way.
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
    text: str, public_keys: Mapping[str, str], where: str
) -> tuple[str, list[str]]:
    """The text with ``hosts.<name>.public_key`` set per host, and the hosts changed."""
    data = _load(text, where)
    hosts = data.get("hosts", {})
    changed = {h: k for h, k in public_keys.items() if hosts[h].get(KEY) != k}
    if not changed:
        return text, []
    wanted = copy.deepcopy(data)
    for host, public_key in changed.items():
        wanted["hosts"][host][KEY] = public_key
    lines = _lines(text)
    left = {h: k for h, k in changed.items() if not _edit_lines(lines, h, k)}
    edited = _with_tomlkit("".join(lines), left) if left else "".join(lines)
    if _load(edited, where) != wanted:
        # Our own edit misread the text (a header-like line inside a value, say):
        # the library's rendering of the whole plan is still correct TOML.
        edited = _with_tomlkit(text, changed)
    if _load(edited, where) != wanted:
        first = next(iter(changed))
        raise PlanTextError(
            f"could not write {KEY} into {where} without changing anything else: add "
            f'`{KEY} = "{changed[first]}"` to [hosts.{first}] by hand (likewise for '
            f"{', '.join(changed)}), then run `ibgp-tunnel keys` again"
        )
    return edited, list(changed)


def _load(text: str, where: str) -> dict[str, Any]:
    # Floats as their text: the comparison is exact and NaN equals itself.
    try:
        return tomllib.loads(text, parse_float=str)
    except tomllib.TOMLDecodeError as exc:
        raise PlanTextError(f"{where} is not valid TOML: {exc}") from exc


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
    return re.match(rf"""(\s*)(?:{key}|"{key}"|'{key}')(\s*=\s*)""", line)


def _table_body(lines: list[str], host: str) -> range | None:
    """Indices of the lines between ``[hosts.<host>]`` and the next header."""
    start = next((i for i, line in enumerate(lines) if _header(line) == ("hosts", host)), None)
    if start is None:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
        len(lines),
    )
    return range(start + 1, end)


def _edit_lines(lines: list[str], host: str, public_key: str) -> bool:
    """Set the key in ``lines`` in place; False when the host's table is not a header table."""
    body = _table_body(lines, host)
    if body is None:
        return False
    for i in body:
        match = _assigns(lines[i], KEY)
        if match:
            value = re.compile(r"\"[^\"\\\r\n]*\"|'[^'\r\n]*'").match(lines[i], match.end())
            if value is None:
                return False  # escapes or a multi-line string: leave it to tomlkit
            quote = value.group()[0]  # kept: only what is between the quotes changes
            new = quote + _quoted(public_key)[1:-1] + quote
            lines[i] = lines[i][: value.start()] + new + lines[i][value.end() :]
            return True
    anchor = next(
        (i for key in _ANCHORS for i in body if _assigns(lines[i], key)),
        body.start - 1,  # the header line itself
    )
    line = lines[anchor]
    indent = re.match(r"[ \t]*", line).group()  # type: ignore[union-attr]
    new = f"{indent}{KEY} = {_quoted(public_key)}"
    ending = line[len(line.rstrip("\r\n")) :]
    if ending:
        lines.insert(anchor + 1, new + ending)
    else:  # the file's last line, without a newline: it gets one, the new line none
        lines[anchor] = line + _ending_of(lines)
        lines.insert(anchor + 1, new)
    return True


def _ending_of(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def _with_tomlkit(text: str, public_keys: Mapping[str, str]) -> str:
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError:
        return text  # the check that follows reports it
    for host, public_key in public_keys.items():
        doc["hosts"][host][KEY] = public_key  # type: ignore[index]
    return tomlkit.dumps(doc)
