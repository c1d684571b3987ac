"""`ibgp-tunnel lab` end to end through the CLI: up twice, status, exec, down twice,
and the machine left exactly as it was found; and, as a careless user or a local
attacker would try it, `up` and `down` on directories the lab did not make."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    USER_LAB_DIR,
    USER_PREFIX,
    clear_test_lab,
    machine_snapshot,
    skip_reason,
)

from ibgp_tunnel.lab import labdir, netns

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
VICTIM_TEXT = "nothing the lab made\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from ibgp_tunnel.cli import app; app()", "lab", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def _its_own_directory_with_a_marker(lab_dir: Path) -> None:
    assert lab_dir.stat().st_mode & 0o777 == 0o700
    marker = lab_dir / labdir.MARKER
    assert marker.is_file() and not marker.is_symlink()
    assert marker.stat().st_mode & 0o777 == 0o600
    data = json.loads(marker.read_text())
    state = json.loads((lab_dir / "state.json").read_text())
    assert data == {"id": state["lab_id"], "prefix": TEST_PREFIX}
    assert len(data["id"]) == 32


def _a_state_that_does_not_match_the_marker_is_refused(lab_dir: Path) -> None:
    """A lab's state.json copied or edited into the directory (another lab's, or one
    naming daemons and namespaces to remove) is not acted on."""
    path = lab_dir / "state.json"
    original = path.read_text()
    state = json.loads(original)
    for field, value in (("lab_id", "0" * 32), ("lab_dir", "/run/elsewhere")):
        path.write_text(json.dumps({**state, field: value}))
        try:
            refused = cli("down")
            assert refused.returncode == 2, (field, refused.stderr)
            assert "does not match the marker" in refused.stderr
            assert set(state["netns"]) <= netns.list_netns()
        finally:
            path.write_text(original)


def test_up_status_exec_down_leave_the_machine_as_found(tmp_path: Path) -> None:
    clear_test_lab()
    before = machine_snapshot()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.conf").write_text(VICTIM_TEXT)
    try:
        first = cli("up", str(EXAMPLE_PLAN))
        assert first.returncode == 0, first.stderr
        assert "Established" in first.stdout
        assert "waiting for BGP sessions" in first.stderr or "Established" in first.stderr
        _its_own_directory_with_a_marker(Path(TEST_LAB_DIR))
        _a_state_that_does_not_match_the_marker_is_refused(Path(TEST_LAB_DIR))
        # Symlinks planted inside the lab's directory are removed, never followed.
        (Path(TEST_LAB_DIR) / "nodes" / "pve" / "planted-dir").symlink_to(victim)
        (Path(TEST_LAB_DIR) / "planted-file").symlink_to(victim / "keep.conf")

        again = cli("up", str(EXAMPLE_PLAN))  # idempotent: nothing rebuilt
        assert again.returncode == 0, again.stderr
        assert "up already" in again.stderr

        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        hosts = {h["name"]: h for h in data["hosts"]}
        assert {"dmz", "pve", "inet", "dn42", "lan-pve"} <= set(hosts)
        assert all(s["info"] == "Established" for s in hosts["pve"]["sessions"])
        assert hosts["pve"]["wireguard"][0]["handshake_age"] is not None

        # Inside a plan host plain `wg` and `birdc` reach that host's daemons.
        wg = cli("exec", "pve", "--", "wg", "show", "wg-ibgp", "endpoints")
        assert wg.returncode == 0 and "203.0.113.10:51821" in wg.stdout, wg.stderr
        bird = cli("exec", "dmz", "--", "birdc", "show", "protocols")
        assert "ibgp_pve" in bird.stdout
        assert cli("exec", "nowhere", "--", "true").returncode != 0
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert "lab removed" in down.stdout
    assert not os.path.lexists(TEST_LAB_DIR)
    assert (victim / "keep.conf").read_text() == VICTIM_TEXT
    second = cli("down")
    assert second.returncode == 0 and "no lab was up" in second.stdout
    assert machine_snapshot() == before


def test_a_lab_the_user_has_up_is_left_alone() -> None:
    """A second lab, started through the CLI's --lab-dir and --prefix, stands in for
    the user's: the tests' lab comes and goes beside it and it keeps running, untouched."""
    user_dir = USER_LAB_DIR
    user = ["--lab-dir", user_dir, "--prefix", USER_PREFIX]
    clear_test_lab()
    try:
        started = cli(*user, "up", str(EXAMPLE_PLAN))
        assert started.returncode == 0, started.stderr
        user_state = Path(user_dir, "state.json").read_text()
        user_status = json.loads(cli(*user, "status", "--json").stdout)
        user_netns = {h["netns"] for h in user_status["hosts"]}

        ours = cli("up", str(EXAMPLE_PLAN))
        assert ours.returncode == 0, ours.stderr
        status = json.loads(cli("status", "--json").stdout)
        our_netns = {h["netns"] for h in status["hosts"]}
        assert not our_netns & user_netns
        assert all(ns.startswith(TEST_PREFIX) for ns in our_netns)
        assert all(ns.startswith(USER_PREFIX) for ns in user_netns)
        assert cli("down").returncode == 0

        assert Path(user_dir, "state.json").read_text() == user_state
        after = json.loads(cli(*user, "status", "--json").stdout)
        assert {h["netns"] for h in after["hosts"]} == user_netns
        assert all(all(h["daemons"].values()) for h in after["hosts"])
        for host in after["hosts"]:
            for session in host.get("sessions", []):
                assert session["info"].startswith("Established"), (host["name"], session)
    finally:
        cli("down")
        cli(*user, "down")


def test_without_root_the_lab_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ibgp_tunnel.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for args in (["up"], ["status"], ["down"], ["exec", "dmz", "--", "true"]):
        result = CliRunner().invoke(app, ["lab", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "needs root" in result.output


# --- directories the lab did not make --------------------------------------------------


def _marker_file(directory: Path) -> Path:
    """A valid marker, as `up` writes it, in a directory of its own."""
    made = directory / "real-lab"
    labdir.create(made, TEST_PREFIX)
    return made / labdir.MARKER


def _plant(root: Path, name: str) -> tuple[Path, Path]:
    """A directory as a careless user or a local attacker may hand to `--lab-dir`,
    and what must survive `lab down` (returned as the path to check)."""
    lab = root / name
    if name == "symlink to a directory":
        target = root / "target"
        target.mkdir()
        (target / "keep.conf").write_text(VICTIM_TEXT)
        lab.symlink_to(target)
        return lab, target / "keep.conf"
    lab.mkdir()
    keep = lab / "keep.conf"
    if name == "empty":
        return lab, lab
    keep.write_text(VICTIM_TEXT)
    marker = lab / labdir.MARKER
    if name == "marker a symlink":
        marker.symlink_to(_marker_file(root))
    elif name == "marker a directory":
        marker.mkdir()
    elif name == "marker a fifo":
        os.mkfifo(marker)
    elif name == "marker not ours":
        marker.write_text('{"prefix": "ldx-"}')
    elif name == "a lab's state without marker":
        (lab / "state.json").write_text(json.dumps({"plan": "p", "lab_dir": str(lab)}))
    elif name in ("writable by others", "owned by a user"):
        shutil.copy(_marker_file(root), marker)
        if name == "writable by others":
            lab.chmod(0o777)
        else:
            os.chown(lab, 1000, 1000)
            os.chown(marker, 1000, 1000)
    return lab, keep


PLANTED = [
    "empty",
    "with files",
    "symlink to a directory",
    "marker a symlink",
    "marker a directory",
    "marker a fifo",
    "marker not ours",
    "a lab's state without marker",
    "writable by others",
    "owned by a user",
]


@pytest.mark.parametrize("name", PLANTED)
def test_down_and_status_refuse_a_directory_up_did_not_make(tmp_path: Path, name: str) -> None:
    lab, keep = _plant(tmp_path, name)
    before = sorted(p.name for p in Path(os.path.realpath(lab)).iterdir())
    for command in ("down", "status"):
        done = cli("--lab-dir", str(lab), command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert f"error: {lab} " in done.stderr and "Traceback" not in done.stderr
    assert os.path.lexists(lab) and os.path.exists(keep)
    assert sorted(p.name for p in Path(os.path.realpath(lab)).iterdir()) == before
    if keep.is_file():
        assert keep.read_text() == VICTIM_TEXT


@pytest.mark.parametrize("name", ["empty", "with files", "symlink to a directory"])
def test_up_refuses_an_existing_directory(tmp_path: Path, name: str) -> None:
    lab, keep = _plant(tmp_path, name)
    prefix = TEST_PREFIX[:-1] + "x-"
    before = sorted(p.name for p in Path(os.path.realpath(lab)).iterdir())
    done = cli("--lab-dir", str(lab), "--prefix", prefix, "up", str(EXAMPLE_PLAN))
    assert done.returncode == 2, done.stderr
    assert f"error: {lab} " in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in Path(os.path.realpath(lab)).iterdir()) == before
    assert os.stat(os.path.realpath(lab)).st_mode & 0o777 != 0o700  # not chmodded
    assert not any(ns.startswith(prefix) for ns in netns.list_netns())
    assert os.path.exists(keep)


def test_a_parent_others_can_write_is_refused(tmp_path: Path) -> None:
    """In a directory others may write (not sticky) they could swap the lab's
    directory for a symlink between the check and the removal."""
    shared = tmp_path / "shared"
    shared.mkdir()
    labdir.create(shared / "lab", TEST_PREFIX)
    shared.chmod(0o777)
    for lab, args in (
        (shared / "new", ("up", str(EXAMPLE_PLAN))),
        (shared / "lab", ("up", str(EXAMPLE_PLAN))),
        (shared / "lab", ("down",)),
    ):
        done = cli("--lab-dir", str(lab), *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "may be changed by users other than root" in done.stderr
    assert [p.name for p in shared.iterdir()] == ["lab"]
    assert (shared / "lab" / labdir.MARKER).is_file()


def test_down_removes_what_an_interrupted_up_left(tmp_path: Path) -> None:
    """The marker and nothing else (`up` stopped right after making its directory):
    `down` removes it, and a symlink inside is removed, not followed."""
    keep = tmp_path / "keep.conf"
    keep.write_text(VICTIM_TEXT)
    lab = tmp_path / "lab"
    labdir.create(lab, TEST_PREFIX)
    (lab / "planted").symlink_to(keep)
    done = cli("--lab-dir", str(lab), "down")
    assert done.returncode == 0 and "no lab was up" in done.stdout, done.stderr
    assert not os.path.lexists(lab) and keep.read_text() == VICTIM_TEXT


def test_the_directory_is_checked_again_right_before_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker is swapped for a symlink between `down`'s first look and the
    removal: the removal looks again and refuses."""
    lab = tmp_path / "lab"
    expected = labdir.create(lab, TEST_PREFIX)
    other = _marker_file(tmp_path)
    real: Callable[[Path], labdir.Marker | None] = labdir.marker_of

    def swap_then_look(path: Path) -> labdir.Marker | None:
        (lab / labdir.MARKER).unlink()
        (lab / labdir.MARKER).symlink_to(other)
        return real(path)

    monkeypatch.setattr(labdir, "marker_of", swap_then_look)
    with pytest.raises(labdir.ForeignDirError, match="no plain file"):
        labdir.remove(lab, expected)
    assert (lab / labdir.MARKER).is_symlink() and other.is_file()
