"""Where the module-evaluation tests find the real NixOS module system and the
real sops-nix module: unmodified snapshots in ../shared/vendor beside the
repository (see its README), never copies inside it. Where ../shared is absent
(a user's clone) those tests skip and say so; in CI that skip is a failure
(see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO.parent / "shared" / "vendor"
NIXPKGS_LIB = VENDOR / "nixpkgs-lib" / "lib"
SOPS_NIX = VENDOR / "sops-nix"
SOPS_MODULE = SOPS_NIX / "modules" / "sops"

# The skip reason names ../shared/vendor: conftest.py fails it in CI.
MISSING_REASON = (
    f"../shared/vendor (nixpkgs' lib and sops-nix, see its README) is not beside the "
    f"repository: {VENDOR} has no nixpkgs-lib/lib/default.nix or sops-nix/modules/sops"
)


def present() -> bool:
    return (NIXPKGS_LIB / "default.nix").is_file() and (SOPS_MODULE / "default.nix").is_file()


needs_vendor = pytest.mark.skipif(not present(), reason=MISSING_REASON)
