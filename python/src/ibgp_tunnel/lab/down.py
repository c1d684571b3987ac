"""`lab down`: remove exactly what the state file says `up` created.

Only in a directory carrying `up`'s marker (labdir.py): any other directory is
refused with exit 2 and left as it is, whatever it holds.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from pathlib import Path

from ibgp_tunnel.lab import autopeerlab, daemons, labdir, location, netns, state

RUN_NETNS = Path("/run/netns")
# What `up` may record in created_paths; anything else a state file names is ignored.
CREATABLE_PATHS = (RUN_NETNS,)


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
    if path not in CREATABLE_PATHS or not path.is_dir() or any(path.iterdir()):
        return
    if _is_mount_point(path):
        subprocess.run(["umount", "-n", str(path)], check=False, capture_output=True)
    with contextlib.suppress(OSError):
        path.rmdir()


def down(lab_dir: Path | None = None, *, progress: Callable[[str], None] = _quiet) -> bool:
    """Stop the lab's daemons (by PID), delete its namespaces and files.

    Returns False when no lab was up; safe to call any number of times. Raises
    ForeignDirError, touching nothing, when `lab_dir` is not a directory `up` made.
    """
    lab_dir = lab_dir or location.lab_dir()
    st = state.load(lab_dir)
    if st is None:
        marker = labdir.marker_of(lab_dir)
        if marker is not None:
            # A marker and no state: `up` stopped before creating anything else.
            labdir.remove(lab_dir, marker)
        return False
    # BIRD first (started last), so sessions close before their tunnels vanish.
    for daemon in reversed(st.daemons):
        progress(f"stopping {daemon.name} (pid {daemon.pid})")
        daemons.stop(daemon)
    present = netns.list_netns()
    for ns in reversed(st.netns):
        if ns in present:
            progress(f"deleting namespace {ns}")
            autopeerlab.delete_tun_links(ns)
            netns.delete_netns(ns)
    for path in st.created_paths:
        _remove_created_path(Path(path))
    labdir.remove(lab_dir, st.marker)
    return True
