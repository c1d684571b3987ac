"""`ping -q`'s summary: how many probes went out and how many came back.

iputils prints `4 packets transmitted, 0 received, 100% packet loss`, busybox
`4 packets transmitted, 0 packets received, 100% packet loss`. Without that line
ping never sent (no such interface, no permission): the probe did not happen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUMMARY = re.compile(r"^(\d{1,9}) packets transmitted, (\d{1,9}) (?:packets )?received", re.M)


@dataclass(frozen=True)
class PingResult:
    transmitted: int
    received: int


def parse_ping(text: str) -> PingResult | None:
    """The counts, or None when ping printed no summary."""
    found = _SUMMARY.search(text)
    if found is None:
        return None
    return PingResult(int(found[1]), int(found[2]))
