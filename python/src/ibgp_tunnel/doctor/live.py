"""The live state, parsed: every tool's output read once into typed records.

A read that failed (tool missing, BIRD down, no permission) leaves its field None
and its error text in `errors`, so checks can say why they could not look.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ibgp_tunnel.doctor.collect import AUTOPEER_KEY, WG_AFTER, Output, Snapshot
from ibgp_tunnel.doctor.parse_bird import (
    BfdSession,
    BirdStatus,
    Protocol,
    parse_bfd_sessions,
    parse_protocols,
    parse_route_count,
    parse_status,
)
from ibgp_tunnel.doctor.parse_drift import file_age, reconfigured_ago
from ibgp_tunnel.doctor.parse_ip import Link, Route, parse_addresses, parse_routes, route_device
from ibgp_tunnel.doctor.parse_nft import Ruleset, parse_ruleset
from ibgp_tunnel.doctor.parse_ping import PingResult, Probed, parse_probes, parse_summary
from ibgp_tunnel.doctor.parse_sysctl import parse_sysctl
from ibgp_tunnel.doctor.parse_wg import WgInterface, parse_wg_dump
from ibgp_tunnel.errors import IbgpTunnelError


@dataclass
class Live:
    now: float
    bird: BirdStatus | None = None
    protocols: dict[str, Protocol] = field(default_factory=dict)
    route_count: dict[str, tuple[int, int]] = field(default_factory=dict)
    bfd: list[BfdSession] | None = None
    wireguard: dict[str, WgInterface] | None = None
    links: dict[str, Link] | None = None
    routes: dict[str, list[Route]] | None = None  # "ipv4"/"ipv6" -> main table
    ruleset: Ruleset | None = None
    sysctl: dict[str, str] = field(default_factory=dict)
    route_devices: dict[str, str | None] = field(default_factory=dict)
    # (interface, "tunnel"/"underlay", address) -> path MTU pings; None: not probed
    probes: dict[tuple[str, str, str], Probed] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    # Drift: the file BIRD runs from, its age and BIRD's time since it last read its
    # config (seconds, on the same clock), and our nftables table as nft prints it.
    # None and no error: a snapshot from before doctor read them.
    bird_config: str | None = None
    bird_config_path: str = ""
    bird_config_age: float | None = None
    bird_reconfigured_ago: float | None = None
    nft_table: str | None = None
    # The liveness window: WireGuard's counters read again after the probes, and each
    # tunnel's probe (None: ping sent nothing; its error is in `errors`).
    wireguard_after: dict[str, WgInterface] | None = None
    liveness: dict[str, PingResult | None] = field(default_factory=dict)
    # DN42 peer -> the latency class BIRD holds for it (latency = "auto"); None: unread.
    latency: dict[str, int | None] = field(default_factory=dict)
    # Self-service peering's runtime (doctor/autopeer.py `runtime`); None: not read.
    autopeer: dict[str, Any] | None = None


def _probe(live: Live, interface: str, output: Output) -> PingResult | None:
    # ping exits 1 when nothing answered: the summary, not the status, says what happened.
    result = parse_summary(output.stdout)
    if result is None:
        live.errors[f"probe {interface}"] = output.error()
    return result


# What a parser raises on text that is well-formed but not what its tool prints
# (a recording edited by hand, say): that read then counts as failed.
_MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)
T = TypeVar("T")


def parse_snapshot(snapshot: Snapshot) -> Live:
    live = Live(now=snapshot.time)

    def parsed(key: str, parse: Callable[[str], T]) -> T | None:
        output = snapshot.get(key)
        if not output.ok:
            live.errors[key] = output.error()
            return None
        try:
            return parse(output.stdout)
        except IbgpTunnelError as error:
            live.errors[key] = str(error)
        except _MALFORMED as error:
            live.errors[key] = f"not what the tool prints ({type(error).__name__}: {error})"
        return None

    live.bird = parsed("bird_status", parse_status)
    if live.bird is not None:
        live.protocols = parsed("bird_protocols", parse_protocols) or {}
        live.route_count = parsed("bird_route_count", parse_route_count) or {}
        live.bfd = parsed("bird_bfd", parse_bfd_sessions)
        status = snapshot.get("bird_status").stdout
        live.bird_reconfigured_ago = reconfigured_ago(status)
    if "bird_config" in snapshot.outputs:
        live.bird_config = parsed("bird_config", str)
        live.bird_config_path = (snapshot.get("bird_config").argv or ("",))[-1]
        if "bird_config_mtime" in snapshot.outputs:
            live.bird_config_age = parsed("bird_config_mtime", file_age)
    if "nft_table" in snapshot.outputs:
        live.nft_table = parsed("nft_table", str)
    live.wireguard = parsed("wg", parse_wg_dump)
    live.links = parsed("ip_addr", parse_addresses)
    routes4, routes6 = parsed("ip_route4", parse_routes), parsed("ip_route6", parse_routes)
    if routes4 is not None and routes6 is not None:
        live.routes = {"ipv4": routes4, "ipv6": routes6}
    live.ruleset = parsed("nft", parse_ruleset)
    live.sysctl = parsed("sysctl", parse_sysctl) or {}
    for address, output in snapshot.route_get.items():
        device = None
        if output.ok:
            try:
                device = route_device(output.stdout)
            except (IbgpTunnelError, *_MALFORMED) as error:
                live.errors[f"route_get {address}"] = str(error)
        live.route_devices[address] = device
    if snapshot.probes is not None:
        try:
            live.probes = parse_probes(snapshot.probes)
        except _MALFORMED as error:
            live.errors["probes"] = f"not doctor's probes ({error})"
    if WG_AFTER in snapshot.outputs:
        live.wireguard_after = parsed(WG_AFTER, parse_wg_dump)
    for interface, output in snapshot.liveness.items():
        live.liveness[interface] = _probe(live, interface, output)
    for peer, output in snapshot.latency.items():
        live.latency[peer] = _latency_class(live, peer, output)
    if AUTOPEER_KEY in snapshot.outputs:
        live.autopeer = parsed(AUTOPEER_KEY, _autopeer_runtime)
    return live


def _autopeer_runtime(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("units"), dict):
        raise ValueError("not doctor's autopeer read")
    return data


def _latency_class(live: Live, peer: str, output: Output) -> int | None:
    """`birdc eval <constant>` prints the number alone on its last line (birdc's
    banner, "BIRD 3.1.8 ready.", may come first)."""
    lines = output.stdout.strip().splitlines()
    text = lines[-1].strip() if lines else ""
    if output.ok and text.isascii() and text.isdigit() and 1 <= int(text) <= 9:
        return int(text)
    live.errors[f"latency {peer}"] = output.error() if not output.ok else f"BIRD said {text!r}"
    return None
