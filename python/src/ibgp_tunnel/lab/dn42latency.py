"""DN42 `latency = "auto"` in the lab: what the module's dn42-latency timer does on
a host, runnable against a lab reflector. The measured classes live under the lab
directory (the rendered files under /var/lib on a real host); `local_include` points
bird.conf's includes at them, `prepare` writes the first contents (tmpfiles' job),
`measure` runs the rendered script with the rendered arguments inside the
reflector's namespace, so its pings cross the lab's real DN42 tunnel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ibgp_tunnel import paths
from ibgp_tunnel.lab import location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts


def script() -> Path:
    """The measuring script the NixOS unit runs (the core's resource)."""
    return paths.nix_lib_dir() / "resources" / "dn42-latency-update.sh"


def latency_dir(lab_dir: Path, host: str) -> Path:
    return lab_dir / "dn42" / "latency" / host


def lab_file(lab_dir: Path, host: str, rendered: str) -> Path:
    """Where the lab keeps the file a host's bird.conf includes from `rendered`."""
    return latency_dir(lab_dir, host) / Path(rendered).name


def local_include(lab_dir: Path, host: str, rendered: str) -> Path | None:
    """The lab's file for an include of bird.conf, if it is a measured class."""
    if str(Path(rendered).parent) != paths.dn42_defaults()["latency_dir"]:
        return None
    return lab_file(lab_dir, host, rendered)


def prepare(lab_dir: Path, artifacts: Mapping[str, Mapping[str, Any]]) -> None:
    """The first contents (the worst class), as tmpfiles writes them before BIRD starts."""
    for host, rendered in artifacts.items():
        latency = rendered.get("dn42Latency")
        if not latency:
            continue
        for initial in latency["initial"]:
            path = lab_file(lab_dir, host, initial["file"])
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(initial["text"] + "\n")


def measure(lab_dir: Path, host: str, ns: str, socket: Path) -> subprocess.CompletedProcess[str]:
    """One run of the timer's unit: the rendered arguments with the lab's files, the
    lab's bird.conf and BIRD, in the host's namespace."""
    rendered: list[str] = saved_artifacts(lab_dir)[host]["dn42Latency"]["arguments"]
    flags, groups = rendered[:2], rendered[2:]
    args = list(flags)
    for i in range(0, len(groups), 5):  # name address interface file symbol
        name, address, interface, file, symbol = groups[i : i + 5]
        args += [name, address, interface, str(lab_file(lab_dir, host, file)), symbol]
    env = {
        **os.environ,
        "BIRD": location.bird_tool("bird"),
        "BIRDC": location.bird_tool("birdc"),
        "BIRDC_SOCKET": str(socket),
        # up.node_dir's bird.conf: the config this BIRD runs.
        "BIRD_CONF": str(lab_dir / "nodes" / host / "bird.conf"),
    }
    return subprocess.run(
        netns.ns_argv(ns, ["bash", str(script()), *args]),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
