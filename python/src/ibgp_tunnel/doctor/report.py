"""Doctor's output: one line per check, a summary, or JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ibgp_tunnel.doctor.result import Check, Status


def first_failure(checks: Sequence[Check]) -> Check | None:
    return next((c for c in checks if c.status is Status.FAIL), None)


def summary_line(host: str, where: str, checks: Sequence[Check]) -> str:
    counts = {status: sum(1 for c in checks if c.status is status) for status in Status}
    parts = [f"{counts[s]} {s.value}" for s in Status if counts[s]]
    first = first_failure(checks)
    verdict = f"start with: {first.id}" if first else "all is well"
    return f"{host} ({where}): {', '.join(parts)}; {verdict}"


def as_text(host: str, where: str, checks: Sequence[Check]) -> str:
    return "\n".join([*(c.line() for c in checks), summary_line(host, where, checks)]) + "\n"


def as_json(host: str, plan: str, where: str, checks: Sequence[Check]) -> str:
    first = first_failure(checks)
    data = {
        "host": host,
        "plan": plan,
        "target": where,
        "ok": first is None,
        "first_failure": first.as_dict() if first else None,
        "checks": [c.as_dict() for c in checks],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
