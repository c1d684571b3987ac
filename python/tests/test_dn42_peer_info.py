"""`ibgp-tunnel dn42 peer-info PLAN HOST PEER`: what a DN42 peer is given, as text and
--json, from a plan keyed by the real `keys` (sops, age) and the core's rendering;
never a secret, and bad input is a message naming the field, not a traceback."""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path

import pytest
from cli_helpers import EXAMPLE_PLAN, run
from plandiff import unkeyed
from sopstools import TEST_KEY, recipient, write_sops_config

from ibgp_tunnel.keys import generate_keys, get_secret, public_key_of
from ibgp_tunnel.keys.sops import decrypt_file

PEER_KEY_LINE = 'public_key = "GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="\n'


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(TEST_KEY))
    root = tmp_path / "project"
    (root / "hosts").mkdir(parents=True)
    (root / "hosts" / "plan.toml").write_bytes(unkeyed(EXAMPLE_PLAN.read_bytes()))
    write_sops_config(root, [(r"secrets/[^/]+\.yaml$", recipient())])
    return root


def _plan(root: Path) -> Path:
    return root / "hosts" / "plan.toml"


def _keyed(root: Path) -> dict[str, object]:
    generate_keys(_plan(root), root / "secrets", root / ".sops.yaml")
    return decrypt_file(root / "secrets" / "dmz.yaml")


def _secret_forms(value: str) -> list[str]:
    """A base64 secret as it could leak: itself, its bytes as hex, in URL-safe base64."""
    raw = base64.b64decode(value)
    return [value, raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]


def test_text_and_json_give_what_a_dn42_peer_asks_for_and_no_secret(root: Path) -> None:
    dmz = _keyed(root)
    our_key = public_key_of(str(get_secret(dmz, "wg_dn42/private_key")))
    plan = _plan(root)
    assert f'dn42_public_key = "{our_key}"' in plan.read_text()

    text = run("dn42", "peer-info", plan, "dmz", "peer1")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert "ASN:                  4242420038" in lines
    # DN42's convention: 2 + the last four digits of the peer's ASN (4242421080).
    assert "WireGuard endpoint:   203.0.113.10:21080" in lines
    assert f"WireGuard public key: {our_key}" in lines
    assert "Link-local IPv6:      fe80::38 (yours: fe80::1080)" in lines
    assert "IPv4 (tunnel):        172.23.101.1 (yours: 172.20.42.1)" in lines
    assert "MTU:                  1420" in lines
    assert any(
        line.startswith("Preshared key:        yes; send it over an encrypted") for line in lines
    )
    secrets_file = root / "secrets" / "dmz.yaml"
    assert f"""sops -d --extract '["wg_dn42"]["psk"]["peer1"]' {secrets_file}""" in text.stdout

    as_json = run("dn42", "peer-info", plan, "dmz", "peer1", "--json")
    assert as_json.exit_code == 0, as_json.output
    info = json.loads(as_json.stdout)
    assert info["asn"] == 4242420038 and info["peer_asn"] == 4242421080
    assert (info["endpoint_host"], info["listen_port"]) == ("203.0.113.10", 21080)
    assert info["public_key"] == our_key
    assert (info["link_local"], info["peer_link_local"]) == ("fe80::38", "fe80::1080")
    assert (info["ipv4"], info["peer_ipv4"], info["mtu"]) == ("172.23.101.1", "172.20.42.1", 1420)
    assert info["preshared_key"] is True and info["psk_secret"] == "wg_dn42/psk/peer1"
    assert info["extended_next_hop"] is True and info["peer_endpoint"] is None

    secrets = [
        str(get_secret(dmz, "wg_dn42/private_key")),
        str(get_secret(dmz, "wg_dn42/psk/peer1")),
        str(get_secret(dmz, "wg_ibgp/private_key")),
        str(get_secret(dmz, "wg_ibgp/psk/pve")),
    ]
    printed = text.output + as_json.output
    for secret in secrets:
        for form in _secret_forms(secret):
            assert form not in printed


def test_before_keys_the_public_key_is_missing_and_says_how_to_get_it(root: Path) -> None:
    result = run("dn42", "peer-info", _plan(root), "dmz", "peer1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["public_key"] is None
    text = run("dn42", "peer-info", _plan(root), "dmz", "peer1")
    assert "run `ibgp-tunnel keys`, it writes hosts.dmz.dn42_public_key" in text.stdout


def test_port_mtu_endpoint_and_no_psk_follow_the_plan(root: Path) -> None:
    plan = _plan(root)
    text = plan.read_text()
    text = text.replace(
        "preshared_key = true\n",
        'listen_port = 23456\nmtu = 1380\nendpoint = "[2001:db8::9]:31337"\n',
    )
    text = text.replace('endpoint = "203.0.113.10"', 'endpoint = "2001:db8::10"')
    plan.write_text(text)
    result = run("dn42", "peer-info", plan, "dmz", "peer1")
    assert result.exit_code == 0, result.output
    assert "WireGuard endpoint:   [2001:db8::10]:23456" in result.stdout
    assert "MTU:                  1380" in result.stdout
    assert "We dial:              [2001:db8::9]:31337" in result.stdout
    assert "Preshared key:        no" in result.stdout
    info = json.loads(run("dn42", "peer-info", plan, "dmz", "peer1", "--json").stdout)
    assert info["preshared_key"] is False and info["psk_command"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("dmz", "nope"),
            "name a DN42 peer of host dmz: 'nope' is not one (hosts.dmz.dn42_peers: peer1)",
        ),
        (
            ("pve", "peer1"),
            "name a DN42 peer of host pve: 'peer1' is not one (hosts.pve.dn42_peers: none)",
        ),
        (("ghost", "peer1"), "name a host of"),
        (("dmz", "../../etc/passwd\x1b[2J"), "'../../etc/passwd\\x1b[2J' is not one"),
    ],
)
def test_an_unknown_host_or_peer_is_named_with_exit_2(
    root: Path, args: tuple[str, str], message: str
) -> None:
    result = run("dn42", "peer-info", _plan(root), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "\x1b" not in result.output


def test_a_peer_without_a_tunnel_names_the_field_to_set(root: Path) -> None:
    plan = _plan(root)
    text = plan.read_text()
    start = text.index("[hosts.dmz.dn42_peers.peer1]")
    end = text.index("[hosts.dmz.dn42_roa]")
    plan.write_text(
        text[:start]
        + "[hosts.dmz.dn42_peers.peer1]\nasn = 4242421080\n"
        + 'neighbor = "172.20.42.1"\ninterface = "eth9"\n\n'
        + text[end:]
    )
    result = run("dn42", "peer-info", plan, "dmz", "peer1")
    assert result.exit_code == 2, result.output
    assert "set hosts.dmz.dn42_peers.peer1.public_key" in result.stderr


@pytest.mark.parametrize(
    "name",
    ['"$(touch /tmp/owned)"', '"a\\nb"', '"peer1; reboot"', '"../x"', '"x\\u001b[31m"'],
)
def test_a_hostile_peer_name_in_the_plan_is_refused_by_check(root: Path, name: str) -> None:
    plan = _plan(root)
    plan.write_text(
        plan.read_text().replace("[hosts.dmz.dn42_peers.peer1]", f"[hosts.dmz.dn42_peers.{name}]")
    )
    result = run("dn42", "peer-info", plan, "dmz", "peer1")
    assert result.exit_code in (1, 2), result.output
    assert "hosts.dmz.dn42_peers" in result.output
    assert "\x1b" not in result.output
    assert not Path("/tmp/owned").exists()


@pytest.mark.parametrize(
    "value",
    [
        '"not a key"',
        '"YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixo=\\n$(id)"',
        '"YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixo=\\u001b[2J"',
        "42",
    ],
)
def test_a_bad_dn42_public_key_in_the_plan_is_an_error_naming_it(root: Path, value: str) -> None:
    plan = _plan(root)
    plan.write_text(
        plan.read_text().replace(
            'endpoint = "203.0.113.10"', f'endpoint = "203.0.113.10"\ndn42_public_key = {value}'
        )
    )
    result = run("dn42", "peer-info", plan, "dmz", "peer1")
    assert result.exit_code == 1, result.output
    assert "hosts.dmz.dn42_public_key" in result.output
    assert "\x1b" not in result.output and "uid=" not in result.output
    # keys refuses such a plan too, and writes nothing.
    before = sorted(p.name for p in root.rglob("*"))
    keys_run = run("keys", plan)
    assert keys_run.exit_code == 2 and "hosts.dmz.dn42_public_key" in keys_run.output
    assert sorted(p.name for p in root.rglob("*")) == before


def test_a_missing_plan_is_exit_2_without_traceback(tmp_path: Path) -> None:
    result = run("dn42", "peer-info", tmp_path / "none.toml", "dmz", "peer1")
    assert result.exit_code == 2
    assert "none.toml" in result.stderr


def test_no_secrets_file_is_read_even_a_planted_fifo(root: Path) -> None:
    # A FIFO in place of the secrets file: opening it would block the command,
    # and a planted plaintext key could not be printed if it is never read.
    _keyed(root)
    planted = root / "secrets" / "dmz.yaml"
    planted.unlink()
    os.mkfifo(planted)

    def blocked(*_: object) -> None:
        raise AssertionError("peer-info opened the secrets file")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(60)
    try:
        result = run("dn42", "peer-info", _plan(root), "dmz", "peer1", "--json")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["psk_command"].endswith(str(planted))
