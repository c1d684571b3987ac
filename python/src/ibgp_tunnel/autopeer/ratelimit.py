"""Sliding-window rate limits for the web service: per client address, per ASN,
and a ceiling for all clients together (a stranger with many addresses still
cannot make the service run ssh-keygen or gpg without bound)."""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from dataclasses import dataclass, field

WINDOW = 60.0  # seconds: the limits are "per minute"
# Keys kept at most; beyond it the stalest go first (memory stays bounded
# whatever addresses a flood comes from).
MAX_KEYS = 4096


def client_key(address: str) -> str:
    """The rate-limit key of a client address: IPv6 clients by their /64 (one
    host holds a whole /64 and can pick any address in it), IPv4 by address."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass
class RateLimit:
    """At most `limit` events per key within the last WINDOW seconds."""

    limit: int
    _events: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str, now: float) -> float:
        """Count an event for `key` and return 0, or return the seconds until
        one is allowed again (the event is then not counted)."""
        with self._lock:
            events = self._events.pop(key, deque())
            while events and events[0] <= now - WINDOW:
                events.popleft()
            # Re-inserted last: dict order is then least recently used first.
            self._events[key] = events
            self._evict()
            if len(events) >= self.limit:
                return max(events[0] + WINDOW - now, 0.001)
            events.append(now)
            return 0.0

    def _evict(self) -> None:
        while len(self._events) > MAX_KEYS:
            del self._events[next(iter(self._events))]
