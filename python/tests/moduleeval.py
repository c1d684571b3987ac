"""Evaluating the NixOS module with nixpkgs' real module system and the real
sops-nix module (both from the verified flake-input cache, see pinned.py), through
checks/lib/eval-module.nix: the one place the tests build that evaluation."""

from __future__ import annotations

import subprocess

import nixcore
import pinned
from nixcore import REPO

MODULE = REPO / "modules" / "ibgp-tunnel"
EVAL = REPO / "checks" / "lib" / "eval-module.nix"

needs_inputs = pinned.needs_inputs

# A host on the nftables firewall (the module asserts that backend and never
# switches it itself) whose sops-nix decrypts with an age key file.
HOST = '{ networking.nftables.enable = true; sops.age.keyFile = "/var/lib/sops-nix/key.txt"; }'


def evaluation(*modules: str, with_sops: bool = True) -> str:
    """The Nix expression evaluating ibgp-tunnel's module plus `modules` (Nix sources)."""
    sops = str(pinned.SOPS_MODULE) if with_sops else "null"
    return (
        f"import {EVAL} {{ lib = import {pinned.NIXPKGS_LIB}; sops = {sops}; "
        f"modules = [ {MODULE} {' '.join(f'({m})' for m in modules)} ]; }}"
    )


instantiate = nixcore.instantiate


def eval_module(module: str) -> subprocess.CompletedProcess[str]:
    """Evaluate the module on HOST plus `module`; stdout is
    eval-module.nix's JSON ({failedAssertions, warnings, config})."""
    return instantiate(evaluation(HOST, module))
