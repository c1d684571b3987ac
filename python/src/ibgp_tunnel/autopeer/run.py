"""Commands the apply unit runs (ip, wg, nft, bird, birdc): argument lists only,
never a shell, and a failure as ApplyError quoting the command and its stderr."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

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
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError:
        raise ApplyError(f"{argv[0]} is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise ApplyError(f"`{' '.join(argv)}` did not finish within {timeout} s") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise ApplyError(f"`{' '.join(argv)}` failed ({done.returncode}): {detail}")
    return done
