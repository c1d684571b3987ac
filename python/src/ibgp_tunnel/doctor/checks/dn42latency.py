"""DN42 peers with `latency = "auto"`: the class BIRD tags their routes with now."""

from __future__ import annotations

from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.result import Check, fail, ok, skip, warn

UNIT = "ibgp-tunnel-dn42-latency"
# The worst class, also the one a peer has before its first measurement.
WORST = 9


def check_dn42_latency(exp: Expectations, live: Live) -> list[Check]:
    checks = []
    for peer, symbol in sorted(exp.latency_auto.items()):
        name = f"dn42.latency {peer}"
        if live.bird is None:
            checks.append(skip(name, "BIRD is not running"))
            continue
        if peer not in live.latency:
            checks.append(skip(name, "not read (a recording made before doctor read it)"))
            continue
        found = live.latency[peer]
        if found is None:
            why = live.errors.get(f"latency {peer}", "no answer")
            checks.append(
                fail(
                    name,
                    f"BIRD holds no measured latency class for {peer} ({symbol}): {why}",
                    f"birdc eval {symbol}: {why}",
                    f"deploy the configuration again (bird.conf includes {peer}'s class file), "
                    f"then `systemctl start {UNIT}`",
                )
            )
        elif found == WORST:
            checks.append(
                warn(
                    name,
                    f"{peer}'s routes carry the worst latency class (64511,{WORST}): not "
                    "measured yet, or the round trip over its tunnel is 3 s or more",
                    f"birdc eval {symbol}: {found}",
                    f"`systemctl status {UNIT}` and its journal say which; the timer "
                    "measures every few minutes",
                )
            )
        else:
            checks.append(
                ok(
                    name,
                    f"{peer}'s routes carry the measured latency class (64511,{found})",
                    f"birdc eval {symbol}: {found}",
                )
            )
    return checks
