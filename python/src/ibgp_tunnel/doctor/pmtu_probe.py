"""Path MTU probes: don't-fragment pings of growing size through each tunnel to the
peer's tunnel address, and over the underlay to the peer's WireGuard endpoint.

A search, not a sweep: the first round sends a ladder of sizes from 1280 up to the
tunnel's MTU at once; only when the top fails does a second round refine between the
largest that passed and the smallest that did not (a third, for ranges beyond 255
bytes), and send the top once more (if it
passes then, the kernel learnt the path MTU from an ICMP error in between: discovery
works). Every round's pings run in parallel across links, so a healthy host costs one
round trip and a broken one at most ROUNDS ping timeouts. Pings go through the
target, so a lab host's probes run inside its namespace exactly as a host's do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ibgp_tunnel.doctor.checks.common import WG_OVERHEAD
from ibgp_tunnel.doctor.collect import Output, Target
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_ping import parse_ping, probe_key
from ibgp_tunnel.doctor.parse_wg import endpoint_address

PROBE_MIN = 1280  # IPv6's minimum MTU: a tunnel smaller than that is broken anyway
# 16 sizes a round: two rounds find the exact size across 255 bytes (1280 to 1500).
POINTS = 16
ROUNDS = 3
WORKERS = 32
WAIT_SECONDS = 1
# IP + ICMP echo headers: `ping -s` is the payload, sizes here are whole packets.
HEADERS = {4: 28, 6: 48}


@dataclass(frozen=True)
class Series:
    interface: str
    kind: str  # "tunnel" or "underlay"
    address: str
    low: int
    high: int


def ping_argv(address: str, size: int) -> tuple[str, ...]:
    payload = size - HEADERS[ipaddress.ip_address(address).version]
    wait = str(WAIT_SECONDS)
    return ("ping", "-n", "-M", "do", "-c", "1", "-W", wait, "-s", str(payload), address)


def ladder(low: int, high: int, points: int) -> list[int]:
    """`points` sizes from `low` to `high`, both included, evenly spread."""
    if high <= low:
        return [high]
    return sorted({low + round((high - low) * i / (points - 1)) for i in range(points)})


def between(low: int, high: int, points: int) -> list[int]:
    """Up to `points` sizes strictly between `low` and `high`."""
    if high - low - 1 <= points:
        return list(range(low + 1, high))
    return sorted({low + round((high - low) * i / (points + 1)) for i in range(1, points + 1)})


def next_round(series: Series, seen: dict[int, list[bool]]) -> list[tuple[int, int]]:
    """(size, attempt) to send next, from what came back so far (size -> outcomes)."""
    if not seen:
        return [(size, 1) for size in ladder(series.low, series.high, POINTS)]
    top = seen.get(series.high, [])
    if any(top):
        return []
    passed = [size for size, outcomes in seen.items() if any(outcomes)]
    if not passed:
        return []  # not even the smallest: nothing to measure (see the tunnel's lines)
    best = max(passed)
    worse = min((s for s, o in seen.items() if s > best and not any(o)), default=series.high)
    sizes = [(size, 1) for size in between(best, worse, POINTS)]
    if len(top) < 2:
        sizes.append((series.high, len(top) + 1))
    return sizes


def _address(text: str | None) -> str | None:
    """An address from the plan or the live state, or None: nothing else reaches ping."""
    try:
        return str(ipaddress.ip_address(text or ""))
    except ValueError:
        return None


def _endpoint(exp: Expectations, live: Live, interface: str) -> str | None:
    wg = (live.wireguard or {}).get(interface)
    live_endpoints = [p.endpoint for p in (wg.peers if wg else ()) if p.endpoint]
    tunnel = next((t for t in exp.tunnels if t.interface == interface), None)
    planned = [p.endpoint for p in (tunnel.peers if tunnel else ()) if p.endpoint]
    for endpoint in (*live_endpoints, *planned):
        address = _address(endpoint_address(endpoint))
        if address:
            return address
    return None


def plan_series(exp: Expectations, live: Live) -> list[Series]:
    """What to probe: each of our links' tunnel that is up, to the peer's tunnel
    addresses (IPv4, IPv6) and to its endpoint."""
    series = []
    for interface, neighbor in sorted(exp.tunnel_neighbors.items()):
        link = (live.links or {}).get(interface)
        if link is None or not link.up or link.mtu <= 0:
            continue
        low = min(PROBE_MIN, link.mtu)
        for address in (neighbor, exp.tunnel_neighbors6.get(interface)):
            if (checked := _address(address)) is not None:
                series.append(Series(interface, "tunnel", checked, low, link.mtu))
        endpoint = _endpoint(exp, live, interface)
        if endpoint is not None:
            outer = link.mtu + WG_OVERHEAD[ipaddress.ip_address(endpoint).version]
            series.append(Series(interface, "underlay", endpoint, low, outer))
    return series


def run_probes(target: Target, series: Sequence[Series]) -> dict[str, Output]:
    """Every ping sent, keyed as parse_ping.probe_key."""
    outputs: dict[str, Output] = {}
    seen: dict[Series, dict[int, list[bool]]] = {s: {} for s in series}
    for _ in range(ROUNDS):
        jobs = [(s, size, attempt) for s in series for size, attempt in next_round(s, seen[s])]
        if not jobs:
            break
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(jobs))) as pool:
            done = list(pool.map(lambda job: target.run(ping_argv(job[0].address, job[1])), jobs))
        for (s, size, attempt), output in zip(jobs, done, strict=True):
            outputs[probe_key(s.interface, s.kind, s.address, size, attempt)] = output
            seen[s].setdefault(size, []).append(parse_ping(output).passed)
    return outputs
