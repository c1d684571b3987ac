"""What the recordings in python/tests/data/doctor cannot show.

They predate some of doctor's reads (drift's files and tables, the path-MTU and liveness
probes), so
those checks say `skip` on them, by design; everything else must be ok.
"""

from __future__ import annotations

from ibgp_tunnel.doctor.checks.pmtu import NOT_PROBED
from ibgp_tunnel.doctor.result import Check, Status

# What drift's skip says when a recording lacks what it compares.
DRIFT_UNRECORDED = "saved before doctor read"
# What liveness says of a recording without its probe.
NOT_MEASURED = "not measured: no probe through"
# Any marker in a printed line: that line is one of these skips.
MARKERS = (DRIFT_UNRECORDED, NOT_PROBED, NOT_MEASURED)


def predates(check: Check) -> bool:
    """A skip only because the recording is older than the read."""
    if check.status is not Status.SKIP:
        return False
    drift = check.id.startswith("drift.") and DRIFT_UNRECORDED in check.line()
    pmtu = check.id.startswith("tunnel.pmtu") and NOT_PROBED in check.line()
    alive = check.id.startswith("tunnel.alive") and NOT_MEASURED in check.line()
    return drift or pmtu or alive


def not_ok(checks: list[Check]) -> list[str]:
    """Lines that are not ok, but for the skips `predates` explains."""
    return [c.line() for c in checks if c.status is not Status.OK and not predates(c)]
