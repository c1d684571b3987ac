"""`ibgp-tunnel keys` for DN42 tunnels, with real sops and age: our DN42 key and
each peer's PSK in the reflector's secrets file only, through the same
ciphertext check and all-or-nothing write as the iBGP keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from sopstools import TEST_KEY, recipient, write_sops_config
from test_keys import PLAN, Project, _actions

from ibgp_tunnel.keys import public_key_of
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
        line for line in lines if not line.startswith("public_key") or line == peer_key
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
