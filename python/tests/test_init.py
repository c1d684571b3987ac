"""`ibgp-tunnel init`: a plan that passes `check`, a .sops.yaml sops accepts, no clobbering."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run
from sopstools import needs_sops_and_age, sops_executable

from ibgp_tunnel.errors import InputError
from ibgp_tunnel.newfile import write_new
from ibgp_tunnel.paths import defaults
from ibgp_tunnel.scaffold import AGE_PLACEHOLDER, plan_text

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


@needs_sops_and_age
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
        [
            str(sops_executable()),
            "encrypt",
            "--filename-override",
            "secrets/vps.yaml",
            "/dev/stdin",
        ],
        input="a: b\n",
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(key)},
    )
    assert encrypted.returncode == 0, encrypted.stderr
    assert recipient in encrypted.stdout


def _steps(output: str) -> list[str]:
    lines = output.splitlines()
    start = lines.index("next:")
    return [line.strip() for line in lines[start + 1 :]]


@pytest.mark.skipif(shutil.which("git") is None, reason="git missing")
def test_init_says_to_track_the_files_and_the_new_secrets(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    steps = _steps(run("init", outside).stdout)
    why = "(a flake sees only the files git tracks)"
    assert steps[0] == f"1. in {outside}: git init && git add -A  {why}"
    keys = next(step for step in steps if "ibgp-tunnel keys" in step)
    assert f"then git add secrets {outside / 'hosts' / 'plan.toml'}" in keys
    # Inside a repository there is nothing to init.
    inside = tmp_path / "repo"
    inside.mkdir()
    subprocess.run(["git", "init", "-q", str(inside)], check=True)
    steps = _steps(run("init", inside / "net").stdout)
    assert steps[0] == f"1. in {inside / 'net'}: git add -A  {why}"


def test_init_points_at_the_line_that_sets_the_flake_url(tmp_path: Path) -> None:
    result = run("init", tmp_path, "--age-recipient", RECIPIENT)
    (step,) = [s for s in _steps(result.stdout) if "input's url" in s]
    found = re.search(r"in (\S+) line (\d+) \((.*)\) to where", step)
    assert found, step
    path, number, quoted = Path(found[1]), int(found[2]), found[3]
    assert path == tmp_path / "flake.nix"
    line = path.read_text().splitlines()[number - 1]
    # The very line init names, in the file it wrote: the ibgp-tunnel input's url.
    assert line.strip() == quoted
    assert re.fullmatch(r'url = "github:REPLACE-ME/ibgp-tunnel";', quoted)
    assert "ibgp-tunnel = {" in path.read_text().splitlines()[number - 3]
    assert not any("age recipients into" in s for s in _steps(result.stdout))
