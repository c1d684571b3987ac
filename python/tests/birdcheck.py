"""`bird -p` the way nixpkgs' services.bird checks bird.conf at build time:
the config is a symlink `bird.conf` in the current directory, the module's
preCheckConfig runs first (the DN42 ROA includes point at empty stubs there),
then `bird -d -p -c bird.conf`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def build_time_check(
    artifacts: dict[str, Any], work: Path, bird: str = "bird"
) -> subprocess.CompletedProcess[str]:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    out.write_text(artifacts["birdConfig"])
    link = work / "bird.conf"
    link.unlink(missing_ok=True)
    link.symlink_to("out")
    roa = artifacts.get("dn42Roa")
    pre = roa["preCheckConfig"] if roa else ""
    autopeer = artifacts.get("autopeer")
    pre += "\n" + autopeer["preCheckConfig"] if autopeer else ""
    script = f"set -e\n{pre}\n{bird} -d -p -c bird.conf\n"
    return subprocess.run(
        ["bash", "-c", script], cwd=work, capture_output=True, text=True, check=False
    )
