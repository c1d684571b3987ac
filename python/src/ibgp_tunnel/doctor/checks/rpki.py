"""RPKI over RTR (dn42_roa.source = "rtr"): whether BIRD's caches answer. With every
cache gone BIRD keeps the last ROA table (expire 48 h), so routes stay: a warning
that says how long, not a failure."""

from __future__ import annotations

import re

from ibgp_tunnel.doctor.checks.common import bird_down
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.result import Check, ok, warn

# The core's names (dn42-symbols.nix rpkiProtocol), with a merged config's prefix.
RPKI_NAME = re.compile(r"(?:ibgpt_)?dn42_rpki_\d+")
# dn42-defaults.toml rtr_expire: how long BIRD keeps a lost cache's ROAs.
EXPIRE_HOURS = 48
CACHE_UNIT = "ibgp-tunnel-stayrtr"


def _answers(state: str, info: str) -> bool:
    return state == "up" and "Established" in info


def check_rpki_caches(exp: Expectations, live: Live) -> list[Check]:
    if bird_down(live):
        return []
    caches = {
        name: row
        for name, row in sorted(live.protocols.items())
        if row.proto.upper() == "RPKI" and RPKI_NAME.fullmatch(name)
    }
    if not caches:
        return []
    down = {name: row for name, row in caches.items() if not _answers(row.state, row.info)}
    evidence = ", ".join(f"{name} {row.state} {row.info}".strip() for name, row in caches.items())
    if not down:
        return [ok("dn42.rpki", f"{len(caches)} RTR cache(s) answer: the ROA tables are current")]
    if len(down) < len(caches):
        return [
            warn(
                "dn42.rpki",
                f"RTR cache(s) {', '.join(down)} do not answer; the others keep the ROA "
                "tables current",
                evidence,
                f"start the local cache (`systemctl status {CACHE_UNIT}`) or check the "
                "unreachable cache's address and port (dn42_roa.rtr_caches)",
            )
        ]
    return [
        warn(
            "dn42.rpki",
            "every RTR cache is gone: BIRD keeps the last ROA table, so no route is "
            f"withdrawn, but ROA changes no longer arrive and the table expires "
            f"{EXPIRE_HOURS} h after the last cache left (then every DN42 route is refused)",
            evidence,
            f"start the local cache: `systemctl restart {CACHE_UNIT}` "
            "(`journalctl -u ibgp-tunnel-dn42-rtr` says whether the JSON refresh works)",
        )
    ]
