"""Every lost ping accounted for, from `ping -n -D -O` output (issue #23).

The benches used to take the longest gap between reply timestamps: pings lost
before the first reply or after the last one fell outside it, and a sample read
"102 lost, longest gap 0.02 s". Here each ping is known by its ICMP sequence
number: every number from 1 to the count `ping` says it transmitted is either
answered or lost, each run of lost numbers is one gap, and the gaps' lengths add
up to the pings lost, always (`Account.check` raises otherwise).

A gap's duration is the time between the replies on either side of it; a gap at
the start or the end of the window has a reply on one side only, so it is
`open`: a window must end after the network settled, and a bench treats an open
gap at the end as its own mistake (the window was too short), not as a number.
The last one or two pings, sent just before ping was stopped, are in flight,
not lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from \S+ icmp_seq=(\d+) ", re.M)
_NO_ANSWER = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)\s*$", re.M)
_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")
# At most this many pings at the very end without a reply are taken as in flight
# when ping was stopped (one RTT at 10 ms intervals in the lab is far less).
IN_FLIGHT = 2
# icmp_seq is 16 bits: it wraps after 65535 (11 minutes at 10 ms).
_SEQ_SPAN = 1 << 16


class PingAccountError(Exception):
    """The ping output cannot be accounted for (no summary, or counts that disagree)."""


@dataclass(frozen=True)
class Gap:
    first: int  # first lost sequence number (unwrapped, 1-based)
    last: int  # last lost sequence number
    seconds: float  # between the replies around it; for an open gap, an estimate
    open_start: bool  # no reply before it: the window began inside an outage
    open_end: bool  # no reply after it: the window ended inside an outage
    started_at: float | None  # wall clock of the reply before it, when there is one

    @property
    def lost(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Account:
    transmitted: int
    received: int
    gaps: list[Gap] = field(default_factory=list)
    # Sent just before ping was stopped, their replies not back yet: not lost.
    in_flight: int = 0

    @property
    def lost(self) -> int:
        return self.transmitted - self.received - self.in_flight

    @property
    def longest_gap_s(self) -> float:
        return max((g.seconds for g in self.gaps), default=0.0)

    @property
    def open_end(self) -> bool:
        return any(g.open_end for g in self.gaps)

    def check(self) -> None:
        """Raise unless every lost ping sits in exactly one gap."""
        in_gaps = sum(g.lost for g in self.gaps)
        if in_gaps != self.lost:
            raise PingAccountError(
                f"{self.lost} pings lost but {in_gaps} in gaps: the output is incomplete"
            )


def _unwrap(seqs: list[tuple[float, int]]) -> dict[int, float]:
    """Sequence numbers in output order, wrapped at 16 bits, made monotonic."""
    out: dict[int, float] = {}
    base, previous = 0, 0
    for stamp, seq in seqs:
        if seq + base < previous - _SEQ_SPAN // 2:
            base += _SEQ_SPAN
        previous = seq + base
        out.setdefault(previous, stamp)
    return out


def account(output: str, interval: float) -> Account:
    """Account for every ping `ping -n -D [-O] -i INTERVAL` printed (its summary included)."""
    summary = _SUMMARY.search(output)
    if summary is None:
        raise PingAccountError(f"ping printed no summary: {output.strip()[-300:]!r}")
    transmitted, received = int(summary[1]), int(summary[2])
    replies = _unwrap([(float(m[1]), int(m[2])) for m in _REPLY.finditer(output)])
    # ping counts a duplicate once; a reply may also arrive for a number past the
    # count when ping stops between send and summary: clamp to what it counted.
    answered = sorted(s for s in replies if 1 <= s <= transmitted)
    if len(answered) != received:
        raise PingAccountError(
            f"ping says {received} received but printed {len(answered)} distinct replies"
        )
    first_seq = 1 if transmitted else 0
    gaps: list[Gap] = []
    previous: int | None = None
    for seq in [*answered, transmitted + 1]:
        start = first_seq if previous is None else previous + 1
        if seq > start:
            before = replies.get(previous) if previous is not None else None
            after = replies.get(seq) if seq <= transmitted else None
            lost = seq - start
            if before is not None and after is not None:
                seconds = after - before
            else:
                seconds = (lost + 1) * interval
            gaps.append(Gap(start, seq - 1, seconds, before is None, after is None, before))
        previous = seq
    in_flight = 0
    if gaps and gaps[-1].open_end and not gaps[-1].open_start and gaps[-1].lost <= IN_FLIGHT:
        in_flight = gaps.pop().lost
    result = Account(transmitted, received, gaps, in_flight)
    result.check()
    return result
