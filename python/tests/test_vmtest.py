"""`ibgp-tunnel vmtest`: the nix build it runs, and clear refusals where it cannot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import run

from ibgp_tunnel import vmtest
from ibgp_tunnel.errors import InputError


def test_build_argv_names_the_flake_check() -> None:
    argv = vmtest.build_argv(Path("/src/ibgp-tunnel"), "x86_64-linux")
    assert argv[0] == "nix" and "flakes" in argv[2]
    assert argv[-1] == "/src/ibgp-tunnel#checks.x86_64-linux.vm"
    assert "--print-build-logs" in argv


def test_unknown_machine_is_refused() -> None:
    with pytest.raises(InputError, match="no NixOS VM test for riscv64"):
        vmtest.nix_system("riscv64")


def test_missing_kvm_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmtest.shutil, "which", lambda _: "/usr/bin/nix")
    with pytest.raises(InputError, match="NixOS VM tests need KVM"):
        vmtest.preconditions(kvm=tmp_path / "kvm")


def test_missing_nix_exits_2_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = run("vmtest")
    assert result.exit_code == 2
    assert "nix is not installed" in result.output
    assert "Traceback" not in result.output


def test_no_testscript_command_pipes_into_an_early_exiting_filter() -> None:
    """Both drivers run commands under `set -o pipefail`: `cmd | grep -q X` fails
    with 141 when grep stops at its first match while cmd still writes. The lab
    run of checks.vm lost a subtest to it (`ip route show | grep -q`)."""
    script = (Path(__file__).resolve().parents[2] / "checks" / "vm-test.py").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    early = re.findall(r"\|\s*(?:grep\s+-\w*q|head\b)[^\"'\n]*", code)
    assert early == [], early
