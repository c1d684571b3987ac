"""A finding: one problem in a plan, where it is, and how bad it is."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the plan cannot be deployed as written
    WARNING = "warning"  # deployable, but probably not what was meant


@dataclass(frozen=True, order=True)
class Finding:
    path: str  # TOML path, e.g. links.pve.client_ipv4 or prefix_sets.dn42.ipv4[0]
    message: str  # what is wrong and how to fix it
    severity: Severity = Severity.ERROR

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    def line(self) -> str:
        where = self.path or "(plan)"
        return f"{self.severity}: {where}: {_printable(self.message)}"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_path(parts: Iterable[str | int]) -> str:
    """Join keys and list indexes as TOML writes them: hosts."my host".ipv4[0]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else _quote(part)
        out += f".{key}" if out else key
    return out


def _quote(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{_printable(escaped)}"'


def _printable(text: str) -> str:
    # Values quoted from the plan may hold newlines or control characters, which
    # would break the one-line-per-finding output.
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def errors(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]
