"""Doctor's checks, one file per subject; `order.py` runs them causes first."""

from ibgp_tunnel.doctor.checks.common import STALE_HANDSHAKE_SECONDS
from ibgp_tunnel.doctor.checks.order import CHECKS, run_checks

__all__ = ["CHECKS", "STALE_HANDSHAKE_SECONDS", "run_checks"]
