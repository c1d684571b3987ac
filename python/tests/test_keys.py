"""WireGuard keys and the `keys` operation, with the real wg, sops and age."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run
from plandiff import TRICKY, assert_only_public_keys_added, crlf, ibgp_only, unkeyed
from sopstools import TEST_KEY, recipient, write_sops_config

from ibgp_tunnel import keys
from ibgp_tunnel.keys import (
    KeyPlan,
    KeysError,
    Rotation,
    SecretNames,
    decode_key,
    default_secret_names,
    generate_keys,
    generate_private_key,
    generate_psk,
    get_secret,
    key_plan_from_doc,
    plan_secrets,
    project_layout,
    public_key_of,
    resolve_rotation,
    sops,
)
from ibgp_tunnel.keys.atomic import AtomicBatch, AtomicWriteError, write_atomic
from ibgp_tunnel.keys.ciphertext import is_ciphertext, stored_in_plaintext
from ibgp_tunnel.keys.sops import SopsConfigError, SopsError, decrypt_file, encrypt_to_file

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "hosts" / "plan.toml"
NAMES = SecretNames("wg_ibgp/private_key", "wg_ibgp/psk/")

needs_wg = pytest.mark.skipif(shutil.which("wg") is None, reason="wg (wireguard-tools) missing")


def _wg(*args: str, stdin: str = "") -> str:
    return subprocess.run(
        ["wg", *args], input=stdin.encode(), capture_output=True, check=True
    ).stdout.decode()


# --- key material --------------------------------------------------------------


@needs_wg
def test_private_key_format_and_public_key_match_wg() -> None:
    for _ in range(8):
        private = generate_private_key()
        raw = base64.b64decode(private)
        assert len(private) == 44 and len(raw) == 32
        # The clamping `wg genkey` applies.
        assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40
        assert public_key_of(private) == _wg("pubkey", stdin=private + "\n").strip()


@needs_wg
def test_public_key_of_wg_genkey_output() -> None:
    private = _wg("genkey").strip()
    assert public_key_of(private) == _wg("pubkey", stdin=private + "\n").strip()


@needs_wg
def test_psk_has_the_wg_genpsk_shape() -> None:
    psk = generate_psk()
    reference = _wg("genpsk").strip()
    assert len(psk) == len(reference) == 44
    assert len(base64.b64decode(psk, validate=True)) == 32
    # 256 random bits, not a clamped scalar: some of 64 PSKs have low bits set.
    assert any(base64.b64decode(generate_psk())[0] & 7 for _ in range(64))


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "base64 string"), ("!!!", "not valid base64"), ("AAAA", "decodes to 3 bytes")],
)
def test_decode_key_rejects(value: object, message: str) -> None:
    with pytest.raises(KeysError, match=message):
        decode_key(value, "the key")


def test_secret_names_come_from_defaults_toml() -> None:
    defaults = tomllib.loads((REPO / "modules" / "lib" / "base" / "defaults.toml").read_text())
    names = default_secret_names()
    assert names.private_key == defaults["secret_private_key"] == "wg_ibgp/private_key"
    assert names.psk("pve") == defaults["secret_psk_prefix"] + "pve" == "wg_ibgp/psk/pve"


def test_project_layout(tmp_path: Path) -> None:
    (tmp_path / "net" / "hosts").mkdir(parents=True)
    plan = tmp_path / "net" / "hosts" / "plan.toml"
    assert project_layout(plan) == (tmp_path / "net" / "secrets", tmp_path / "net" / ".sops.yaml")
    (tmp_path / ".sops.yaml").write_text("creation_rules: []\n")
    assert project_layout(plan) == (tmp_path / "secrets", tmp_path / ".sops.yaml")
    flat = tmp_path / "flat" / "plan.toml"
    flat.parent.mkdir()
    (flat.parent / ".sops.yaml").write_text("creation_rules: []\n")
    assert project_layout(flat) == (flat.parent / "secrets", flat.parent / ".sops.yaml")


# --- pure decisions ------------------------------------------------------------

TWO = KeyPlan(("dmz", "pve"), {"pve": ("dmz", "pve")})


def _counter(prefix: str) -> Any:
    count = iter(range(1000))
    return lambda: base64.b64encode(f"{prefix}{next(count):02d}".ljust(32, "-").encode()).decode()


def _plan(existing: dict[str, Any], rotation: Rotation | None = None) -> tuple[dict, list]:
    rotation = rotation or Rotation()
    return plan_secrets(TWO, existing, rotation, NAMES, _counter("priv"), _counter("psk"))


def test_resolve_rotation() -> None:
    plan = KeyPlan(("dmz", "pve", "nas"), {"pve": ("dmz", "pve"), "nas-link": ("dmz", "nas")})
    assert resolve_rotation(["dmz", "nas-link", "host:pve"], plan) == Rotation(
        frozenset({"dmz", "pve"}), frozenset({"nas-link"})
    )
    assert resolve_rotation(["link:pve"], plan).links == {"pve"}
    with pytest.raises(KeysError, match="write host:pve or link:pve"):
        resolve_rotation(["pve"], plan)
    with pytest.raises(KeysError, match="no such host or link"):
        resolve_rotation(["nope"], plan)
    with pytest.raises(KeysError, match="no such link"):
        resolve_rotation(["link:dmz"], plan)
    with pytest.raises(KeysError, match="prefix must be"):
        resolve_rotation(["peer:dmz"], plan)


def test_psk_missing_on_one_end_is_copied_from_the_other() -> None:
    first, _ = _plan({})
    existing = json.loads(json.dumps(first))
    del existing["pve"]["wg_ibgp"]["psk"]["pve"]
    second, actions = _plan(existing)
    assert second == first
    assert ("pve", "wg_ibgp/psk/pve", "copied") in [(a.host, a.secret, a.action) for a in actions]


def test_different_psks_on_the_two_ends_are_refused() -> None:
    first, _ = _plan({})
    first["pve"]["wg_ibgp"]["psk"]["pve"] = generate_psk()
    with pytest.raises(KeysError, match="--rotate link:pve"):
        _plan(first)
    fixed, _ = _plan(first, Rotation(links=frozenset({"pve"})))
    assert get_secret(fixed["dmz"], "wg_ibgp/psk/pve") == get_secret(
        fixed["pve"], "wg_ibgp/psk/pve"
    )


def test_invalid_stored_key_is_refused_with_a_hint() -> None:
    with pytest.raises(KeysError, match="--rotate host:dmz"):
        _plan({"dmz": {"wg_ibgp": {"private_key": "short"}}})


def test_non_mapping_on_the_secret_path_is_refused() -> None:
    with pytest.raises(KeysError, match="not a mapping"):
        _plan({"dmz": {"wg_ibgp": "oops"}})


def test_other_entries_of_a_secrets_file_are_kept() -> None:
    secrets, _ = _plan({"dmz": {"backup_token": "x", "wg_ibgp": {"note": 1}}})
    assert secrets["dmz"]["backup_token"] == "x"
    assert secrets["dmz"]["wg_ibgp"]["note"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("asn = 1\n", "no \\[hosts"),
        ("[hosts.a]\n[links.l]\nreflector = 'a'\nclient = 'b'\n", "links.l.client = 'b'"),
        ("[hosts.a]\n[links.l]\nreflector = 'a'\nclient = 'a'\n", "joins a to itself"),
        ("hosts = 3\n", "no \\[hosts"),
        ("[hosts]\na = 1\n", "hosts.a must be a table"),
        ("links = 1\n[hosts.a]\n", "links must be a table"),
    ],
)
def test_what_keys_reads_of_a_plan_is_checked_again(text: str, message: str) -> None:
    # `keys` runs `check` first; its own reading of hosts and links still refuses.
    with pytest.raises(KeysError, match=message):
        key_plan_from_doc(tomllib.loads(text), "plan.toml")


@pytest.mark.parametrize(
    ("text", "finding"),
    [
        ("asn = 1\n", "error: hosts: is missing; this key is required"),
        ("[hosts.a]\n[links.l]\nreflector = 'a'\nclient = 'b'\n", "error: asn: is missing"),
    ],
)
def test_keys_refuses_a_plan_check_rejects_with_checks_message(
    tmp_path: Path, text: str, finding: str
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    result = run("keys", plan, "--secrets-dir", tmp_path / "secrets")
    assert result.exit_code == 2
    first, second = result.stderr.splitlines()
    assert first == f"error: fix {plan} so that `ibgp-tunnel check` passes; `keys` changed nothing."
    assert second.startswith(finding)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.toml"]


def test_unreadable_and_non_toml_plans(tmp_path: Path) -> None:
    with pytest.raises(KeysError, match=r"missing\.toml: no such file"):
        generate_keys(tmp_path / "missing.toml", tmp_path / "secrets", tmp_path / ".sops.yaml")
    (tmp_path / "bad.toml").write_text("[hosts\n")
    with pytest.raises(KeysError, match="not valid TOML"):
        generate_keys(tmp_path / "bad.toml", tmp_path / "secrets", tmp_path / ".sops.yaml")


# --- the whole operation with real sops and age ----------------------------------


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.plan = root / "hosts" / "plan.toml"
        self.secrets = root / "secrets"
        self.sops_config = root / ".sops.yaml"

    def keys(self, *rotate: str) -> keys.KeysReport:
        return generate_keys(self.plan, self.secrets, self.sops_config, list(rotate))

    def decrypted(self, host: str) -> dict[str, Any]:
        return decrypt_file(self.secrets / f"{host}.yaml")

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    root = tmp_path / "project"
    (root / "hosts").mkdir(parents=True)
    # The committed example is already keyed; start from the same plan unkeyed,
    # without its DN42 tunnel (test_dn42_keys.py covers those keys).
    (root / "hosts" / "plan.toml").write_bytes(ibgp_only(PLAN.read_bytes()))
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    return Project(root)


def _actions(report: keys.KeysReport) -> set[tuple[str, str, str]]:
    return {(s.host, s.secret, s.action) for s in report.secrets}


def test_first_run_creates_everything(project: Project) -> None:
    mode = project.plan.stat().st_mode & 0o777
    report = project.keys()
    assert _actions(report) == {
        ("dmz", "wg_ibgp/private_key", "added"),
        ("pve", "wg_ibgp/private_key", "added"),
        ("dmz", "wg_ibgp/psk/pve", "added"),
        ("pve", "wg_ibgp/psk/pve", "added"),
    }
    json.dumps(report.to_dict())  # --json output is plain data
    assert sorted(Path(p).name for p in report.files_written) == [
        "dmz.yaml",
        "plan.toml",
        "pve.yaml",
    ]
    assert sorted(p.name for p in project.secrets.iterdir()) == ["dmz.yaml", "pve.yaml"]
    assert project.plan.stat().st_mode & 0o777 == mode  # public: kept

    dmz, pve = project.decrypted("dmz"), project.decrypted("pve")
    assert set(dmz) == set(pve) == {"wg_ibgp"}
    assert set(dmz["wg_ibgp"]) == {"private_key", "psk"}
    assert dmz["wg_ibgp"]["psk"] == pve["wg_ibgp"]["psk"]  # both ends, one PSK
    assert dmz["wg_ibgp"]["private_key"] != pve["wg_ibgp"]["private_key"]
    for host in ("dmz", "pve"):
        text = (project.secrets / f"{host}.yaml").read_text()
        assert (project.secrets / f"{host}.yaml").stat().st_mode & 0o777 == 0o600
        assert dmz["wg_ibgp"]["psk"]["pve"] not in text  # ciphertext only


def test_sops_nix_secret_names_resolve(project: Project) -> None:
    project.keys()
    defaults = tomllib.loads((REPO / "modules" / "lib" / "base" / "defaults.toml").read_text())
    for host in ("dmz", "pve"):
        data = project.decrypted(host)
        # sops-nix's `key` option walks nested YAML keys split on "/".
        names = [defaults["secret_private_key"], defaults["secret_psk_prefix"] + "pve"]
        for name in names:
            node: Any = data
            for part in name.split("/"):
                node = node[part]
            assert isinstance(node, str) and len(base64.b64decode(node)) == 32
    assert (
        project.decrypted("dmz")["wg_ibgp"]["psk"]["pve"]
        == project.decrypted("pve")["wg_ibgp"]["psk"]["pve"]
    )


@needs_wg
def test_public_keys_in_plan_match_wg_and_comments_survive(project: Project) -> None:
    original = project.plan.read_bytes()
    project.keys()
    updated = project.plan.read_bytes()
    plan = tomllib.loads(updated.decode())
    for host in ("dmz", "pve"):
        private = project.decrypted(host)["wg_ibgp"]["private_key"]
        assert plan["hosts"][host]["public_key"] == _wg("pubkey", stdin=private + "\n").strip()
    # Byte for byte, only the two public_key lines were added, each right after
    # its host's router_id (not after the comments of the next table).
    assert_only_public_keys_added(original, updated, 2)
    original_plan = tomllib.loads(original.decode())
    for host in ("dmz", "pve"):
        del plan["hosts"][host]["public_key"]
    assert plan == original_plan


@needs_wg
@pytest.mark.parametrize(
    "plan", [crlf(unkeyed(PLAN.read_bytes())), TRICKY, crlf(TRICKY)], ids=["crlf", "tricky", "both"]
)
def test_keys_adds_only_public_key_lines_to_any_plan(project: Project, plan: bytes) -> None:
    project.plan.write_bytes(plan)
    report = project.keys()
    hosts = tomllib.loads(plan.decode())["hosts"]
    assert report.plan_updated_hosts == list(hosts)
    added = assert_only_public_keys_added(plan, project.plan.read_bytes(), len(hosts))
    assert [line.decode().split('"')[1] for line in added] == [
        report.public_keys[host] for host in hosts
    ]
    # A second run has nothing to add.
    assert project.keys().plan_updated_hosts == []


def test_existing_public_keys_are_replaced_in_place(project: Project) -> None:
    shutil.copyfile(PLAN, project.plan)  # keyed, but these secrets do not exist here
    original = project.plan.read_text().splitlines()
    report = project.keys()
    assert report.plan_updated_hosts == ["dmz", "pve"]
    updated = project.plan.read_text().splitlines()
    assert len(updated) == len(original)
    # A DN42 peer's public_key is the peer's own: keys leaves it alone.
    peer_keys = {
        f'public_key = "{peer["public_key"]}"'
        for host in tomllib.loads(project.plan.read_text())["hosts"].values()
        for peer in host.get("dn42_peers", {}).values()
        if "public_key" in peer
    }
    for old_line, new_line in zip(original, updated, strict=True):
        if old_line.startswith("dn42_public_key"):  # ours on DN42 tunnels, new too
            assert new_line.startswith("dn42_public_key") and new_line != old_line
        elif old_line.startswith("public_key") and old_line not in peer_keys:
            assert new_line.startswith("public_key") and new_line != old_line
        else:
            assert new_line == old_line


@needs_wg
def test_committed_example_is_keyed_consistently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hosts/plan.toml + secrets/test/*.yaml (test key) are the example the VM test
    # deploys: `keys` must find every key there and change nothing.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    root = tmp_path / "repo"
    (root / "hosts").mkdir(parents=True)
    # Copies the user owns and may write, whatever the modes of the originals
    # (read-only in the package's build sandbox).
    shutil.copyfile(PLAN, root / "hosts" / "plan.toml")
    shutil.copyfile(REPO / ".sops.yaml", root / ".sops.yaml")
    shutil.copytree(
        REPO / "secrets" / "test", root / "secrets" / "test", copy_function=shutil.copyfile
    )
    (root / "secrets" / "test").chmod(0o755)
    project = Project(root)
    before = project.snapshot()
    report = generate_keys(project.plan, root / "secrets" / "test", project.sops_config)
    assert {a for _, _, a in _actions(report)} == {"kept"}
    assert project.snapshot() == before
    plan = tomllib.loads(project.plan.read_text())
    for host in ("dmz", "pve"):
        private = decrypt_file(root / "secrets" / "test" / f"{host}.yaml")["wg_ibgp"]["private_key"]
        assert plan["hosts"][host]["public_key"] == _wg("pubkey", stdin=private + "\n").strip()
    dn42 = decrypt_file(root / "secrets" / "test" / "dmz.yaml")["wg_dn42"]["private_key"]
    assert plan["hosts"]["dmz"]["dn42_public_key"] == _wg("pubkey", stdin=dn42 + "\n").strip()


def test_second_run_keeps_everything_and_writes_nothing(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    report = project.keys()
    assert {a for _, _, a in _actions(report)} == {"kept"}
    assert report.files_written == [] and report.plan_updated_hosts == []
    assert project.snapshot() == before


def test_rotate_host_changes_only_its_private_key(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    old = {h: project.decrypted(h) for h in ("dmz", "pve")}
    report = project.keys("host:dmz")
    assert ("dmz", "wg_ibgp/private_key", "rotated") in _actions(report)
    assert {a for h, s, a in _actions(report) if (h, s) != ("dmz", "wg_ibgp/private_key")} == {
        "kept"
    }
    new = {h: project.decrypted(h) for h in ("dmz", "pve")}
    assert new["dmz"]["wg_ibgp"]["private_key"] != old["dmz"]["wg_ibgp"]["private_key"]
    assert new["dmz"]["wg_ibgp"]["psk"] == old["dmz"]["wg_ibgp"]["psk"]
    assert new["pve"] == old["pve"]
    after = project.snapshot()
    assert after["secrets/pve.yaml"] == before["secrets/pve.yaml"]  # untouched file
    plan = tomllib.loads(project.plan.read_text())
    assert plan["hosts"]["dmz"]["public_key"] == public_key_of(new["dmz"]["wg_ibgp"]["private_key"])
    assert report.plan_updated_hosts == ["dmz"]


def test_rotate_link_changes_the_psk_on_both_ends(project: Project) -> None:
    project.keys()
    old = {h: project.decrypted(h) for h in ("dmz", "pve")}
    plan_before = project.plan.read_bytes()
    report = project.keys("link:pve")
    assert {(h, a) for h, s, a in _actions(report) if s == "wg_ibgp/psk/pve"} == {
        ("dmz", "rotated"),
        ("pve", "rotated"),
    }
    new = {h: project.decrypted(h) for h in ("dmz", "pve")}
    assert new["dmz"]["wg_ibgp"]["psk"]["pve"] == new["pve"]["wg_ibgp"]["psk"]["pve"]
    assert new["dmz"]["wg_ibgp"]["psk"]["pve"] != old["dmz"]["wg_ibgp"]["psk"]["pve"]
    for host in ("dmz", "pve"):
        assert new[host]["wg_ibgp"]["private_key"] == old[host]["wg_ibgp"]["private_key"]
    assert project.plan.read_bytes() == plan_before


def test_ambiguous_rotate_changes_nothing(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    with pytest.raises(KeysError, match="host:pve or link:pve"):
        project.keys("pve")
    assert project.snapshot() == before


def test_existing_secrets_are_extended_not_replaced(project: Project) -> None:
    project.secrets.mkdir()
    encrypt_to_file({"backup_token": "keep-me"}, project.secrets / "dmz.yaml", project.sops_config)
    project.keys()
    dmz = project.decrypted("dmz")
    assert dmz["backup_token"] == "keep-me"
    assert set(dmz["wg_ibgp"]) == {"private_key", "psk"}


def test_lost_psk_on_one_end_is_restored_from_the_other(project: Project) -> None:
    project.keys()
    pve = project.decrypted("pve")
    psk = pve["wg_ibgp"]["psk"].pop("pve")
    encrypt_to_file(pve, project.secrets / "pve.yaml", project.sops_config)
    report = project.keys()
    assert ("pve", "wg_ibgp/psk/pve", "copied") in _actions(report)
    assert project.decrypted("pve")["wg_ibgp"]["psk"]["pve"] == psk


def test_sops_failure_mid_way_leaves_no_file(project: Project) -> None:
    # dmz encrypts fine; pve's rule names a broken recipient, so sops fails on the
    # second file after the first was already encrypted in memory.
    write_sops_config(
        project.root,
        [(r"secrets/dmz\.yaml$", recipient()), (r"secrets/pve\.yaml$", "age1broken")],
    )
    before = project.snapshot()
    with pytest.raises(SopsConfigError, match="age recipients"):
        project.keys()
    assert project.snapshot() == before
    assert not project.secrets.exists() or list(project.secrets.iterdir()) == []


def test_sops_failure_on_a_rotation_keeps_old_files(project: Project) -> None:
    project.keys()
    before = project.snapshot()
    write_sops_config(
        project.root,
        [(r"secrets/dmz\.yaml$", recipient()), (r"secrets/pve\.yaml$", "age1broken")],
    )
    with pytest.raises(SopsConfigError):
        project.keys("link:pve")
    after = project.snapshot()
    del after[".sops.yaml"], before[".sops.yaml"]
    assert after == before


def test_missing_sops_config(project: Project) -> None:
    project.sops_config.unlink()
    before = project.snapshot()
    with pytest.raises(SopsConfigError, match="ibgp-tunnel init"):
        project.keys()
    assert project.snapshot() == before


def test_unwritable_secrets_dir(project: Project) -> None:
    # As root permission bits do not stop writes; a file where the directory
    # should be does.
    project.secrets.write_text("not a directory\n")
    before = project.snapshot()
    with pytest.raises(KeysError, match="cannot create the secrets directory"):
        project.keys()
    assert project.snapshot() == before


def test_secrets_file_blocked_by_a_directory(project: Project) -> None:
    (project.secrets / "pve.yaml").mkdir(parents=True)
    before = project.snapshot()
    with pytest.raises(KeysError, match=r"pve\.yaml with its sops file: it is not a regular"):
        project.keys()  # refused before anything is read or written
    assert project.snapshot() == before
    assert [p.name for p in project.secrets.iterdir()] == ["pve.yaml"]


def test_undecryptable_secrets_change_nothing(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.keys()
    before = project.snapshot()
    other = tmp_path / "other-key.txt"
    subprocess.run(["age-keygen", "-o", str(other)], capture_output=True, check=True)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other))
    with pytest.raises(SopsError, match="SOPS_AGE_KEY_FILE"):
        project.keys()
    assert project.snapshot() == before


# --- atomic writes ----------------------------------------------------------------


def test_batch_failing_to_stage_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "blocker").write_text("file")
    with pytest.raises(AtomicWriteError, match="writable directory"), AtomicBatch() as batch:
        batch.stage(tmp_path / "a", b"new")
        batch.stage(tmp_path / "blocker" / "b", b"new")
        batch.commit()
    assert (tmp_path / "a").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "blocker"]


def test_batch_failing_rename_leaves_each_file_old_or_new(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()  # os.replace(file, directory) fails
    with pytest.raises(AtomicWriteError), AtomicBatch() as batch:
        batch.stage(tmp_path / "a", b"new", mode=0o644)
        batch.stage(tmp_path / "b", b"new")
        batch.stage(tmp_path / "c", b"new")
        batch.commit()
    assert (tmp_path / "a").read_bytes() == b"new"
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp files


def test_write_atomic_replaces_with_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "secret.yaml"
    target.write_text("old")
    target.chmod(0o644)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.yaml"]


# --- never plaintext, whatever .sops.yaml says (real sops) ---------------------------


def _rules(project: Project, *rules: dict[str, str]) -> None:
    lines = ["creation_rules:"]
    for rule in rules:
        first = True
        for key, value in rule.items():
            lines.append(f"  {'- ' if first else '  '}{key}: '{value}'")
            first = False
    project.sops_config.write_text("\n".join(lines) + "\n")


def _files_with(root: Path, needle: str) -> list[str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return [str(p) for p in files if needle in p.read_text(errors="ignore")]


# Each rule kind sops has for encrypting only some values, set so that it leaves a
# private key or a PSK (or both) of our files alone.
SELECTIVE_RULES = [
    ("encrypted_regex", "^(data|stringData)$"),
    ("unencrypted_regex", "^private_key$"),
    ("unencrypted_regex", "^psk$"),
    ("unencrypted_suffix", "_key"),
    ("encrypted_suffix", "_secret"),
    ("encrypted_comment_regex", "sops:enc"),
]


@pytest.mark.parametrize(("setting", "value"), SELECTIVE_RULES)
def test_a_rule_leaving_values_in_plaintext_is_refused(
    project: Project, setting: str, value: str
) -> None:
    # The matching rule is the second one (index 1), after an unrelated rule.
    _rules(
        project,
        {"path_regex": r"^other/.*\.yaml$", "age": recipient()},
        {"path_regex": r"secrets/.*\.yaml$", "age": recipient(), setting: value},
    )
    before = project.snapshot()
    with pytest.raises(SopsConfigError) as caught:
        project.keys()
    message = str(caught.value)
    first, second = message.splitlines()
    # The fix first: the setting, the rule (index and path_regex), the alternative.
    assert first.startswith(f"fix {project.sops_config}: remove {setting} from creation_rules[1]")
    assert r"(path_regex secrets/.*\.yaml$)" in first
    assert r"put a rule for secrets/[^/]+\.yaml$" in first
    assert f"({setting}: {value})" in second and "in plaintext" in second
    assert "nothing was written" in second
    assert project.snapshot() == before  # no secrets file, plan untouched
    assert not project.secrets.exists() or list(project.secrets.iterdir()) == []


@pytest.mark.parametrize(("setting", "value"), SELECTIVE_RULES)
def test_a_rotation_under_such_a_rule_keeps_the_old_files(
    project: Project, setting: str, value: str
) -> None:
    project.keys()
    before = project.snapshot()
    old = {h: project.decrypted(h) for h in ("dmz", "pve")}
    _rules(project, {"path_regex": r"secrets/.*\.yaml$", "age": recipient(), setting: value})
    with pytest.raises(SopsConfigError, match=f"remove {setting} from creation_rules\\[0\\]"):
        project.keys("host:dmz", "host:pve", "link:pve")
    after = project.snapshot()
    del after[".sops.yaml"], before[".sops.yaml"]
    assert after == before
    for host in ("dmz", "pve"):
        assert project.decrypted(host) == old[host]
        secret = old[host]["wg_ibgp"]
        assert _files_with(project.root, secret["private_key"]) == []
        assert _files_with(project.root, secret["psk"]["pve"]) == []


def test_the_cli_refuses_with_exit_2_and_the_fix_first(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rules(
        project,
        {"path_regex": r"secrets/.*\.yaml$", "age": recipient(), "encrypted_regex": "^data$"},
    )
    monkeypatch.chdir(project.root)
    result = run("keys")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: fix ") and "remove encrypted_regex" in lines[0]
    assert list(project.secrets.glob("*.yaml")) == []


def test_a_comment_regex_that_still_encrypts_everything_is_accepted(project: Project) -> None:
    # Our JSON input has no comments, so unencrypted_comment_regex cannot spare any
    # value: sops encrypts them all, and `keys` must not refuse a good file.
    _rules(
        project,
        {"path_regex": r"secrets/.*\.yaml$", "age": recipient(), "unencrypted_comment_regex": ".*"},
    )
    project.keys()
    for host in ("dmz", "pve"):
        raw = sops.read_raw(project.secrets / f"{host}.yaml")
        assert raw["sops"]["unencrypted_comment_regex"] == ".*"
        assert stored_in_plaintext(raw) == set()
        assert is_ciphertext(raw["wg_ibgp"]["private_key"])


def test_a_link_named_with_sops_default_plaintext_suffix_is_refused(project: Project) -> None:
    # sops never encrypts keys ending in "_unencrypted", even with no rule saying so.
    text = project.plan.read_text().replace("[links.pve]", "[links.pve_unencrypted]")
    project.plan.write_text(text)
    with pytest.raises(SopsConfigError) as caught:
        project.keys()
    first = str(caught.value).splitlines()[0]
    assert first.startswith("rename wg_ibgp/psk/pve_unencrypted (for a PSK: the link)")
    assert not project.secrets.exists() or list(project.secrets.iterdir()) == []


def test_a_key_already_stored_in_plaintext_must_be_rotated(project: Project) -> None:
    # As an older `keys` (or sops by hand) would have written it under a bad rule.
    project.keys()
    data = project.decrypted("dmz")
    _rules(
        project,
        {"path_regex": r"secrets/.*\.yaml$", "age": recipient(), "unencrypted_suffix": "_key"},
    )
    leaked = _encrypt_unchecked(data, project.secrets / "dmz.yaml", project.sops_config)
    assert data["wg_ibgp"]["private_key"] in leaked
    write_atomic(project.secrets / "dmz.yaml", leaked.encode())
    write_sops_config(project.root, [(r"secrets/[^/]+\.yaml$", recipient())])
    before = project.snapshot()
    with pytest.raises(KeysError, match="--rotate host:dmz`") as caught:
        project.keys()
    assert "in plaintext: treat it as leaked" in str(caught.value)
    assert project.snapshot() == before
    report = project.keys("host:dmz")
    assert ("dmz", "wg_ibgp/private_key", "rotated") in _actions(report)
    assert stored_in_plaintext(sops.read_raw(project.secrets / "dmz.yaml")) == set()
    assert _files_with(project.root, data["wg_ibgp"]["private_key"]) == []


def test_values_the_user_kept_in_plaintext_on_purpose_stay_so(project: Project) -> None:
    # A note under sops's default "_unencrypted" suffix is the user's choice; our
    # keys next to it are still encrypted and the file can be rotated.
    project.secrets.mkdir()
    target = project.secrets / "dmz.yaml"
    note = {"note_unencrypted": "rotated yearly"}
    write_atomic(target, _encrypt_unchecked(note, target, project.sops_config).encode())
    project.keys()
    project.keys("host:dmz")
    raw = sops.read_raw(project.secrets / "dmz.yaml")
    assert stored_in_plaintext(raw) == {("note_unencrypted",)}
    assert project.decrypted("dmz")["note_unencrypted"] == "rotated yearly"


def _encrypt_unchecked(data: dict[str, Any], target: Path, config: Path) -> str:
    """sops run by hand, as a user (or an older `keys`) would: no verification."""
    done = subprocess.run(
        [
            str(sops.find_sops()),
            "--config",
            str(config),
            "encrypt",
            "--filename-override",
            str(target),
            "--input-type",
            "json",
            "--output-type",
            "yaml",
        ],
        input=json.dumps(data).encode(),
        capture_output=True,
        check=True,
        cwd=config.parent,
    )
    return done.stdout.decode()


# --- errors: the fix first, sops's output only with --verbose -----------------------


def _keyed_project_with_a_foreign_key(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.keys()
    other = tmp_path / "other-key.txt"
    subprocess.run(["age-keygen", "-o", str(other)], capture_output=True, check=True)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other))
    monkeypatch.chdir(project.root)


def test_a_wrong_age_key_gives_the_fix_in_two_lines(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _keyed_project_with_a_foreign_key(project, tmp_path, monkeypatch)
    before = project.snapshot()
    result = run("keys")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: set SOPS_AGE_KEY_FILE to an age key of one of the")
    assert recipient()[:8] in lines[0]  # whose key it takes
    assert "could not decrypt" in lines[1] and lines[1].endswith("(--verbose shows sops's output)")
    assert "Failed to get the data key" not in result.stderr  # sops's dump stays out
    assert project.snapshot() == before


@pytest.mark.parametrize("where", ["global", "command"])
def test_verbose_adds_the_full_sops_output(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _keyed_project_with_a_foreign_key(project, tmp_path, monkeypatch)
    args = ["--verbose", "keys"] if where == "global" else ["keys", "--verbose"]
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: set SOPS_AGE_KEY_FILE")  # still the fix first
    assert "Failed to get the data key" in result.stderr
    assert "incorrect identity" in result.stderr or "did not match" in result.stderr


MALFORMED_SOPS_CONFIGS = {
    "not YAML": "creation_rules: [[[\n",
    "not a list": "creation_rules: 5\n",
    "tab-indented": "\tcreation_rules:\n",
    "bad path_regex": "creation_rules:\n  - path_regex: '(['\n    age: {r}\n",
    "two selective settings": (
        "creation_rules:\n  - path_regex: secrets/\n    age: {r}\n"
        "    encrypted_regex: a\n    unencrypted_regex: b\n"
    ),
    "empty key group": "creation_rules:\n  - path_regex: secrets/\n    key_groups:\n      - {{}}\n",
    "no keys": "creation_rules:\n  - path_regex: secrets/\n",
    "empty file": "",
}


@pytest.mark.parametrize("text", MALFORMED_SOPS_CONFIGS.values(), ids=MALFORMED_SOPS_CONFIGS)
def test_a_malformed_sops_config_exits_2_with_the_fix_first(
    project: Project, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    project.sops_config.write_text(text.format(r=recipient()))
    before = project.snapshot()
    monkeypatch.chdir(project.root)
    result = run("keys")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2
    assert lines[0].startswith(f"error: fix {project.sops_config}") or lines[0].startswith(
        "error: add a creation rule"
    )
    assert project.snapshot() == before
    assert run("--verbose", "keys").stderr.count("\n") > result.stderr.count("\n")


def test_a_secrets_file_that_is_not_sops_exits_2(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.secrets.mkdir()
    (project.secrets / "dmz.yaml").write_text("wg_ibgp:\n  private_key: plain\n")
    monkeypatch.chdir(project.root)
    result = run("keys")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: encrypt {project.secrets / 'dmz.yaml'} with sops")


def test_a_selective_rule_that_covers_every_value_is_accepted(project: Project) -> None:
    # The check is on what sops wrote, not on the rule's shape: this encrypted_regex
    # happens to match every key of ours, so every value is ciphertext.
    _rules(
        project,
        {
            "path_regex": r"secrets/.*\.yaml$",
            "age": recipient(),
            "encrypted_regex": "^(wg_ibgp|private_key|psk)$",
        },
    )
    project.keys()
    for host in ("dmz", "pve"):
        raw = sops.read_raw(project.secrets / f"{host}.yaml")
        assert raw["sops"]["encrypted_regex"] == "^(wg_ibgp|private_key|psk)$"
        assert stored_in_plaintext(raw) == set()


def test_a_link_between_reflectors_gets_one_psk_on_both_reflectors(project: Project) -> None:
    """The two-reflector lab plan (vps1 and vps2 linked): each end of every link, the
    reflectors' own link included, holds the same PSK in its own file."""
    two = Path(__file__).resolve().parent / "plans" / "two-reflectors.toml"
    project.plan.write_text(two.read_text())
    report = project.keys()
    actions = _actions(report)
    assert ("vps1", "wg_ibgp/psk/vps1-vps2", "added") in actions
    assert ("vps2", "wg_ibgp/psk/vps1-vps2", "added") in actions
    vps1, vps2 = project.decrypted("vps1"), project.decrypted("vps2")
    assert vps1["wg_ibgp"]["psk"]["vps1-vps2"] == vps2["wg_ibgp"]["psk"]["vps1-vps2"]
    assert set(vps1["wg_ibgp"]["psk"]) == {"home-vps1", "office-vps1", "vps1-vps2"}
    assert set(project.decrypted("home")["wg_ibgp"]["psk"]) == {"home-vps1", "home-vps2"}
