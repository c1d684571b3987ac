"""Running a command the way every part of the package does: an argument list
(never a shell), output captured as text, a deadline, and a failure raised as the
caller's own error type quoting the command and what it printed."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from ibgp_tunnel.errors import IbgpTunnelError


def run_command(
    argv: Sequence[str],
    error: type[IbgpTunnelError],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`argv`'s result; `error` when it is missing, overruns `timeout`, or (with
    `check`) exits non-zero. Undecodable output is replaced, never raised: it is
    read for messages and states only."""
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
        raise error(f"{argv[0]} is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise error(f"`{' '.join(argv)}` did not finish within {timeout} s") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise error(f"`{' '.join(argv)}` failed ({done.returncode}): {detail}")
    return done
