"""What the checks share: thresholds, "BIRD is down", and which interface is the far side
of forwarded or arriving traffic (the firewall and forwarding checks both ask)."""

from __future__ import annotations

from collections.abc import Callable

from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.nft_eval import Verdict
from ibgp_tunnel.doctor.result import Check

# WireGuard starts a new handshake every 2 minutes while packets flow (and BGP
# keepalives always flow): older than this, the tunnel carries nothing.
STALE_HANDSHAKE_SECONDS = 180
# Outer IP + UDP + WireGuard header: 60 bytes over IPv4, 80 over IPv6.
WG_OVERHEAD = {4: 60, 6: 80}
IPV6_MIN_MTU = 1280
IMPORT_LIMIT_WARN = 0.9
REDEPLOY = "deploy the plan to this host (nixos-rebuild switch)"

CheckFn = Callable[[Expectations, Live], list[Check]]


def bird_down(live: Live) -> str | None:
    if live.bird is None or not live.bird.up:
        return "not checked: BIRD is not running (see bird.running)"
    return None


def age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def default_device(live: Live, family: str) -> str | None:
    for route in (live.routes or {}).get(family, []):
        if route.dst == "default" and route.dev:
            return route.dev
    return None


def outside_interface(exp: Expectations, live: Live) -> str | None:
    """Where packets from the internet arrive: the uplink, else the default route's."""
    return exp.uplinks[0] if exp.uplinks else default_device(live, "ipv4")


def other_interface(exp: Expectations, live: Live, tunnel: str) -> str:
    """The far side of forwarded tunnel traffic: a LAN (client) or the uplink."""
    for candidate in (*exp.lans, *exp.uplinks):
        if candidate != tunnel:
            return candidate
    return default_device(live, "ipv4") or "(another interface)"


def verdict_evidence(verdict: Verdict) -> str:
    text = verdict.where
    if verdict.uncertain:
        text += "; unless one of these matches: " + " | ".join(verdict.uncertain[:3])
    return text
