"""The rendered artifacts the lab consumes (docs/interfaces.md §3); the plan itself
is read by planfile, the reader every command shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.render import render_host

# The running lab's artifacts, kept beside its state so faults (a restarted
# wireguard-go, say) apply what `up` applied without asking Nix again.
ARTIFACTS_FILE = "artifacts.json"


def render_plan(
    plan_path: Path, plan: dict[str, Any], *, plain_tuning: bool = False
) -> dict[str, dict[str, Any]]:
    """Artifacts for every host of the plan, keyed by host name; with `plain_tuning`,
    the seed's plain BGP sessions (the Nix core's plainTuning) instead of the plan's."""
    return {
        host: render_host(plan_path, host, plain_tuning=plain_tuning)
        for host in plan.get("hosts", {})
    }


def save_artifacts(lab_dir: Path, artifacts: dict[str, dict[str, Any]]) -> None:
    (lab_dir / ARTIFACTS_FILE).write_text(json.dumps(artifacts, indent=1) + "\n")


def saved_artifacts(lab_dir: Path) -> dict[str, dict[str, Any]]:
    """What `up` rendered for the running lab."""
    path = lab_dir / ARTIFACTS_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise LabError(
            f"{path} is missing: the lab was brought up by an older ibgp-tunnel; "
            "run `ibgp-tunnel lab down` and `lab up` again"
        ) from None
