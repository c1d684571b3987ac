"""`lab down`: remove exactly what the state file says `up` created."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ibgp_tunnel.lab import daemons, location, netns, state


def _quiet(_: str) -> None:
    pass


def _is_mount_point(path: Path) -> bool:
    # os.path.ismount misses bind mounts of a directory onto itself (same device).
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[4] == str(path) for line in mounts if len(line.split()) > 4)


def _remove_created_path(path: Path) -> None:
    # /run/netns is a bind mount made by `ip netns add`; remove it only when we
    # made it and nothing else has put a namespace there since.
    if not path.is_dir() or any(path.iterdir()):
        return
    if _is_mount_point(path):
        subprocess.run(["umount", "-n", str(path)], check=False, capture_output=True)
    with contextlib.suppress(OSError):
        path.rmdir()


def down(lab_dir: Path | None = None, *, progress: Callable[[str], None] = _quiet) -> bool:
    """Stop the lab's daemons (by PID), delete its namespaces and files.

    Returns False when no lab was up; safe to call any number of times.
    """
    lab_dir = lab_dir or location.lab_dir()
    st = state.load(lab_dir)
    if st is None:
        if lab_dir.exists():
            # Only a state-less remainder of an interrupted first step: ours by name.
            shutil.rmtree(lab_dir, ignore_errors=True)
        return False
    # BIRD first (started last), so sessions close before their tunnels vanish.
    for daemon in reversed(st.daemons):
        progress(f"stopping {daemon.name} (pid {daemon.pid})")
        daemons.stop(daemon)
    present = netns.list_netns()
    for ns in reversed(st.netns):
        if ns in present:
            progress(f"deleting namespace {ns}")
            netns.delete_netns(ns)
    for path in st.created_paths:
        _remove_created_path(Path(path))
    shutil.rmtree(st.lab_dir, ignore_errors=True)
    return True
