"""The rendered artifacts the lab consumes (docs/interfaces.md §3); the plan itself
is read by planfile, the reader every command shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ibgp_tunnel.core import evaluate_core
from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.topology import build_topology

# The running lab's artifacts, kept beside its state so faults (a restarted
# wireguard-go, say) apply what `up` applied without asking Nix again.
ARTIFACTS_FILE = "artifacts.json"


# Every host in one nix-instantiate run, each with its slice of the route model
# (`routes`: sessions, interfaces, expected routes), given what the lab's DN42
# stand-ins announce (JSON: reflector -> peer -> family -> [prefix]).
_EXPRESSION = """
{ coreFile, planFile, tuning, dn42Routes }:
let
  core = import coreFile;
  plan = core.readPlan planFile;
  model = core.routes.model plan { dn42Routes = builtins.fromJSON dn42Routes; };
  specOf = name:
    let fromPlan = core.hostFromPlan plan name;
    in if tuning == "plain" then fromPlan // { tuning = core.plainTuning; } else fromPlan;
in
builtins.mapAttrs
  (name: _: core.render (specOf name) // { routes = model.hosts.${name}; })
  plan.hosts
"""


def dn42_announcements(plan: dict[str, Any]) -> dict[str, dict[str, dict[str, list[str]]]]:
    """What the lab's DN42 stand-ins announce (lab/topology.py), as the route model
    takes it: reflector -> peer -> family -> prefixes."""
    found: dict[str, dict[str, dict[str, list[str]]]] = {}
    for peer in build_topology(plan).dn42_peers:
        found.setdefault(peer.reflector, {})[peer.name] = {
            "ipv4": list(peer.announce_ipv4),
            "ipv6": list(peer.announce_ipv6),
        }
    return found


def render_plan(
    plan_path: Path, plan: dict[str, Any], *, plain_tuning: bool = False
) -> dict[str, dict[str, Any]]:
    """Artifacts for every host of the plan, keyed by host name, each with `routes`,
    its part of the core's route model; with `plain_tuning`, the seed's plain BGP
    sessions (the Nix core's plainTuning) instead of the plan's."""
    if not isinstance(plan.get("hosts"), dict) or not plan["hosts"]:
        return {}
    found: dict[str, dict[str, Any]] = evaluate_core(
        _EXPRESSION,
        "the Nix core refused the plan",
        planFile=str(plan_path.resolve()),
        tuning="plain" if plain_tuning else "plan",
        dn42Routes=json.dumps(dn42_announcements(plan)),
    )
    return found


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
