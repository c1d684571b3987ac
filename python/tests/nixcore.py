"""Test helpers that ask the Nix core (modules/lib) for data via nix-instantiate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "modules" / "lib"
EXAMPLE_PLAN = REPO / "hosts" / "plan.toml"
# The example with its DN42 ROAs from ROA files (the example uses RPKI over RTR):
# what the tests about ROA files render. test_dn42_rtr.py keeps it the example's twin.
EXAMPLE_ROA_FILES_PLAN = Path(__file__).resolve().parent / "plans" / "example-roa-files.toml"
THREE_CLIENTS_PLAN = Path(__file__).resolve().parent / "plans" / "three-clients.toml"
TWO_REFLECTORS_PLAN = Path(__file__).resolve().parent / "plans" / "two-reflectors.toml"

needs_nix = pytest.mark.skipif(
    shutil.which("nix-instantiate") is None,
    reason="nix-instantiate is not installed (apt: nix-bin)",
)
needs_bird = pytest.mark.skipif(
    shutil.which("bird") is None, reason="bird is not installed (apt: bird2)"
)
# `nft -c` resolves interface names and so wants a network namespace of its own
# (`unshare --net`): root, as in CI; the package's check runs as a build user.
needs_nft_netns = pytest.mark.skipif(
    shutil.which("nft") is None or shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs nft (apt: nftables) and root (for a network namespace of its own)",
)


def instantiate(expression: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=False,
    )


def nix_eval(expression: str) -> Any:
    """Evaluate a Nix expression strictly and return it as Python data."""
    result = instantiate(expression)
    if result.returncode != 0:
        raise AssertionError(f"nix-instantiate failed:\n{result.stderr}")
    return json.loads(result.stdout)


def nix_eval_error(expression: str) -> str:
    """Evaluate an expression that must fail; return its error text."""
    result = instantiate(expression)
    assert result.returncode != 0, f"expected an evaluation error, got {result.stdout}"
    return result.stderr


def core_call(body: str) -> Any:
    """Evaluate `body` with `core` bound to modules/lib."""
    return nix_eval(f"let core = import {CORE}; in {body}")


def render(plan: Path, host: str) -> dict[str, Any]:
    return core_call(f'core.renderHost {plan} "{host}"')


def spec(plan: Path, host: str) -> dict[str, Any]:
    return core_call(f'core.hostFromPlan (core.readPlan {plan}) "{host}"')


def problems_of(spec_expression: str) -> list[dict[str, str]]:
    return core_call(f"core.problems ({spec_expression})")


def plan_hosts(plan: Path) -> list[str]:
    return sorted(core_call(f"builtins.attrNames (core.readPlan {plan}).hosts"))
