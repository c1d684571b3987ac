"""Named points in a multi-file write where a test can freeze a real process.

With ``IBGP_TUNNEL_TEST_STOP_AT=<name>`` in its environment, the process stops
itself (SIGSTOP) on reaching that point. A test waits for the stop with
``os.waitpid(pid, os.WUNTRACED)`` and then kills it there (SIGKILL: an
interruption at an exact place, no sleeps) or lets it go on (SIGCONT: a run that
holds the lock while another starts). Unset, this is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "IBGP_TUNNEL_TEST_STOP_AT"


def reached(name: str) -> None:
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGSTOP)
