"""Starting and stopping the lab's daemons by PID.

A daemon is identified by its PID *and* its start time (from /proc), so a
PID recycled by an unrelated process after the lab's daemon died is never
signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel.lab.errors import LabError


@dataclass(frozen=True)
class Daemon:
    name: str  # e.g. "dmz/bird", "pve/wireguard-go wg-ibgp"
    pid: int
    start_time: int  # /proc/PID/stat field 22, clock ticks since boot
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Daemon:
        return cls(str(data["name"]), int(data["pid"]), int(data["start_time"]), str(data["log"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of `pid`, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_time_of(pid: int) -> int:
    stat = _stat(pid)
    if stat is None:
        raise LabError(f"process {pid} exited immediately")
    return stat[1]


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _live_threads(pid: int) -> bool:
    """Whether any thread of `pid` still runs. BIRD 3 is multithreaded: after a
    SIGKILL its main thread may already be a zombie while another still holds
    TCP 179, and a BIRD started then never gets its listening socket."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            raw = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if raw[raw.rindex(")") + 2 :].split()[0] not in ("Z", "X"):
            return True
    return False


def alive(daemon: Daemon) -> bool:
    """Whether any thread of the daemon still runs. A process whose every thread has
    exited counts as gone even while it waits to be reaped (a zombie): on these
    machines init may reap it late, and it holds nothing any more."""
    _reap(daemon.pid)
    stat = _stat(daemon.pid)
    if stat is None or stat[1] != daemon.start_time:
        return False
    return stat[0] not in ("Z", "X") or _live_threads(daemon.pid)


def start(name: str, argv: Sequence[str], log: Path) -> Daemon:
    """Start `argv` in the background (own session, output to `log`) and return its handle.

    The argv must exec its way to the daemon (ip netns exec, unshare, sh -c
    exec): the PID we hold is then the daemon's.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise LabError(f"{argv[0]} is not installed") from None
    return Daemon(name, proc.pid, start_time_of(proc.pid), str(log))


def stop(daemon: Daemon, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; a no-op if it is gone already."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        if not alive(daemon):
            return
        try:
            os.kill(daemon.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(daemon):
                return
            time.sleep(0.02)
    if alive(daemon):
        raise LabError(f"{daemon.name} (pid {daemon.pid}) survived SIGKILL")


def log_tail(daemon: Daemon, lines: int = 15) -> str:
    try:
        return "\n".join(Path(daemon.log).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
