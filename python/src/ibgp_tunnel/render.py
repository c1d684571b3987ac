"""Asking the Nix core what a host will run: its host spec and its artifacts.

The question goes through `core` (nix-instantiate over default.nix); the plan
file and the host name travel as --argstr values. The lab and doctor import
`host_spec` and `render_host`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.core import evaluate_core
from ibgp_tunnel.errors import InputError

# `what` picks the stage; evaluation is lazy, so "spec" never renders. `tuning`
# "plain" swaps in the seed's plain sessions (core.plainTuning), which the lab and
# bench/ run side by side with ours.
_EXPRESSION = """
{ coreFile, planFile, hostName, what, tuning }:
let
  core = import coreFile;
  fromPlan = core.hostFromPlan (builtins.fromTOML (builtins.readFile planFile)) hostName;
  spec = if tuning == "plain" then fromPlan // { tuning = core.plainTuning; } else fromPlan;
in
if what == "spec" then spec else core.render spec
"""


def host_spec(plan_path: Path, host: str, *, plain_tuning: bool = False) -> dict[str, Any]:
    """`hostFromPlan plan host`: the services.ibgpTunnel option values (interfaces.md §2).
    With `plain_tuning`, its tuning is `plainTuning` (the seed's plain sessions)."""
    return _evaluate(plan_path, host, "spec", plain_tuning)


def render_host(plan_path: Path, host: str, *, plain_tuning: bool = False) -> dict[str, Any]:
    """`render (hostFromPlan plan host)`: birdConfig, wireguard, nftables, ... (§3).
    With `plain_tuning`, rendered as the seed's plain sessions (no BFD, no graceful
    restart, BIRD's default timers, no import limit)."""
    return _evaluate(plan_path, host, "artifacts", plain_tuning)


def _evaluate(plan_path: Path, host: str, what: str, plain_tuning: bool) -> dict[str, Any]:
    _require_host(plan_path, host)
    result: dict[str, Any] = evaluate_core(
        _EXPRESSION,
        f"the Nix core refused host {host}",
        planFile=str(plan_path.resolve()),
        hostName=host,
        what=what,
        tuning="plain" if plain_tuning else "plan",
    )
    return result


def _require_host(plan_path: Path, host: str) -> None:
    # Unusable input is exit 2; checking it here also gives a better message than Nix.
    hosts = planfile.load(plan_path).get("hosts")
    if not isinstance(hosts, dict) or host not in hosts:
        known = ", ".join(sorted(hosts)) if isinstance(hosts, dict) and hosts else "none"
        raise InputError(f'{plan_path} has no host "{host}" (hosts: {known})')
