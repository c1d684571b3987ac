"""`keys` in a cloned repository an attacker filled (issue 19), with real sops and age.

Every attack runs the real CLI in a process, and every test asserts that the
attacker's targets outside the project are unchanged and that nothing in the
project changed either: the planted file is left for the user to inspect.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import EXAMPLE_PLAN, run
from plandiff import ibgp_only
from sopstools import TEST_KEY, recipient, write_sops_config
from test_keys_interrupted import Project

from ibgp_tunnel import keys, planfile
from ibgp_tunnel.errors import InputError
from ibgp_tunnel.keys import checkpoint, transaction
from ibgp_tunnel.keys.lock import LOCK_NAME
from ibgp_tunnel.keys.transaction import JOURNAL_NAME

TIMEOUT = 120  # seconds; a FIFO that blocks a run fails the test instead of hanging it


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    monkeypatch.delenv(checkpoint.ENV_VAR, raising=False)
    root = tmp_path / "project"
    (root / "hosts").mkdir(parents=True)
    (root / "hosts" / "plan.toml").write_bytes(ibgp_only(EXAMPLE_PLAN.read_bytes()))
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    (tmp_path / "outside").mkdir()
    return Project(root)


def tree(root: Path) -> dict[str, tuple[str, bytes]]:
    """Everything under ``root`` without following links: kind and content."""
    found: dict[str, tuple[str, bytes]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[path] = ("link", os.readlink(path).encode())
            elif stat.S_ISREG(mode):
                found[path] = ("file", Path(path).read_bytes())
            else:
                found[path] = ("dir" if stat.S_ISDIR(mode) else "special", b"")
    return found


def world(project: Project) -> dict[str, tuple[str, bytes]]:
    """The project and the attacker's targets beside it (not HOME: sops may use it)."""
    return {**tree(project.root), **tree(project.root.parent / "outside")}


def keys_cli(project: Project, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != checkpoint.ENV_VAR}
    done = subprocess.run(
        [sys.executable, "-m", "ibgp_tunnel.cli", "keys", str(project.plan), *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- a planted journal -------------------------------------------------------------


def _entry(target: Path | str, temp: Path | str, data: bytes, **extra: Any) -> dict[str, Any]:
    entry = {
        "target": str(target),
        "temp": str(temp),
        "backup": None,
        "sha256": sha(data),
        "old_sha256": None,
        "mode": 0o600,
    }
    return {**entry, **extra}


def _plant_journal(project: Project, body: Any) -> Path:
    journal = project.secrets / JOURNAL_NAME
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    journal.write_bytes(text.encode() if isinstance(text, str) else text)
    return journal


def _assert_refused(project: Project, journal: Path, before: dict[str, Any]) -> None:
    code, _out, err = keys_cli(project)
    assert code == 2, err
    first, second = err.splitlines()
    assert first.startswith(f"error: inspect {journal} and remove it, then run again: ")
    assert second == "Nothing was moved or deleted."
    assert os.path.lexists(journal)  # left for the user to look at
    assert world(project) == before


def test_the_journal_of_the_report_moves_and_deletes_nothing(project: Project) -> None:
    # Issue 19 as reported: a commit journal whose "temp" is the attacker's file
    # and whose "target" is outside the project, and one whose "temp" is a file
    # of the user's to delete. The old code finished it and exited 0.
    project.keys()
    outside = project.root.parent / "outside"
    payload = project.secrets / "payload"
    payload.write_bytes(b"#!/bin/sh\necho owned\n")
    victim = outside / "precious"
    victim.write_bytes(b"the user's file\n")
    dmz = (project.secrets / "dmz.yaml").read_bytes()
    journal = _plant_journal(
        project,
        {
            "state": "commit",
            "pid": 1,
            "entries": [
                _entry(outside / "autostart.sh", payload, payload.read_bytes(), mode=0o755),
                _entry(project.secrets / "dmz.yaml", victim, dmz),
            ],
        },
    )
    before = world(project)
    _assert_refused(project, journal, before)
    assert not (outside / "autostart.sh").exists() and victim.exists()


def _outside_cases(project: Project) -> dict[str, Any]:
    """Journals that name a path `keys` never writes, each otherwise well formed."""
    secrets, outside = project.secrets, project.root.parent / "outside"
    real = secrets.resolve()
    (outside / "victim").write_bytes(b"victim\n")
    (secrets / "sub").symlink_to(outside)
    (secrets / "link.yaml").symlink_to(outside / "victim")
    victim = b"victim\n"

    def journal(target: Path | str, **extra: Any) -> dict[str, Any]:
        name = Path(target).name
        temp = f"{Path(target).parent}/.{name}.ibgp-tunnel-0a1b2c3d.tmp"
        return {"state": "prepare", "pid": 1, "entries": [_entry(target, temp, victim, **extra)]}

    return {
        "target outside": journal(outside / "victim"),
        "dot-dot": journal(f"{real}/../../outside/victim"),
        "symlinked directory": journal(real / "sub" / "victim"),
        "symlinked file": journal(real / "link.yaml"),
        "the lock": journal(real / LOCK_NAME),
        "temp outside": {
            "state": "prepare",
            "pid": 1,
            "entries": [_entry(real / "dmz.yaml", outside / "victim", victim)],
        },
        "backup outside": journal(real / "dmz.yaml", backup=str(outside / "victim")),
        "two runs": {
            "state": "prepare",
            "pid": 1,
            "entries": [
                _entry(real / "a.yaml", real / ".a.yaml.ibgp-tunnel-0a1b2c3d.tmp", victim),
                _entry(real / "b.yaml", real / ".b.yaml.ibgp-tunnel-ffffffff.tmp", victim),
            ],
        },
    }


OUTSIDE = [
    "target outside",
    "dot-dot",
    "symlinked directory",
    "symlinked file",
    "the lock",
    "temp outside",
    "backup outside",
    "two runs",
]


@pytest.mark.parametrize("case", OUTSIDE)
def test_a_journal_naming_paths_outside_secrets_is_refused(project: Project, case: str) -> None:
    project.keys()
    journal = _plant_journal(project, _outside_cases(project)[case])
    _assert_refused(project, journal, world(project))


GOOD_ENTRY = {
    "target": "T",
    "temp": "T",
    "backup": None,
    "sha256": "0" * 64,
    "old_sha256": None,
    "mode": 384,
}
MALFORMED: dict[str, Any] = {
    "not JSON": "{not json",
    "not UTF-8": b"\xff\xfe{}",
    "a list": [],
    "nested too deeply": "[" * 100_000 + "]" * 100_000,
    "no entries": {"state": "prepare", "pid": 1, "entries": []},
    "unknown state": {"state": "done", "pid": 1, "entries": [GOOD_ENTRY]},
    "unknown field": {"state": "prepare", "pid": 1, "entries": [GOOD_ENTRY], "x": 1},
    "missing field": {"state": "prepare", "pid": 1},
    "pid is a boolean": {"state": "prepare", "pid": True, "entries": [GOOD_ENTRY]},
    "entry not a table": {"state": "prepare", "pid": 1, "entries": ["x"]},
    "entry with an extra field": {
        "state": "prepare",
        "pid": 1,
        "entries": [{**GOOD_ENTRY, "x": 1}],
    },
    "mode a string": {"state": "prepare", "pid": 1, "entries": [{**GOOD_ENTRY, "mode": "600"}]},
    "target a number": {"state": "prepare", "pid": 1, "entries": [{**GOOD_ENTRY, "target": 7}]},
    "digest not hex": {"state": "prepare", "pid": 1, "entries": [{**GOOD_ENTRY, "sha256": "z"}]},
}


def _well_formed(project: Project, body: Any) -> Any:
    """Put a real target and temp into the entries, so only the broken part is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
        return body
    target = project.secrets.resolve() / "dmz.yaml"
    temp = f"{target.parent}/.dmz.yaml.ibgp-tunnel-0a1b2c3d.tmp"
    fixed = []
    for entry in body["entries"]:
        if isinstance(entry, dict):
            entry = {**entry}
            entry["target"] = str(target) if entry.get("target") == "T" else entry["target"]
            entry["temp"] = temp if entry.get("temp") == "T" else entry["temp"]
        fixed.append(entry)
    return {**body, "entries": fixed}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_journal_is_refused_and_kept(project: Project, case: str) -> None:
    project.keys()
    journal = _plant_journal(project, _well_formed(project, MALFORMED[case]))
    _assert_refused(project, journal, world(project))


def test_a_well_formed_journal_of_this_project_is_still_finished(project: Project) -> None:
    # The rule refuses what keys never writes, not every journal: control case.
    project.keys()
    target = project.secrets.resolve() / "dmz.yaml"
    temp = target.parent / ".dmz.yaml.ibgp-tunnel-0a1b2c3d.tmp"
    temp.write_bytes(b"x")
    old = target.read_bytes()
    _plant_journal(
        project,
        {
            "state": "prepare",
            "pid": 1,
            "entries": [_entry(target, temp, b"x", old_sha256=sha(old))],
        },
    )
    code, out, err = keys_cli(project)
    assert code == 0, err
    assert "rolled back an interrupted run" in out
    assert target.read_bytes() == old and not temp.exists()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_journal_that_is_not_a_plain_file_is_refused(project: Project, kind: str) -> None:
    project.keys()
    outside = project.root.parent / "outside"
    journal = project.secrets / JOURNAL_NAME
    if kind == "symlink":
        real = outside / "journal"
        real.write_text(json.dumps({"state": "prepare", "pid": 1, "entries": []}))
        journal.symlink_to(real)
    else:
        os.mkfifo(journal)
    _assert_refused(project, journal, world(project))


# --- the lock file ---------------------------------------------------------------


def _assert_lock_refused(project: Project, lock: Path, what: str) -> None:
    before = world(project)
    code, _out, err = keys_cli(project)
    assert code == 2, err
    assert err == (
        f"error: inspect and remove {lock}: the lock file is {what}, so `keys` does not "
        "use it; nothing was changed.\n"
    )
    assert world(project) == before


def test_a_lock_file_linked_to_authorized_keys_is_not_truncated(project: Project) -> None:
    project.keys()
    authorized = project.root.parent / "outside" / "authorized_keys"
    authorized.write_text("ssh-ed25519 AAAA... user@host\n")
    lock = project.secrets / LOCK_NAME
    lock.symlink_to(authorized)
    _assert_lock_refused(project, lock, "a symbolic link")
    assert authorized.read_text() == "ssh-ed25519 AAAA... user@host\n"


def test_a_dangling_lock_link_creates_nothing(project: Project) -> None:
    project.secrets.mkdir()
    target = project.root.parent / "outside" / "created-by-keys"
    lock = project.secrets / LOCK_NAME
    lock.symlink_to(target)
    _assert_lock_refused(project, lock, "a symbolic link")
    assert not os.path.lexists(target)


def test_a_fifo_lock_file_is_refused_without_blocking(project: Project) -> None:
    project.secrets.mkdir()
    lock = project.secrets / LOCK_NAME
    os.mkfifo(lock)
    _assert_lock_refused(project, lock, "not a regular file (a FIFO, socket, device or directory)")


def test_a_hard_linked_lock_file_is_refused(project: Project) -> None:
    project.keys()
    other = project.root.parent / "outside" / "other"
    other.write_text("someone else's\n")
    os.link(other, project.secrets / LOCK_NAME)
    _assert_lock_refused(
        project,
        project.secrets / LOCK_NAME,
        "a file with 2 hard links (writing it would change the others)",
    )


def test_a_directory_as_lock_file_is_refused(project: Project) -> None:
    (project.secrets / LOCK_NAME).mkdir(parents=True)
    _assert_lock_refused(project, project.secrets / LOCK_NAME, "a directory")


# --- names that would become paths --------------------------------------------------


def _renamed(plan: str, old: str, new: str) -> str:
    # Host pve becomes `new` everywhere it is named (its table and its link's end).
    quoted = json.dumps(new)
    return plan.replace("[hosts.pve]", f"[hosts.{quoted}]").replace(
        'client = "pve"', f"client = {quoted}"
    )


@pytest.mark.parametrize("name", ["../../outside/evil", "a/b", ".hidden", "x\u0000y", "-x"])
def test_a_host_name_that_is_no_file_name_writes_nothing(project: Project, name: str) -> None:
    project.plan.write_text(_renamed(project.plan.read_text(), "pve", name))
    before = world(project)
    code, _out, err = keys_cli(project)
    assert code == 2, err
    first, second = err.splitlines()
    assert first == (
        f"error: fix {project.plan} so that `ibgp-tunnel check` passes; `keys` changed nothing."
    )
    # The core's words, as `check` prints them.
    checked = run("check", project.plan).stdout.splitlines()
    assert re.sub(r" \(and \d+ more\)$", "", second) in checked
    assert world(project) == before


def test_the_writer_keeps_secrets_files_inside_secrets_without_the_check(tmp_path: Path) -> None:
    # The second line of defence, for a caller that skipped the plan check.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    with pytest.raises(keys.KeysError, match="a file inside"):
        keys.generate._secrets_files(secrets, ["../evil"])
    with pytest.raises(InputError, match="a file inside"):
        transaction.replace_all(secrets, [transaction.NewFile(tmp_path / "evil.yaml", b"x")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets"]
    assert list(secrets.iterdir()) == []


# --- plans that used to crash or hang the reader ------------------------------------

DEEP = {
    "arrays": "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "inline tables": "a = " + "{b = " * 100_000 + "1" + "}" * 100_000 + "\n",
    "tables": "[" + ".".join(["a"] * 200) + "]\n",
    "array of tables": "".join(f"[[{'.'.join(['t'] * n)}]]\n" for n in range(1, 60)),
}


@pytest.mark.parametrize("shape", DEEP)
@pytest.mark.parametrize("command", ["check", "render", "keys", "doctor"])
def test_a_deeply_nested_plan_exits_2(tmp_path: Path, shape: str, command: str) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(DEEP[shape])
    args = {
        "check": [plan],
        "render": [plan, "dmz"],
        "keys": [plan, "--secrets-dir", tmp_path / "secrets"],
        "doctor": [plan, "--host", "dmz"],
    }[command]
    result = run(command, *args)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {plan}: the plan nests too deeply (tables or arrays more than "
        f"{planfile.MAX_DEPTH} levels deep); no plan needs that, fix the file\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.toml"]


def test_the_lab_reads_plans_through_the_same_reader(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(DEEP["arrays"])
    with pytest.raises(planfile.PlanDepthError):
        planfile.load(plan)


def test_the_deepest_valid_plan_is_far_from_the_limit() -> None:
    assert planfile.depth(planfile.load(EXAMPLE_PLAN)) * 4 < planfile.MAX_DEPTH


@pytest.mark.parametrize("command", ["check", "render", "keys", "doctor"])
def test_a_fifo_as_plan_exits_2_without_blocking(tmp_path: Path, command: str) -> None:
    plan = tmp_path / "plan.toml"
    os.mkfifo(plan)
    args = {"render": ["dmz"], "keys": ["--secrets-dir", str(tmp_path / "s")]}.get(command, [])
    if command == "doctor":
        args = ["--host", "dmz"]
    done = subprocess.run(
        [sys.executable, "-m", "ibgp_tunnel.cli", command, str(plan), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"error: replace {plan} with the plan file: it is a FIFO, not a regular file\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.toml"]


def test_a_fifo_as_secrets_file_is_refused_without_blocking(project: Project) -> None:
    project.secrets.mkdir()
    os.mkfifo(project.secrets / "dmz.yaml")
    before = world(project)
    code, _out, err = keys_cli(project)
    assert code == 2
    assert err.startswith(f"error: replace {project.secrets / 'dmz.yaml'} with its sops file")
    assert world(project) == before


# --- a full disk --------------------------------------------------------------------

PAGE = 4096


@pytest.fixture
def small_disk(project: Project) -> Iterator[Project]:
    """The project on a 64 KiB tmpfs of its own (root only: CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    saved = project.root.parent / "saved"
    shutil.move(project.root, saved)
    project.root.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(project.root)],
        check=True,
    )
    try:
        for item in saved.iterdir():
            shutil.move(item, project.root / item.name)
        yield project
    finally:
        subprocess.run(["umount", "-l", str(project.root)], check=False)


def _fill(directory: Path, leave_pages: int) -> None:
    """Fill the file system, then free ``leave_pages`` pages of it."""
    directory.mkdir()
    pages = []
    while True:
        page = directory / f"page{len(pages)}"
        try:
            page.write_bytes(b"x" * PAGE)
        except OSError:
            page.unlink(missing_ok=True)
            break
        pages.append(page)
    for page in pages[:leave_pages]:
        page.unlink()


# A rotation writes, a page each, the lock, the journal, three new files and the
# journal again: with 0..5 pages free it runs out at each of those in turn.
RUNS_OUT_AT = [
    f"secrets/{LOCK_NAME}",
    f"secrets/{JOURNAL_NAME}",
    "secrets/dmz.yaml",
    "secrets/pve.yaml",
    "hosts/plan.toml",
    f"secrets/{JOURNAL_NAME}",
]


@pytest.mark.parametrize("free", range(len(RUNS_OUT_AT)))
def test_a_full_disk_changes_nothing_and_exits_2(small_disk: Project, free: int) -> None:
    project = small_disk
    project.keys()
    _fill(project.root / "filler", free)
    before = {k: v for k, v in world(project).items() if "/filler" not in k}
    code, _out, err = keys_cli(project, "--rotate", "host:dmz", "--rotate", "link:pve")
    assert code == 2, err
    assert err.startswith("error: free space "), err
    assert (
        f"cannot write {'the lock file ' if free == 0 else ''}{project.root / RUNS_OUT_AT[free]} ("
        in err
    )
    assert "No space left on device" in err and len(err.splitlines()) <= 2
    after = {k: v for k, v in world(project).items() if "/filler" not in k}
    assert after == before  # no key overwritten, no temp, backup, journal or lock left


def test_a_full_disk_at_the_lock_names_the_lock_file(small_disk: Project) -> None:
    project = small_disk
    project.keys()
    _fill(project.root / "filler", 0)
    code, _out, err = keys_cli(project)
    lock = project.secrets / LOCK_NAME
    assert code == 2
    assert err == (
        f"error: free space in {project.secrets}: cannot write the lock file {lock} "
        "(No space left on device); nothing was changed.\n"
    )
    assert not os.path.lexists(lock)
