"""When a two-reflector lab is whole again after a fault, for the benches
(bench/two_reflectors.py, bench/chaos.py): every BIRD settled (lab/status.py:
sessions Established, no recovery or neighbour's graceful restart running, BFD
Up, kernels in step) and every client's kernel on the paths the core's route
model gives it with every reflector up (lab/reflectors.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ibgp_tunnel.lab.reflectors import expected_paths, kernel_paths
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import sessions_established
from ibgp_tunnel.lab.topology import Artifacts


def whole(
    st: LabState, plan: Mapping[str, Any], artifacts: Artifacts, clients: Sequence[str]
) -> tuple[bool, list[str]]:
    """Whether the lab is whole, and what it still waits for."""
    waiting = [
        f"{client}'s kernel is not on its preferred paths yet"
        for client in clients
        if kernel_paths(st, client) != expected_paths(plan, artifacts, client)
    ]
    ok, pending = sessions_established(st)
    return ok and not waiting, waiting + pending
