"""`keys` under concurrency and interruption, with real processes, sops and age.

Processes are frozen at named points (checkpoint.py: they SIGSTOP themselves,
the test waits with waitpid(WUNTRACED)), then killed there or let go on: each
case happens at an exact place, with no sleeps standing in for synchronisation.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plandiff import ibgp_only
from sopstools import TEST_KEY, recipient, write_sops_config

from ibgp_tunnel.errors import InputError
from ibgp_tunnel.keys import checkpoint, generate_keys, public_key_of
from ibgp_tunnel.keys.lock import LOCK_NAME
from ibgp_tunnel.keys.sops import decrypt_file
from ibgp_tunnel.keys.transaction import JOURNAL_NAME

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "hosts" / "plan.toml"
HOSTS = ("dmz", "pve")


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.plan = root / "hosts" / "plan.toml"
        self.secrets = root / "secrets"
        self.sops_config = root / ".sops.yaml"

    def keys(self, *rotate: str) -> Any:
        return generate_keys(self.plan, self.secrets, self.sops_config, list(rotate))

    def decrypted(self, host: str) -> dict[str, Any]:
        return decrypt_file(self.secrets / f"{host}.yaml")

    def private_key(self, host: str) -> str:
        return self.decrypted(host)["wg_ibgp"]["private_key"]

    def psk(self, host: str) -> str:
        return self.decrypted(host)["wg_ibgp"]["psk"]["pve"]

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }

    def assert_consistent(self) -> None:
        """Public keys in the plan belong to the stored private keys; one PSK per link."""
        plan = tomllib.loads(self.plan.read_text())
        for host in HOSTS:
            assert plan["hosts"][host]["public_key"] == public_key_of(self.private_key(host))
        assert self.psk("dmz") == self.psk("pve")
        leftovers = [
            p.name
            for p in self.root.rglob(".*")
            if p.name.endswith((".tmp", ".old")) or p.name in (LOCK_NAME, JOURNAL_NAME)
        ]
        assert leftovers == []

    def start(self, *args: str, stop_at: str | None = None) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env.pop(checkpoint.ENV_VAR, None)
        if stop_at is not None:
            env[checkpoint.ENV_VAR] = stop_at
        return subprocess.Popen(
            [sys.executable, "-m", "ibgp_tunnel.cli", "keys", str(self.plan), *args],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def stopped(process: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Wait until ``process`` froze itself at its checkpoint."""
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        process.returncode = os.waitstatus_to_exitcode(status)
        pytest.fail(f"exited ({process.returncode}) before its checkpoint: {process.stderr.read()}")  # type: ignore[union-attr]
    return process


def killed(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    monkeypatch.delenv(checkpoint.ENV_VAR, raising=False)
    root = tmp_path / "project"
    (root / "hosts").mkdir(parents=True)
    (root / "hosts" / "plan.toml").write_bytes(ibgp_only(EXAMPLE.read_bytes()))
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    processes: list[subprocess.Popen[str]] = []
    project = Project(root)
    original_start = project.start

    def tracked(*args: str, stop_at: str | None = None) -> subprocess.Popen[str]:
        process = original_start(*args, stop_at=stop_at)
        processes.append(process)
        return process

    project.start = tracked  # type: ignore[method-assign]
    yield project
    for process in processes:  # never leave a frozen process behind a failed test
        if process.returncode is None:
            process.kill()
            process.wait()


# --- one run at a time -------------------------------------------------------------


def test_a_second_run_gives_up_with_exit_2_while_the_first_holds_the_lock(
    project: Project,
) -> None:
    first = stopped(project.start(stop_at="locked"))
    before = project.snapshot()
    code, _out, err = finished(project.start("--lock-timeout", "0"))
    assert code == 2
    assert err.startswith(f"error: wait for the other `ibgp-tunnel keys` (pid {first.pid})")
    assert "this run changed nothing" in err
    assert project.snapshot() == before
    first.send_signal(signal.SIGCONT)
    assert finished(first)[0] == 0
    project.assert_consistent()


def test_a_second_run_waits_for_the_first_and_both_rotations_land(project: Project) -> None:
    project.keys()
    old_dmz, old_psk = project.private_key("dmz"), project.psk("dmz")
    first = stopped(project.start("--rotate", "host:dmz", stop_at="locked"))
    second = project.start("--rotate", "link:pve", "--lock-timeout", "600")
    assert second.stderr is not None
    waiting = second.stderr.readline()  # printed once it found the lock taken
    assert f"waiting for another `ibgp-tunnel keys` (pid {first.pid})" in waiting
    first.send_signal(signal.SIGCONT)
    assert finished(first)[0] == 0
    code, _out, err = finished(second)
    assert code == 0, err
    # Serialised: the second run decrypted what the first wrote and kept it.
    assert project.private_key("dmz") != old_dmz
    assert project.psk("dmz") != old_psk
    project.assert_consistent()


# --- all files or none ---------------------------------------------------------------


def _rotate_everything(project: Project, stop_at: str) -> subprocess.Popen[str]:
    args = ("--rotate", "host:dmz", "--rotate", "host:pve", "--rotate", "link:pve")
    return stopped(project.start(*args, stop_at=stop_at))


def test_a_rotation_killed_between_renames_is_finished_by_the_next_run(
    project: Project,
) -> None:
    project.keys()
    old = {host: project.private_key(host) for host in HOSTS}
    killed(_rotate_everything(project, "renamed-1"))
    # Killed with dmz.yaml new and pve.yaml and the plan old: inconsistent on disk.
    new_dmz = project.private_key("dmz")
    assert new_dmz != old["dmz"] and project.private_key("pve") == old["pve"]
    assert (project.secrets / JOURNAL_NAME).exists()

    code, out, err = finished(project.start())
    assert code == 0, err
    assert out.startswith("recovered: finished an interrupted run: 2 of its 3 new files")
    assert project.private_key("dmz") == new_dmz  # the killed run's keys, completed
    assert project.private_key("pve") != old["pve"]
    project.assert_consistent()


def test_a_plan_edited_after_the_kill_keeps_the_edit_and_gets_the_new_keys(
    project: Project,
) -> None:
    project.keys()
    killed(_rotate_everything(project, "renamed-1"))
    project.plan.write_text(project.plan.read_text() + "# edited after the kill\n")

    code, out, err = finished(project.start())
    assert code == 0, err
    assert "finished an interrupted run: 1 of its 3 new files" in out
    assert f"kept {project.plan}, changed since" in out
    assert project.plan.read_text().endswith("# edited after the kill\n")
    project.assert_consistent()  # the public keys were written from the new secrets


def test_a_rotation_killed_before_its_journal_commits_is_rolled_back(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    killed(_rotate_everything(project, "staged"))
    temps = sorted(p.name for p in project.root.rglob(".*.tmp"))
    assert len(temps) == 3  # the new files were all written, none renamed

    report = project.keys()
    assert report.recovered.startswith("rolled back an interrupted run: it had replaced 0 of 3")
    assert report.files_written == []
    assert project.snapshot() == before
    project.assert_consistent()


def test_a_committed_rotation_whose_temp_was_lost_is_rolled_back_from_backups(
    project: Project,
) -> None:
    project.keys()
    before = project.snapshot()
    killed(_rotate_everything(project, "renamed-1"))
    # Someone "cleaned up" the temp file of the plan before the rerun.
    (plan_temp,) = project.plan.parent.glob(".plan.toml.*.tmp")
    plan_temp.unlink()

    report = project.keys()
    assert report.recovered.startswith("rolled back an interrupted run: it had replaced 1 of 3")
    assert project.snapshot() == before
    project.assert_consistent()


def test_a_failed_rename_undoes_the_files_already_replaced(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    process = _rotate_everything(project, "staged")
    # The plan's rename comes last; a directory in its place makes it fail after
    # both secrets files were replaced.
    plan_text = project.plan.read_text()
    project.plan.unlink()
    project.plan.mkdir()
    process.send_signal(signal.SIGCONT)
    code, _, err = finished(process)
    assert code == 1
    assert err.startswith("error: check that") and "no file was changed" in err
    project.plan.rmdir()
    project.plan.write_text(plan_text)
    assert project.snapshot() == before
    project.assert_consistent()


# --- symlinks and stale temp files -----------------------------------------------------


def test_symlinked_secrets_and_plan_are_written_through(project: Project) -> None:
    project.keys()
    # A secrets file may point into a directory inside secrets/; the plan anywhere.
    vault = project.secrets / "vault"
    vault.mkdir()
    shutil.move(project.secrets / "dmz.yaml", vault / "dmz.yaml")
    (project.secrets / "dmz.yaml").symlink_to("vault/dmz.yaml")
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    shutil.move(project.plan, elsewhere / "plan.toml")
    project.plan.symlink_to(elsewhere / "plan.toml")
    old = project.private_key("dmz")

    report = project.keys("host:dmz")
    assert report.plan_updated_hosts == ["dmz"]
    assert (project.secrets / "dmz.yaml").is_symlink() and project.plan.is_symlink()
    assert os.readlink(project.secrets / "dmz.yaml") == "vault/dmz.yaml"
    new = decrypt_file(vault / "dmz.yaml")["wg_ibgp"]["private_key"]
    assert new != old and new == project.private_key("dmz")
    plan = tomllib.loads((elsewhere / "plan.toml").read_text())
    assert plan["hosts"]["dmz"]["public_key"] == public_key_of(new)
    assert (vault / "dmz.yaml").stat().st_mode & 0o777 == 0o600
    project.assert_consistent()


@pytest.mark.parametrize("dangling", [False, True], ids=["existing", "dangling"])
def test_a_secrets_file_linked_outside_secrets_is_refused(project: Project, dangling: bool) -> None:
    # A cloned repository can ship secrets/dmz.yaml as a link to any file of yours.
    project.keys()
    outside = project.root.parent / "outside"
    outside.mkdir()
    if not dangling:
        shutil.move(project.secrets / "dmz.yaml", outside / "dmz.yaml")
    else:
        (project.secrets / "dmz.yaml").unlink()
    (project.secrets / "dmz.yaml").symlink_to(outside / "dmz.yaml")
    before, outside_before = project.snapshot(), _tree(outside)
    code, _out, err = finished(project.start("--rotate", "host:dmz"))
    assert code == 2
    assert err.startswith(f"error: make {project.secrets / 'dmz.yaml'} a file inside")
    assert len(err.splitlines()) == 1
    assert project.snapshot() == before and _tree(outside) == outside_before


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_symlink_loop_is_refused_clearly(project: Project) -> None:
    project.keys()
    target = project.secrets / "dmz.yaml"
    target.unlink()
    target.symlink_to("dmz.yaml")
    with pytest.raises(Exception, match=r"dmz\.yaml") as caught:
        project.keys("host:dmz")
    assert "Traceback" not in str(caught.value)


def test_stale_temp_files_are_removed_only_by_the_lock_holder(project: Project) -> None:
    project.keys()
    stale = [
        project.secrets / ".dmz.yaml.k3j4h5g6.tmp",  # an older version's mkstemp name
        project.secrets / ".pve.yaml.ibgp-tunnel-0a1b2c3d.tmp",
        project.secrets / ".pve.yaml.ibgp-tunnel-0a1b2c3d.old",
        project.plan.parent / ".plan.toml.ibgp-tunnel-0a1b2c3d.tmp",
        project.secrets / f"{JOURNAL_NAME}.ibgp-tunnel-0a1b2c3d-commit.tmp",
    ]
    unrelated = [project.secrets / ".notes.txt.tmp", project.secrets / "dmz.yaml.tmp"]
    for path in stale + unrelated:
        path.write_text("half a file")

    first = stopped(project.start(stop_at="locked"))
    assert finished(project.start("--lock-timeout", "0"))[0] == 2
    assert all(path.exists() for path in stale)  # not the lock holder: left alone
    first.send_signal(signal.SIGCONT)
    code, out, _ = finished(first)
    assert code == 0
    assert "recovered: removed 5 temp file(s) a killed run had left" in out
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in unrelated)


def test_temp_files_lock_and_journal_are_git_ignored(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None or not (REPO / ".gitignore").is_file():
        # setup installs git; the Nix package's source has no .gitignore.
        pytest.skip("needs git and the checkout's .gitignore")
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    names = [
        "secrets/.dmz.yaml.ibgp-tunnel-0a1b2c3d.tmp",
        "secrets/.dmz.yaml.ibgp-tunnel-0a1b2c3d.old",
        "secrets/.dmz.yaml.k3j4h5g6.tmp",
        "hosts/.plan.toml.ibgp-tunnel-0a1b2c3d.tmp",
        f"secrets/{LOCK_NAME}",
        f"secrets/{JOURNAL_NAME}",
        f"secrets/{JOURNAL_NAME}.ibgp-tunnel-0a1b2c3d-prepare.tmp",
    ]
    done = subprocess.run(
        [git, "check-ignore", "--no-index", *names], cwd=tmp_path, capture_output=True, text=True
    )
    assert sorted(done.stdout.split()) == sorted(names)
    kept = subprocess.run(
        [git, "check-ignore", "--no-index", "secrets/dmz.yaml", "hosts/plan.toml"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert kept.returncode == 1  # the real files are not ignored


def test_two_secrets_files_linked_to_one_file_are_refused(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    (project.secrets / "pve.yaml").unlink()
    (project.secrets / "pve.yaml").symlink_to("dmz.yaml")
    with pytest.raises(InputError, match=r"make .*dmz\.yaml and .*pve\.yaml separate files"):
        project.keys("link:pve")  # would write both ends' PSK into one file
    del before["secrets/pve.yaml"]
    assert project.snapshot() == before
