"""Run the flake's NixOS VM test (checks.<system>.vm) where Nix and KVM allow it.

The VM test needs a Nix with flakes that can fetch nixpkgs (or has it cached)
and /dev/kvm; where either is missing it says so instead of failing deep
inside a build.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from ibgp_tunnel.errors import IbgpTunnelError, InputError

NIX_FEATURES = "nix-command flakes"
SYSTEMS = {"x86_64": "x86_64-linux", "aarch64": "aarch64-linux"}


class VmTestFailed(IbgpTunnelError):
    """The VM test ran and failed (exit 1)."""


def nix_system(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    if machine not in SYSTEMS:
        raise InputError(f"no NixOS VM test for {machine}: the flake's checks cover x86_64-linux")
    return SYSTEMS[machine]


def build_argv(flake: Path, system: str, check: str = "vm") -> list[str]:
    """`nix build` of one check, with its log streamed (-L) as progress."""
    return [
        "nix",
        "--extra-experimental-features",
        NIX_FEATURES,
        "build",
        "--no-link",
        "--print-build-logs",
        f"{flake}#checks.{system}.{check}",
    ]


def preconditions(kvm: Path = Path("/dev/kvm")) -> None:
    """Raise InputError naming what is missing for a VM test."""
    if shutil.which("nix") is None:
        raise InputError(
            "nix is not installed: the NixOS VM test needs Nix with flakes "
            "(the namespace lab, `ibgp-tunnel lab up`, needs no Nix store)"
        )
    if not kvm.exists() or not os.access(kvm, os.R_OK | os.W_OK):
        raise InputError(
            f"{kvm} is missing or not accessible: NixOS VM tests need KVM "
            "(add yourself to the kvm group, or use the namespace lab)"
        )


def run_vm_test(flake: Path, check: str = "vm") -> None:
    """Build checks.<system>.<check>; VmTestFailed if Nix reports a failure."""
    preconditions()
    argv = build_argv(flake.resolve(), nix_system(), check)
    if subprocess.run(argv, check=False).returncode != 0:
        raise VmTestFailed(
            f"the VM test {check} failed (see the log above); rerun: {' '.join(argv)}"
        )
