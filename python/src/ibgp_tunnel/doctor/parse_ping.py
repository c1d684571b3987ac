"""ping's outputs as doctor reads them: the path MTU probes (`ping -M do`, saved keyed
by what they probed, read back into echo-came-back and the path MTU an ICMP error
named) and the liveness probes (`ping -q`'s summary: how many went out, how many came
back)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ibgp_tunnel.doctor.collect import Output

# iputils prints a path MTU in three ways: a router's ICMP "Frag needed and DF set
# (mtu = 1400)", ICMPv6 "Packet too big: mtu=1400", and, once the kernel has learnt
# it, its own refusal "local error: message too long, mtu=1400" (IPv6: "mtu: 1400").
_MTU = re.compile(r"(?:Frag needed|Packet too big|message too long)[^\n]*?mtu\s*[=:]\s*(\d{3,5})")
# "<interface> <tunnel|underlay> <address> <packet size> <attempt>"
_KEY = re.compile(r"([A-Za-z0-9_.@-]{1,15}) (tunnel|underlay) (\S{1,64}) (\d{3,5}) ([12])")
KINDS = ("tunnel", "underlay")


@dataclass(frozen=True)
class Ping:
    passed: bool  # the echo reply came back
    mtu: int | None  # the path MTU an ICMP error (or the kernel) named
    # Why ping could not even try (not installed, no permission): exit status above 1.
    error: str | None = None


def parse_ping(output: Output) -> Ping:
    found = _MTU.search(output.stdout + "\n" + output.stderr)
    mtu = int(found[1]) if found else None
    error = output.error() if output.returncode > 1 or output.returncode < 0 else None
    return Ping(output.returncode == 0, mtu, None if mtu else error)


def probe_key(interface: str, kind: str, address: str, size: int, attempt: int) -> str:
    return f"{interface} {kind} {address} {size} {attempt}"


def split_key(key: str) -> tuple[str, str, str, int, int]:
    """A probe key's parts; ValueError names what is wrong (saved outputs are input)."""
    found = _KEY.fullmatch(key)
    if not found:
        raise ValueError(f"{key!r} is no probe ('INTERFACE tunnel|underlay ADDRESS SIZE 1|2')")
    ipaddress.ip_address(found[3])
    return found[1], found[2], found[3], int(found[4]), int(found[5])


@dataclass
class Probed:
    """One probed path: every size sent, with each attempt's outcome in order."""

    interface: str
    kind: str  # tunnel: the peer's tunnel address; underlay: its WireGuard endpoint
    address: str
    pings: dict[int, list[Ping]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version

    @property
    def high(self) -> int:
        """The size the probe aimed at (every series starts with it)."""
        return max(self.pings)

    @property
    def largest_passed(self) -> int | None:
        passed = [size for size, pings in self.pings.items() if any(p.passed for p in pings)]
        return max(passed) if passed else None

    @property
    def smallest_failed(self) -> int | None:
        best = self.largest_passed or 0
        failed = [
            size
            for size, pings in self.pings.items()
            if size > best and not any(p.passed for p in pings)
        ]
        return min(failed) if failed else None

    @property
    def error(self) -> str | None:
        return next((p.error for pings in self.pings.values() for p in pings if p.error), None)

    @property
    def icmp_mtu(self) -> int | None:
        """The smallest path MTU an ICMP error named (path MTU discovery works)."""
        named = [p.mtu for pings in self.pings.values() for p in pings if p.mtu]
        return min(named) if named else None


def parse_probes(outputs: Mapping[str, Output]) -> dict[tuple[str, str, str], Probed]:
    """(interface, kind, address) -> what was seen there."""
    probed: dict[tuple[str, str, str], Probed] = {}
    for key in sorted(outputs, key=lambda k: split_key(k)[4]):
        interface, kind, address, size, _ = split_key(key)
        series = probed.setdefault((interface, kind, address), Probed(interface, kind, address))
        series.pings.setdefault(size, []).append(parse_ping(outputs[key]))
    return probed


# --- liveness: `ping -q`'s summary ---------------------------------------------------

# iputils prints `4 packets transmitted, 0 received, 100% packet loss`, busybox
# `4 packets transmitted, 0 packets received, 100% packet loss`. Without that line
# ping never sent (no such interface, no permission): the probe did not happen.
_SUMMARY = re.compile(r"^(\d{1,9}) packets transmitted, (\d{1,9}) (?:packets )?received", re.M)


@dataclass(frozen=True)
class PingResult:
    transmitted: int
    received: int


def parse_summary(text: str) -> PingResult | None:
    """The counts, or None when ping printed no summary."""
    found = _SUMMARY.search(text)
    if found is None:
        return None
    return PingResult(int(found[1]), int(found[2]))
