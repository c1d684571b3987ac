"""The plan and the rendered artifacts the lab consumes (docs/interfaces.md §3)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from ibgp_tunnel.lab.errors import LabError


def load_plan(plan_path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(plan_path.read_text())
    except FileNotFoundError:
        raise LabError(f"no plan at {plan_path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LabError(f"{plan_path} is not valid TOML: {exc}") from exc


def _nix_render(plan_path: Path, hosts: list[str]) -> dict[str, dict[str, Any]]:
    # Used until/unless ibgp_tunnel.render is importable: one nix-instantiate for all hosts.
    from ibgp_tunnel.paths import core_file

    names = " ".join(json.dumps(h) for h in hosts)
    expr = (
        f"let lib = import {core_file()}; in builtins.listToAttrs (map (name: "
        f"{{ inherit name; value = lib.renderHost {plan_path.resolve()} name; }}) [ {names} ])"
    )
    try:
        proc = subprocess.run(
            ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError:
        raise LabError(
            "nix-instantiate is not installed; the lab renders through the Nix core"
        ) from None
    if proc.returncode != 0:
        raise LabError(f"rendering {plan_path} failed:\n{proc.stderr.strip()}")
    return dict(json.loads(proc.stdout))


def render_plan(plan_path: Path, plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Artifacts for every host of the plan, keyed by host name."""
    hosts = list(plan.get("hosts", {}))
    try:
        from ibgp_tunnel.render import render_host  # type: ignore[attr-defined]
    except ImportError:
        return _nix_render(plan_path, hosts)
    return {host: render_host(plan_path, host) for host in hosts}
