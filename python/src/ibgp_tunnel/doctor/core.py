"""What the Nix core says about one host, in one `nix-instantiate` run: its host spec,
its rendered artifacts and its slice of the route model (sessions, interfaces,
expected routes), so doctor never parses bird.conf text back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.core import evaluate_core
from ibgp_tunnel.errors import InputError

# The plan and host travel as --argstr (core.evaluate_core), never spliced in.
_EXPRESSION = """
{ coreFile, planFile, hostName }:
let
  core = import coreFile;
  plan = core.readPlan planFile;
  spec = core.hostFromPlan plan hostName;
in
{
  inherit spec;
  artifacts = core.render spec;
  model = core.routes.hostModel plan { } hostName;
}
"""


@dataclass(frozen=True)
class HostView:
    plan: dict[str, Any]
    spec: dict[str, Any]
    artifacts: dict[str, Any]
    model: dict[str, Any]


def host_view(plan_path: Path, host: str) -> HostView:
    """The core's whole answer for `host` of the plan at `plan_path`."""
    plan = planfile.load(plan_path)
    hosts = plan.get("hosts")
    if not isinstance(hosts, dict) or host not in hosts:
        known = ", ".join(sorted(hosts)) if isinstance(hosts, dict) and hosts else "none"
        raise InputError(f'{plan_path} has no host "{host}" (hosts: {known})')
    found = evaluate_core(
        _EXPRESSION,
        f"the Nix core refused host {host}",
        planFile=str(plan_path.resolve()),
        hostName=host,
    )
    return HostView(plan, found["spec"], found["artifacts"], found["model"])
