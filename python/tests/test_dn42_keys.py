"""`ibgp-tunnel keys` for DN42 tunnels, with real sops and age: our DN42 key and
each peer's PSK in the reflector's secrets file only, through the same
ciphertext check and all-or-nothing write as the iBGP keys."""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_keys_interrupted as interrupted
from cli_helpers import run
from plandiff import added_lines
from sopstools import TEST_KEY, recipient, write_sops_config
from test_keys import PLAN, Project, _actions, _encrypt_unchecked, _rules

from ibgp_tunnel.keys import KeysError, public_key_of, sops
from ibgp_tunnel.keys.atomic import write_atomic
from ibgp_tunnel.keys.ciphertext import stored_in_plaintext
from ibgp_tunnel.keys.sops import SopsConfigError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    root = tmp_path / "project"
    (root / "hosts").mkdir(parents=True)
    # The example unkeyed, but for the DN42 peer's own public key (the peer's to give).
    lines = PLAN.read_text().splitlines(keepends=True)
    peer_key = 'public_key = "GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="\n'
    assert peer_key in lines
    unkeyed = "".join(
        line
        for line in lines
        if not line.startswith(("public_key", "dn42_public_key")) or line == peer_key
    )
    (root / "hosts" / "plan.toml").write_text(unkeyed)
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    return Project(root)


def test_dn42_key_and_psk_live_on_the_reflector_only(project: Project) -> None:
    report = project.keys()
    actions = _actions(report)
    assert ("dmz", "wg_dn42/private_key", "added") in actions
    assert ("dmz", "wg_dn42/psk/peer1", "added") in actions
    assert not any(host == "pve" and "dn42" in secret for host, secret, _ in actions)
    dmz, pve = project.decrypted("dmz"), project.decrypted("pve")
    assert "wg_dn42" not in pve
    dn42 = dmz["wg_dn42"]
    # A key of its own, not the iBGP one.
    assert dn42["private_key"] != dmz["wg_ibgp"]["private_key"]
    public_key_of(dn42["private_key"])  # a valid X25519 key
    text = (project.secrets / "dmz.yaml").read_text()
    assert dn42["private_key"] not in text and dn42["psk"]["peer1"] not in text
    # The peer's public key in the plan is the peer's: keys leaves it as it was.
    assert 'public_key = "GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="' in project.plan.read_text()


def test_a_second_run_keeps_the_dn42_secrets(project: Project) -> None:
    project.keys()
    first = project.decrypted("dmz")["wg_dn42"]
    report = project.keys()
    assert ("dmz", "wg_dn42/private_key", "kept") in _actions(report)
    assert ("dmz", "wg_dn42/psk/peer1", "kept") in _actions(report)
    assert project.decrypted("dmz")["wg_dn42"] == first


def test_a_rule_leaving_dn42_values_in_plaintext_is_refused(project: Project) -> None:
    write_sops_config(project.root, [])  # replaced below with a selective rule
    project.sops_config.write_text(
        "creation_rules:\n"
        f"  - path_regex: secrets/.*\\.yaml$\n    age: {recipient()}\n"
        "    encrypted_regex: ^wg_ibgp$\n"
    )
    before = project.snapshot()
    with pytest.raises(SopsConfigError) as caught:
        project.keys()
    assert "in plaintext" in str(caught.value)
    assert project.snapshot() == before  # nothing written, the plan untouched


# --- our DN42 public key in the plan, DN42 rotation ----------------------------


def _plan_value(project: Project, key: str) -> str:
    return tomllib.loads(project.plan.read_text())["hosts"]["dmz"][key]


def _dn42(project: Project) -> dict[str, Any]:
    return project.decrypted("dmz")["wg_dn42"]


def test_our_dn42_public_key_is_written_beside_the_ibgp_one(project: Project) -> None:
    before = project.plan.read_bytes()
    report = project.keys()
    dn42_key = public_key_of(_dn42(project)["private_key"])
    assert _plan_value(project, "dn42_public_key") == dn42_key
    assert report.dn42_public_keys == {"dmz": dn42_key}
    # Only the key lines were added: dmz's two, pve's one; the DN42 one follows public_key.
    added = [line for _, line in added_lines(before, project.plan.read_bytes())]
    assert [line.split(b"=")[0].strip() for line in added] == [
        b"public_key",
        b"dn42_public_key",
        b"public_key",
    ]
    assert (
        f'public_key = "{_plan_value(project, "public_key")}"\ndn42_public_key = "{dn42_key}"\n'
        in project.plan.read_text()
    )
    # The first run tells the peer both values; a second run tells nobody.
    (notice,) = report.dn42_notices
    assert (notice.host, notice.peer, notice.public_key, notice.psk) == (
        "dmz",
        "peer1",
        dn42_key,
        True,
    )
    again = project.keys()
    assert again.dn42_notices == [] and again.files_written == []


def test_rotating_our_dn42_key_changes_it_alone_and_names_the_peer(project: Project) -> None:
    project.keys()
    before = project.decrypted("dmz")
    report = project.keys("dn42:dmz")
    after = project.decrypted("dmz")
    assert after["wg_dn42"]["private_key"] != before["wg_dn42"]["private_key"]
    assert after["wg_dn42"]["psk"] == before["wg_dn42"]["psk"]
    assert after["wg_ibgp"] == before["wg_ibgp"]
    assert ("dmz", "wg_dn42/private_key", "rotated") in _actions(report)
    assert ("dmz", "wg_dn42/psk/peer1", "kept") in _actions(report)
    new_key = public_key_of(after["wg_dn42"]["private_key"])
    assert _plan_value(project, "dn42_public_key") == new_key
    (notice,) = report.dn42_notices
    assert (notice.peer, notice.public_key, notice.psk) == ("peer1", new_key, False)
    assert sorted(Path(p).name for p in report.files_written) == ["dmz.yaml", "plan.toml"]


def test_rotating_a_dn42_psk_changes_it_alone_and_never_prints_it(project: Project) -> None:
    project.keys()
    before = project.decrypted("dmz")
    plan_before = project.plan.read_bytes()
    report = project.keys("dn42:dmz:peer1")
    after = project.decrypted("dmz")
    new_psk = after["wg_dn42"]["psk"]["peer1"]
    assert new_psk != before["wg_dn42"]["psk"]["peer1"]
    assert after["wg_dn42"]["private_key"] == before["wg_dn42"]["private_key"]
    assert project.plan.read_bytes() == plan_before  # no public value changed
    (notice,) = report.dn42_notices
    assert (notice.public_key, notice.psk, notice.psk_secret) == (None, True, "wg_dn42/psk/peer1")
    assert new_psk not in json.dumps(report.to_dict())


def test_a_host_rotation_leaves_the_dn42_key(project: Project) -> None:
    project.keys()
    before = _dn42(project)
    report = project.keys("host:dmz")
    assert _dn42(project) == before
    assert report.dn42_notices == []


def test_the_cli_names_the_peer_and_how_without_the_psk(project: Project) -> None:
    project.keys()
    result = run("keys", project.plan, "--rotate", "dn42:dmz", "--rotate", "dn42:dmz:peer1")
    assert result.exit_code == 0, result.output
    psk = _dn42(project)["psk"]["peer1"]
    new_key = public_key_of(_dn42(project)["private_key"])
    assert psk not in result.output
    assert (
        f"tell DN42 peer peer1 of dmz: our new DN42 public key {new_key} and the new PSK "
        f"(wg_dn42/psk/peer1 in the host's sops file); `ibgp-tunnel dn42 peer-info "
        f"{project.plan} dmz peer1`" in result.stdout
    )


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            "dn42:pve",
            "'pve' is no host with DN42 tunnels (dn42_peers with a public_key); those are: dmz",
        ),
        ("dn42:dmz:nope", "'nope' is no DN42 tunnel peer of dmz; those are: peer1"),
        ("dn42:../../x", "'../../x' is no host with DN42 tunnels"),
        ("dn42:dmz:peer1/../../x", "is no DN42 tunnel peer of dmz"),
        ("psk:dmz", "the prefix must be host:, link: or dn42:"),
    ],
)
def test_bad_dn42_rotations_are_refused_before_anything_changes(
    project: Project, request_: str, message: str
) -> None:
    project.keys()
    before = project.snapshot()
    with pytest.raises(KeysError) as caught:
        project.keys(request_)
    assert message in str(caught.value)
    assert project.snapshot() == before


def test_a_psk_rotation_for_a_peer_without_psk_says_what_to_do(project: Project) -> None:
    project.plan.write_text(project.plan.read_text().replace("preshared_key = true\n", ""))
    project.keys()
    with pytest.raises(KeysError) as caught:
        project.keys("dn42:dmz:peer1")
    assert "uses no PSK" in str(caught.value) and "--rotate dn42:dmz" in str(caught.value)


# --- an interrupted DN42 rotation, through the same journal ---------------------


@pytest.fixture
def running(project: Project) -> Iterator[interrupted.Project]:
    """The DN42 project, driven as separate processes that stop at checkpoints."""
    runner = interrupted.Project(project.root)
    started: list[subprocess.Popen[str]] = []
    start = runner.start

    def tracked(*args: str, stop_at: str | None = None) -> subprocess.Popen[str]:
        process = start(*args, stop_at=stop_at)
        started.append(process)
        return process

    runner.start = tracked  # type: ignore[method-assign]
    yield runner
    for process in started:  # never leave a frozen process behind a failed test
        if process.returncode is None:
            process.kill()
            process.wait()


def _dn42_consistent(runner: interrupted.Project) -> str:
    """The plan's dn42_public_key belongs to the stored DN42 key; returns that key."""
    stored = runner.decrypted("dmz")["wg_dn42"]["private_key"]
    plan = tomllib.loads(runner.plan.read_text())
    assert plan["hosts"]["dmz"]["dn42_public_key"] == public_key_of(stored)
    runner.assert_consistent()  # iBGP keys, PSKs, no leftover temp/journal/lock
    return str(stored)


def test_a_dn42_rotation_killed_between_renames_is_finished(running: interrupted.Project) -> None:
    running.keys()
    old = _dn42_consistent(running)
    old_psk = running.decrypted("dmz")["wg_dn42"]["psk"]["peer1"]
    args = ("--rotate", "dn42:dmz", "--rotate", "dn42:dmz:peer1")
    interrupted.killed(interrupted.stopped(running.start(*args, stop_at="renamed-1")))
    # dmz.yaml holds the new key, the plan still the old public key.
    new = running.decrypted("dmz")["wg_dn42"]["private_key"]
    assert new != old
    assert tomllib.loads(running.plan.read_text())["hosts"]["dmz"]["dn42_public_key"] == (
        public_key_of(old)
    )
    code, out, err = interrupted.finished(running.start())
    assert code == 0, err
    assert out.startswith("recovered: finished an interrupted run: 1 of its 2 new files")
    assert _dn42_consistent(running) == new
    assert running.decrypted("dmz")["wg_dn42"]["psk"]["peer1"] != old_psk


def test_a_dn42_rotation_killed_before_commit_is_rolled_back(running: interrupted.Project) -> None:
    running.keys()
    old = _dn42_consistent(running)
    before = running.snapshot()
    interrupted.killed(interrupted.stopped(running.start("--rotate", "dn42:dmz", stop_at="staged")))
    report = running.keys()
    assert report.recovered.startswith("rolled back an interrupted run: it had replaced 0 of 2")
    assert running.snapshot() == before
    assert _dn42_consistent(running) == old


def test_a_dn42_key_planted_in_plaintext_must_be_rotated_and_the_peer_told(
    project: Project,
) -> None:
    # A secrets file written under a bad rule (an older run, sops by hand): every
    # *_key value, our DN42 key included, sits in it in plaintext.
    project.keys()
    data = project.decrypted("dmz")
    _rules(
        project,
        {"path_regex": r"secrets/.*\.yaml$", "age": recipient(), "unencrypted_suffix": "_key"},
    )
    leaked = _encrypt_unchecked(data, project.secrets / "dmz.yaml", project.sops_config)
    assert data["wg_dn42"]["private_key"] in leaked
    write_atomic(project.secrets / "dmz.yaml", leaked.encode())
    write_sops_config(project.root, [(r"secrets/[^/]+\.yaml$", recipient())])
    before = project.snapshot()
    with pytest.raises(KeysError) as caught:
        project.keys("host:dmz")  # the iBGP key alone is not enough
    assert "keys --rotate dn42:dmz` and give the DN42 peers it names" in str(caught.value)
    assert "dmz.yaml holds wg_dn42/private_key in plaintext" in str(caught.value)
    assert project.snapshot() == before
    report = project.keys("host:dmz", "dn42:dmz")
    assert ("dmz", "wg_dn42/private_key", "rotated") in _actions(report)
    assert [n.peer for n in report.dn42_notices] == ["peer1"]
    assert stored_in_plaintext(sops.read_raw(project.secrets / "dmz.yaml")) == set()
    assert data["wg_dn42"]["private_key"] not in project.plan.read_text()
