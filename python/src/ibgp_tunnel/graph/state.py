"""Doctor's results as the picture's colours: each link, session and host gets
the worst status among the checks that name it.

A check names a link end when a word of its id is the end's tunnel interface
or the link's UDP port (`firewall.port udp/51821 eth0`), a session when a word
is its BIRD protocol (`bgp.session ibgp_dmz`, `bfd.session ibgp_dmz`). Matching
words of the id, not a list of check names, keeps checks added later (tunnel
liveness, path MTU, drift) colouring the right element without a change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ibgp_tunnel.doctor.result import Check, Status


class State(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # no doctor result for it (or only skipped checks)


COLOURS = {
    State.OK: "#2e7d32",
    State.WARN: "#ef6c00",
    State.FAIL: "#c62828",
    State.UNKNOWN: "#9e9e9e",
}
# Worst first.
_RANK = (State.FAIL, State.WARN, State.OK)
_OF_STATUS = {Status.OK: State.OK, Status.WARN: State.WARN, Status.FAIL: State.FAIL}


@dataclass(frozen=True)
class Seen:
    state: State
    # The checks that decided it (the failing ones when it failed), for the tooltip.
    because: tuple[Check, ...] = ()


UNSEEN = Seen(State.UNKNOWN)


def worst(checks: Iterable[Check]) -> Seen:
    """The worst status among `checks`; skips count for nothing."""
    listed = [c for c in checks if c.status in _OF_STATUS]
    for state in _RANK:
        deciding = tuple(c for c in listed if _OF_STATUS[c.status] is state)
        if deciding:
            return Seen(state, deciding)
    return UNSEEN


def naming(checks: Sequence[Check], words: Iterable[str | None]) -> list[Check]:
    """The checks whose id has one of `words` as a word of its own."""
    wanted = {w for w in words if w}
    return [c for c in checks if wanted & set(c.id.split())]


Results = Mapping[str, Sequence[Check]]  # host -> doctor's checks on it


def end_state(results: Results, host: str, interface: str | None, port: int | None) -> Seen:
    """A tunnel at one of its ends."""
    if host not in results:
        return UNSEEN
    return worst(naming(results[host], [interface, f"udp/{port}" if port else None]))


def session_state(results: Results, host: str, protocol: str | None) -> Seen:
    if host not in results or not protocol:
        return UNSEEN
    return worst(naming(results[host], [protocol]))


def host_state(results: Results, host: str) -> Seen:
    return worst(results[host]) if host in results else UNSEEN


def combined(*seen: Seen) -> Seen:
    """Both ends of a link or session: the worse one, unknown only if both are."""
    for state in _RANK:
        deciding = tuple(c for s in seen if s.state is state for c in s.because)
        if any(s.state is state for s in seen):
            return Seen(state, deciding)
    return UNSEEN
