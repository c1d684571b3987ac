"""Evaluating the NixOS module with nixpkgs' real module system, for the core's
tests (corpus agreement, injection). The one place these tests build the
evaluation: nixpkgs' lib comes from ../shared/vendor beside the repository
(as in CI), through checks/lib/eval-module.nix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO.parent / "shared" / "vendor"
NIXPKGS_LIB = VENDOR / "nixpkgs-lib"
MODULE = REPO / "modules" / "ibgp-tunnel"
EVAL = REPO / "checks" / "lib" / "eval-module.nix"

needs_vendor = pytest.mark.skipif(
    not (NIXPKGS_LIB / "lib" / "default.nix").is_file(),
    reason=f"{NIXPKGS_LIB} is absent: the module is evaluated with the vendored nixpkgs lib "
    "in ../shared/vendor beside the repository",
)

# No pkgs here: a store path stands in for the BIRD package.
_MACHINE = (
    '{ config.services.bird.package = "/nix/store/00000000000000000000000000000000-bird-3.1.4"; }'
)


def eval_module(module: str) -> subprocess.CompletedProcess[str]:
    """Evaluate ibgp-tunnel's module plus `module` (Nix source of one module);
    stdout is eval-module.nix's JSON ({failedAssertions, warnings, config})."""
    expression = (
        f"import {EVAL} {{ lib = import {NIXPKGS_LIB}/lib; "
        f"modules = [ {MODULE} ({_MACHINE}) ({module}) ]; }}"
    )
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=False,
    )
