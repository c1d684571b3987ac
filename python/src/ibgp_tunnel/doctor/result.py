"""One line of doctor's report: a check's status, what it saw, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    # Not checked, because something it needs failed first (e.g. BIRD is not running).
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    id: str  # stable name, e.g. "firewall.port wg-ibgp udp/51821"
    status: Status
    summary: str  # what is right or wrong, in plain words
    evidence: str = ""  # what doctor saw, quoted from the tools
    fix: str = ""  # what to run or change

    def line(self) -> str:
        text = f"{self.status.value:<4}  {self.id}: {self.summary}"
        if self.evidence:
            text += f" (seen: {self.evidence})"
        if self.fix:
            text += f" Fix: {self.fix}"
        return text

    def as_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": self.evidence,
            "fix": self.fix,
        }


def ok(check_id: str, summary: str, evidence: str = "") -> Check:
    return Check(check_id, Status.OK, summary, evidence)


def fail(check_id: str, summary: str, evidence: str, fix: str) -> Check:
    return Check(check_id, Status.FAIL, summary, evidence, fix)


def warn(check_id: str, summary: str, evidence: str, fix: str) -> Check:
    return Check(check_id, Status.WARN, summary, evidence, fix)


def skip(check_id: str, reason: str) -> Check:
    return Check(check_id, Status.SKIP, reason)
