"""The apply unit trusts no spool entry: the signature is verified again against
the registry (real ssh-keygen, the fixture registry's test keys), the signed
challenge must name the entry's ASN, op and request, and a challenge id applies
once. Every refusal lands in the ASN's status file with the field; the spool
is empty afterwards and an unreadable file is set aside, never applied."""

from __future__ import annotations

import dataclasses
import json
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ibgp_tunnel.autopeer import apply as ap
from ibgp_tunnel.autopeer import spool
from ibgp_tunnel.autopeer.birdinclude import Bird
from ibgp_tunnel.autopeer.challenge import ChallengeStore
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.signature import NAMESPACE
from ibgp_tunnel.autopeer.state import StateDir, read_status

DATA = Path(__file__).resolve().parent / "data" / "autopeer-registry"
ASN, OTHER_ASN = 4242420999, 4242420998
DIGEST = "0" * 64  # a remove signs no request; the digest is the web's business


@pytest.fixture
def applier(tmp_path: Path) -> ap.Applier:
    state = StateDir(tmp_path / "state")
    state.create()
    config = ap.ApplyConfig(
        state=state,
        spec_file=tmp_path / "no-spec.json",  # never reached: every entry here is refused
        bird=Bird(tmp_path / "bird.conf", tmp_path / "bird.ctl"),
        registry_dir=DATA,
    )
    return ap.Applier(config)


def sign(tmp_path: Path, text: str, key: str = "test-ssh-ed25519") -> str:
    private = tmp_path / key
    if not private.exists():
        shutil.copy(DATA / key, private)
        private.chmod(0o600)
    message = tmp_path / "message"
    message.write_text(text)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(private), "-n", NAMESPACE, str(message)],
        check=True,
        capture_output=True,
    )
    signature = (tmp_path / "message.sig").read_text()
    (tmp_path / "message.sig").unlink()
    return signature


def remove_entry(
    tmp_path: Path, *, asn: int = ASN, signed_asn: int = ASN, op: str = "remove", **more: Any
) -> spool.SpoolEntry:
    store = ChallengeStore(tmp_path / "challenges", host="reflector")
    challenge = store.issue(signed_asn, op, DIGEST, ttl=60)
    data: dict[str, Any] = {
        "version": 1,
        "op": "remove",
        "asn": asn,
        "request": None,
        "challenge": {"id": challenge.id, "text": challenge.text},
        "signature": sign(tmp_path, challenge.text, more.pop("key", "test-ssh-ed25519")),
        "signature_kind": "ssh",
        "pgp_public_key": None,
        "received": spool.now_iso(),
    }
    return spool.parse_entry(data | more)


def test_a_good_signature_gets_as_far_as_the_state(tmp_path: Path, applier: ap.Applier) -> None:
    outcome = applier.handle(remove_entry(tmp_path))
    # Past the signature: refused only because AS4242420999 has no peering here.
    assert (outcome.state, outcome.field) == ("refused", "asn"), outcome
    assert "no peering here to remove" in outcome.message


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"key": "test-other-ssh-ed25519"}, "signature", ""),
        ({"signed_asn": OTHER_ASN}, "challenge", "another ASN"),
        ({"op": "add"}, "challenge", "not for remove"),
        ({"received": "2099-01-01T00:00:00+00:00"}, "challenge", "expired"),
        ({"signature_kind": "pgp"}, "signature_kind", "does not match"),
        (
            {"signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"},
            "signature",
            "",
        ),
    ],
)
def test_refusals(
    tmp_path: Path, applier: ap.Applier, changes: dict[str, Any], field: str, words: str
) -> None:
    outcome = applier.handle(remove_entry(tmp_path, **changes))
    assert (outcome.state, outcome.field) == ("refused", field), outcome
    assert words in outcome.message
    status = read_status(applier.config.state, ASN)
    assert status is not None and status["state"] == "refused" and status["field"] == field


def test_tampered_text(tmp_path: Path, applier: ap.Applier) -> None:
    entry = remove_entry(tmp_path)
    text = entry.challenge.text.replace("nonce: ", "nonce: 0")
    tampered = entry.model_copy(update={"challenge": spool.Challenge(id="x1", text=text)})
    outcome = applier.handle(tampered)
    assert (outcome.state, outcome.field) == ("refused", "signature"), outcome
    assert "does not verify" in outcome.message


def test_replay(tmp_path: Path, applier: ap.Applier) -> None:
    entry = remove_entry(tmp_path)
    assert applier.handle(entry).field == "asn"  # verified, and the id is spent
    again = applier.handle(entry)
    assert (again.state, again.field) == ("refused", "challenge")
    assert "used already" in again.message


def test_drain(tmp_path: Path, applier: ap.Applier) -> None:
    state = applier.config.state
    spool.write_request(state.spool, remove_entry(tmp_path))
    spool.write_request(state.spool, remove_entry(tmp_path, key="test-other-ssh-ed25519"))
    (state.spool / "zz-garbage.json").write_text('{"version": 1, "op": "add\\n}"}')
    outcomes = applier.drain()
    assert [(o.state, o.field) for o in outcomes] == [("refused", "asn"), ("refused", "signature")]
    assert list(state.spool.iterdir()) == []
    assert [p.name for p in state.failed.iterdir()] == ["zz-garbage.json"]
    status = state.status / f"{ASN}.json"
    assert stat.S_IMODE(status.stat().st_mode) == 0o644
    assert json.loads(status.read_text())["field"] == "signature"


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dmz's spec from the lab's autopeer plan (autopeer on), as the unit reads it."""
    from ibgp_tunnel.lab import autopeerlab

    directory = tmp_path_factory.mktemp("spec")
    (directory / "nodes" / "dmz").mkdir(parents=True)
    autopeerlab.write_spec(directory, "dmz", PLAN)
    return autopeerlab.spec_file(directory, "dmz")


PLAN = Path(__file__).resolve().parent / "plans" / "autopeer.toml"
KEY = "rQ6Q9nRHXAWqsrsIgPAjSFzfLMYIYSdVVVXTTr3mfWs="
GOOD = {"asn": ASN, "public_key": KEY, "neighbor": "fe80::999:1"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"neighbor": 'fe80::1";\n}\nprotocol device x {'}, "neighbor"),
        ({"neighbor": "fe80::1%eth0"}, "neighbor"),
        ({"neighbor": "172.20.0.1"}, "neighbor"),
        ({"public_key": KEY[:-1] + "\n"}, "public_key"),
        ({"public_key": "$(reboot)" + KEY[9:]}, "public_key"),
        ({"endpoint": "$(touch /tmp/pwned):1"}, "endpoint"),
        ({"endpoint": "host;reboot:20000"}, "endpoint"),
        ({"endpoint": "../../etc:1"}, "endpoint"),
        ({"peer_ipv4": "172.20.0.1/32 peer 1.1.1.1"}, "peer_ipv4"),
        ({"mtu": 99999}, "mtu"),
        ({"mtu": "1420"}, "mtu"),
        ({"neighbor": "fe80::38"}, "neighbor"),  # our own link-local
        ({"interface": "wg-ibgp"}, "request"),  # a key a request does not have
        ({"neighbor": "fe80::" + "1" * 5000}, "neighbor"),
        ({"neighbor": "fe80::1\x00"}, "neighbor"),
        ({"neighbor": "fe80::\u0661"}, "neighbor"),  # an Arabic-Indic digit
    ],
)
def test_signed_but_bad_requests_are_refused_again(
    tmp_path: Path, applier: ap.Applier, spec_file: Path, changes: dict[str, Any], field: str
) -> None:
    """The web service could have been bypassed (a file in the spool): a signed entry
    whose request breaks the core's rules is refused by the unit, nothing applied."""
    from ibgp_tunnel.autopeer.request import parse_request

    request = GOOD | changes
    applier = ap.Applier(dataclasses.replace(applier.config, spec_file=spec_file))
    try:
        digest = parse_request(request).digest()
    except AutopeerRefused as refused:  # refused before any signature: same field
        assert refused.field == field
        return
    store = ChallengeStore(tmp_path / "challenges", host="reflector")
    challenge = store.issue(ASN, "add", digest, ttl=60)
    entry = spool.parse_entry(
        {
            "version": 1,
            "op": "add",
            "asn": ASN,
            "request": request,
            "challenge": {"id": challenge.id, "text": challenge.text},
            "signature": sign(tmp_path, challenge.text),
            "signature_kind": "ssh",
            "pgp_public_key": None,
            "received": spool.now_iso(),
        }
    )
    outcome = applier.handle(entry)
    assert (outcome.state, outcome.field) == ("refused", field), outcome
    assert st_read_peers(applier) == {}
    assert applier.config.state.bird_include.read_text() == ""


def st_read_peers(applier: ap.Applier) -> dict[str, Any]:
    from ibgp_tunnel.autopeer.state import read_peers

    return read_peers(applier.config.state)
