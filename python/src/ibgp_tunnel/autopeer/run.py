"""Commands the apply unit runs (ip, wg, nft, bird, birdc): argument lists only,
never a shell, and a failure as ApplyError quoting the command and its stderr."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from ibgp_tunnel.command import run_command
from ibgp_tunnel.errors import IbgpTunnelError


class ApplyError(IbgpTunnelError):
    """Applying an accepted peering failed on this host (not the requester's fault)."""


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return run_command(argv, ApplyError, input=input, check=check, timeout=timeout, env=env)
