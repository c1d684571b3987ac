"""Doctor's output: one line per check, a summary, or JSON for tools.

Both quote what hosts and recordings hold, so every string passes `clean`
(sanitize.py) on its way out: no terminal escape reaches the reader, nor a
program that prints the JSON's values."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.sanitize import clean


def first_failure(checks: Sequence[Check]) -> Check | None:
    return next((c for c in checks if c.status is Status.FAIL), None)


def summary_line(host: str, where: str, checks: Sequence[Check]) -> str:
    counts = {status: sum(1 for c in checks if c.status is status) for status in Status}
    parts = [f"{counts[s]} {s.value}" for s in Status if counts[s]]
    first = first_failure(checks)
    verdict = f"start with: {first.id}" if first else "all is well"
    return f"{host} ({where}): {', '.join(parts)}; {verdict}"


def as_text(host: str, where: str, checks: Sequence[Check]) -> str:
    lines = [*(c.line() for c in checks), summary_line(host, where, checks)]
    return "\n".join(clean(line) for line in lines) + "\n"


def _cleaned(check: Check) -> dict[str, str]:
    return {key: clean(value) for key, value in check.as_dict().items()}


def as_json(host: str, plan: str, where: str, checks: Sequence[Check]) -> str:
    first = first_failure(checks)
    data = {
        "host": clean(host),
        "plan": clean(plan),
        "target": clean(where),
        "ok": first is None,
        "first_failure": _cleaned(first) if first else None,
        "checks": [_cleaned(c) for c in checks],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
