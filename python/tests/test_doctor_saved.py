"""Doctor's saved outputs as an attacker or a careless user meets them:
`--save-outputs` never writes through a path someone planted, and `--from-outputs`
turns any malformed recording into exit 2 naming the file and the field, never a
traceback, and never prints a terminal escape sequence it read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.sanitize import clean
from ibgp_tunnel.errors import InputError

DATA = Path(__file__).resolve().parent / "data" / "doctor"
HEALTHY = DATA / "bird-3.1.8" / "healthy"
BROKEN = DATA / "bird-3.1.8" / "wrong-peer-asn"
EXAMPLE_PLAN = Path(__file__).resolve().parents[2] / "hosts" / "plan.toml"
VICTIM_TEXT = "the victim's own content\n"


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ibgp_tunnel.cli", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _from(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _doctor(str(EXAMPLE_PLAN), "--host", "pve", "--from-outputs", str(directory), *extra)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim" / "important.conf"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


# --- --save-outputs --------------------------------------------------------------------


def test_save_refuses_an_existing_directory_with_a_planted_symlink(
    tmp_path: Path, victim: Path
) -> None:
    planted = tmp_path / "outputs"
    planted.mkdir()
    (planted / "wg.txt").symlink_to(victim)
    (planted / "snapshot.json").symlink_to(victim)
    done = _from(HEALTHY / "pve", "--save-outputs", str(planted))
    assert done.returncode == 2, done.stderr
    assert f"{planted} exists already" in done.stderr and "Traceback" not in done.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert sorted(p.name for p in planted.iterdir()) == ["snapshot.json", "wg.txt"]


@pytest.mark.parametrize("kind", ["empty", "symlink to a directory", "dangling symlink"])
def test_save_refuses_any_existing_path(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "elsewhere"
    path = tmp_path / "outputs"
    if kind == "empty":
        path.mkdir()
    else:
        if kind == "symlink to a directory":
            target.mkdir()
        path.symlink_to(target)
    done = _from(HEALTHY / "pve", "--save-outputs", str(path))
    assert done.returncode == 2 and "exists already" in done.stderr, done.stderr
    assert not target.exists() or list(target.iterdir()) == []


def test_save_race_a_symlink_planted_after_the_check(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path appears between doctor's check and its mkdir: the mkdir fails."""
    snapshot = saved.load(HEALTHY / "pve")
    path = tmp_path / "outputs"
    monkeypatch.setattr(saved, "require_new_directory", lambda _: path.symlink_to(victim.parent))
    with pytest.raises(InputError, match="exists already"):
        saved.save(snapshot, path)
    assert [p.name for p in victim.parent.iterdir()] == ["important.conf"]
    assert victim.read_text() == VICTIM_TEXT


def test_save_race_a_symlink_planted_inside_after_the_mkdir(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who can write the new directory plants a file's name as a symlink
    right after doctor made it: O_EXCL|O_NOFOLLOW refuses it, the target is untouched."""
    snapshot = saved.load(HEALTHY / "pve")
    path = tmp_path / "outputs"
    real_mkdir = os.mkdir

    def mkdir_then_plant(where: Any, mode: int = 0o777) -> None:
        real_mkdir(where, mode)
        if Path(where) == path:
            (path / "wg.txt").symlink_to(victim)

    monkeypatch.setattr(os, "mkdir", mkdir_then_plant)
    with pytest.raises(InputError, match=r"wg\.txt appeared while doctor was writing"):
        saved.save(snapshot, path)
    assert victim.read_text() == VICTIM_TEXT


def test_save_makes_a_private_directory_and_round_trips(tmp_path: Path) -> None:
    snapshot = saved.load(HEALTHY / "pve")
    path = tmp_path / "new" / "outputs"
    saved.save(snapshot, path)
    assert path.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in path.iterdir()} == {0o600}
    assert saved.load(path) == snapshot
    with pytest.raises(InputError, match="exists already"):
        saved.save(snapshot, path)


# The tools doctor reads a live host with; the package's build has none of them
# but wg (its check inputs), and says so rather than failing.
_LIVE_TOOLS_MISSING = [tool for tool in ("ip", "nft", "wg") if shutil.which(tool) is None]


@pytest.mark.skipif(
    bool(_LIVE_TOOLS_MISSING),
    reason=f"{', '.join(_LIVE_TOOLS_MISSING)} is not installed (apt: iproute2, nftables)",
)
def test_live_run_saves_into_the_directory_it_creates(tmp_path: Path) -> None:
    """A real doctor run on this machine (its own wg, ip, nft; no BIRD here, so
    checks fail) writes every tool's output into the new directory."""
    path = tmp_path / "outputs"
    done = _doctor(
        str(EXAMPLE_PLAN), "--host", "pve", "--bird-socket", str(tmp_path / "no.ctl"),
        "--save-outputs", str(path),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert (path / "snapshot.json").is_file() and (path / "ip_link.txt").is_file()
    assert json.loads((path / "snapshot.json").read_text())["outputs"]["bird_status"]["returncode"]
    assert saved.load(path).get("ip_link").ok


# --- --from-outputs --------------------------------------------------------------------


def _recording(tmp_path: Path, source: Path = HEALTHY / "pve") -> Path:
    copy = tmp_path / "recording"
    shutil.copytree(source, copy)
    return copy


Edit = Callable[[dict[str, Any]], object]  # the recorded snapshot.json -> what to write


def _edit_meta(directory: Path, edit: Edit) -> None:
    path = directory / "snapshot.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _set(path: tuple[str, ...], value: object) -> Edit:
    def edit(meta: dict[str, Any]) -> object:
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return meta

    return edit


def _drop(*path: str) -> Edit:
    def edit(meta: dict[str, Any]) -> object:
        node = meta
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return meta

    return edit


META_CASES: dict[str, tuple[Edit, str]] = {
    "top level a list": (lambda meta: [meta], "the top level must be an object, not list"),
    "returncode a string": (
        _set(("outputs", "wg", "returncode"), "0"),
        "outputs.wg.returncode must be an exit status",
    ),
    "returncode a bool": (
        _set(("outputs", "nft", "returncode"), True),
        "outputs.nft.returncode must be an exit status",
    ),
    "argv not a list": (_set(("outputs", "wg", "argv"), "wg show"), "outputs.wg.argv must be"),
    "argv of numbers": (_set(("outputs", "wg", "argv"), [1, 2]), "outputs.wg.argv[0] must be"),
    "stderr missing": (
        _drop("outputs", "bird_status", "stderr"),
        "outputs.bird_status lacks ['stderr']",
    ),
    "time a string": (_set(("time",), "yesterday"), "time must be a unix time"),
    "time infinite": (_set(("time",), float("inf")), "time must be a unix time"),
    "outputs missing": (_drop("outputs"), "the top level lacks ['outputs']"),
    "a key that walks out": (
        _set(("outputs", "../../../etc/shadow"), {"argv": [], "returncode": 0, "stderr": ""}),
        "outputs has unknown fields ['../../../etc/shadow']",
    ),
    "route_get not an address": (
        _set(("route_get", "example.org"), {}),
        "route_get has 'example.org', which is no IP address",
    ),
    "route_get stdout a number": (
        _set(("route_get", "203.0.113.10", "stdout"), 5),
        "route_get.203.0.113.10.stdout must be a string, not int",
    ),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_malformed_snapshot_json_is_exit_2_naming_the_field(tmp_path: Path, case: str) -> None:
    edit, message = META_CASES[case]
    recording = _recording(tmp_path)
    _edit_meta(recording, edit)
    done = _from(recording)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{recording / 'snapshot.json'}: {message}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_files_that_are_not_a_recording(tmp_path: Path) -> None:
    recording = _recording(tmp_path)
    (recording / "snapshot.json").write_text("{not json")
    done = _from(recording)
    assert done.returncode == 2 and "snapshot.json is not JSON" in done.stderr, done.stderr

    recording = _recording(tmp_path / "2")
    with open(recording / "nft.txt", "wb") as out:  # sparse: no disk used
        out.truncate(saved.MAX_OUTPUT_BYTES + 1)
    done = _from(recording)
    assert done.returncode == 2 and "nft.txt is larger than 32 MiB" in done.stderr, done.stderr

    recording = _recording(tmp_path / "3")
    (recording / "wg.txt").unlink()
    (recording / "wg.txt").symlink_to("/etc/hostname")
    done = _from(recording)
    assert done.returncode == 2 and "wg.txt is a symlink" in done.stderr, done.stderr

    recording = _recording(tmp_path / "4")
    (recording / "sysctl.txt").unlink()
    os.mkfifo(recording / "sysctl.txt")  # would block a plain open() forever
    done = _from(recording)
    assert done.returncode == 2 and "sysctl.txt is not a regular file" in done.stderr

    recording = _recording(tmp_path / "5")
    (recording / "bird_status.txt").write_bytes(b"BIRD \xff\xfe\n")
    done = _from(recording)
    assert done.returncode == 2 and "bird_status.txt is not UTF-8" in done.stderr

    recording = _recording(tmp_path / "6")
    (recording / "ip_link.txt").unlink()
    done = _from(recording)
    assert done.returncode == 2 and "ip_link.txt No such file" in done.stderr, done.stderr
    for result in (done,):
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "text", "seen"),
    [
        ("nft", '{"nftables": 5}', "cannot read the nftables ruleset (seen: nft -j list ruleset: "),
        ("nft", '{"nftables": [{"chain": {}}]}', "cannot read the nftables ruleset"),
        ("ip_addr", '[1, "x", {"ifname": "wg-ibgp", "mtu": "big"}]', "fail  wireguard.interface"),
        ("ip_addr", "[" * 100_000, "fail  wireguard.interface"),
        ("ip_route4", '{"dst": "default"}', "pve (outputs saved in"),
    ],
)
def test_tool_output_of_the_wrong_shape_is_a_failed_read(
    tmp_path: Path, key: str, text: str, seen: str
) -> None:
    """Well-formed files holding what no tool prints: that read counts as failed (as
    when the tool is missing) and the checks go on; no traceback."""
    recording = _recording(tmp_path)
    (recording / f"{key}.txt").write_text(text)
    done = _from(recording)
    assert "Traceback" not in done.stderr and done.returncode in (0, 1), done.stderr
    assert seen in done.stdout, done.stdout


# Clear screen, home, window title, hyperlink, 8-bit CSI, DCS, bidi override.
ESCAPES = "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b]8;;http://evil\x1b\\\x9b31m\x1bPq\x1b\\\u202e"


def test_escape_sequences_in_a_recording_are_not_printed(tmp_path: Path) -> None:
    recording = _recording(tmp_path, BROKEN / "pve")
    text = (recording / "bird_protocols.txt").read_text()
    assert "Bad peer AS" in text
    (recording / "bird_protocols.txt").write_text(
        text.replace("Bad peer AS", f"Bad {ESCAPES}peer AS")
    )
    plain = _from(recording)
    as_json = _from(recording, "--json")
    assert plain.returncode == 1 and as_json.returncode == 1, plain.stderr
    assert "Bad peer AS" in plain.stdout
    evidence = json.loads(as_json.stdout)["first_failure"]
    assert "Bad peer AS" in evidence["summary"] + evidence["evidence"]
    for out in (plain.stdout, as_json.stdout, json.dumps(json.loads(as_json.stdout))):
        assert out == clean(out)
        for bad in ("\x1b", "\\u001b", "\x9b", "\\u009b", "\u202e", "owned", "evil"):
            assert bad not in out, (bad, out)


def test_escape_sequences_in_an_error_are_not_printed(tmp_path: Path) -> None:
    recording = tmp_path / f"rec{ESCAPES}"
    shutil.copytree(HEALTHY / "pve", recording)
    _edit_meta(recording, _set(("time",), "now"))
    done = _from(recording)
    assert done.returncode == 2 and "time must be a unix time" in done.stderr
    assert done.stderr == clean(done.stderr) and "owned" not in done.stderr


def test_clean_keeps_text_and_drops_controls() -> None:
    assert clean("ok  bgp: Established\n\tnext ümlaut") == "ok  bgp: Established\n\tnext ümlaut"
    assert clean(f"a{ESCAPES}b") == "ab"
    assert clean("over\rwrite\x00\x1c") == "overwrite"
    assert clean("a\x1b[38;5;196mred\x1b[0m\x07\x08\x7f") == "ared"
