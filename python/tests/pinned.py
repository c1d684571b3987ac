"""Where the module-evaluation tests find the real NixOS module system and the
real sops-nix module: the verified cache of pinned flake inputs outside the
repository (ibgp_tunnel.flake_inputs; `scripts/flake-inputs add NAME PATH`
fills it), checked against flake.lock once per test session. Where the cache
lacks an input, or holds an altered one, those tests skip and name the command;
in CI that skip is a failure (see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibgp_tunnel import flake_inputs
from ibgp_tunnel.errors import IbgpTunnelError

REPO = Path(__file__).resolve().parents[2]


def _tree(name: str) -> tuple[Path | None, str]:
    try:
        return flake_inputs.verified_tree(REPO, name), ""
    except IbgpTunnelError as error:
        return None, str(error)


_LIB_TREE, _LIB_PROBLEM = _tree("nixpkgs-lib")
_SOPS_TREE, _SOPS_PROBLEM = _tree("sops-nix")
# Paths stay well-formed when an input is missing; tests using them are skipped.
_MISSING = flake_inputs.cache_dir() / "missing"
NIXPKGS_LIB = (_LIB_TREE or _MISSING) / "lib"
SOPS_NIX = _SOPS_TREE or _MISSING
SOPS_MODULE = SOPS_NIX / "modules" / "sops"

# The reason names the command, which conftest.py fails in CI.
MISSING_REASON = "; ".join(problem for problem in (_LIB_PROBLEM, _SOPS_PROBLEM) if problem)


def present() -> bool:
    return _LIB_TREE is not None and _SOPS_TREE is not None


needs_inputs = pytest.mark.skipif(not present(), reason=MISSING_REASON)
