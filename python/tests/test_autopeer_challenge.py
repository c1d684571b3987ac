"""Challenges: what the requester signs names the service, host, ASN, operation,
request digest, nonce and expiry; each is used once (also when two submissions
race), expires, and is refused for any other ASN, operation or request."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ibgp_tunnel.autopeer.challenge import (
    SERVICE,
    ChallengeStore,
    parse_challenge_text,
)
from ibgp_tunnel.autopeer.errors import AutopeerRefused

ASN = 4242420999
DIGEST = "0123456789abcdef" * 4
OTHER = "f" * 64


@pytest.fixture
def store(tmp_path: Path) -> ChallengeStore:
    return ChallengeStore(tmp_path / "challenges", host="rr1.dn42.example")


def refused(words: str, call: object, *args: object, field: str = "challenge_id") -> None:
    with pytest.raises(AutopeerRefused, match=words or None) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.field == field


def test_the_text_names_everything_it_is_bound_to(store: ChallengeStore) -> None:
    challenge = store.issue(ASN, "update", DIGEST, now=1_800_000_000.5, ttl=300)
    fields = parse_challenge_text(challenge.text)
    assert challenge.text.startswith(f"{SERVICE} challenge\n")
    assert fields["host"] == "rr1.dn42.example"
    assert fields["asn"] == "AS4242420999" and fields["op"] == "update"
    assert fields["request"] == f"sha256:{DIGEST}"
    assert len(fields["nonce"]) == 32 and fields["nonce"] not in challenge.id
    assert challenge.expires == 1_800_000_300 and fields["expires"] == "2027-01-15T08:05:00Z"
    assert challenge.expires_iso == fields["expires"]
    # two challenges for the same thing are different texts (a signature over one
    # is no use for the other)
    again = store.issue(ASN, "update", DIGEST, now=1_800_000_000.5, ttl=300)
    assert again.id != challenge.id and again.text != challenge.text


def test_consumed_once_then_refused_as_used(store: ChallengeStore) -> None:
    challenge = store.issue(ASN, "add", DIGEST, now=1000.0)
    assert store.consume(challenge.id, ASN, "add", DIGEST, now=1001.0).text == challenge.text
    refused("already used", store.consume, challenge.id, ASN, "add", DIGEST, 1002.0)


def test_expired(store: ChallengeStore) -> None:
    challenge = store.issue(ASN, "add", DIGEST, now=1000.0, ttl=60)
    refused("expired", store.consume, challenge.id, ASN, "add", DIGEST, 1060.5)


@pytest.mark.parametrize(
    ("asn", "op", "digest", "words"),
    [
        (4242420998, "add", DIGEST, "issued for AS4242420999"),
        (ASN, "remove", DIGEST, "issued for op add"),
        (ASN, "add", OTHER, "another request"),
    ],
)
def test_a_challenge_for_something_else_is_refused_and_burned(
    store: ChallengeStore, asn: int, op: str, digest: str, words: str
) -> None:
    challenge = store.issue(ASN, "add", DIGEST, now=1000.0)
    refused(words, store.consume, challenge.id, asn, op, digest, 1001.0)
    # burned: not even its rightful use works now (a new challenge is cheap)
    refused("already used", store.consume, challenge.id, ASN, "add", DIGEST, 1002.0)


@pytest.mark.parametrize(
    "cid", ["", "../../etc/passwd", "0" * 32, "A" * 32, "0" * 31 + "\n", None, 12, "0" * 33]
)
def test_unknown_or_malformed_ids_are_refused(store: ChallengeStore, cid: object) -> None:
    store.issue(ASN, "add", DIGEST, now=1000.0)
    refused("unknown", store.consume, cid, ASN, "add", DIGEST, 1001.0)


@pytest.mark.parametrize(
    ("asn", "op", "digest", "field"),
    [
        (0, "add", DIGEST, "asn"),
        (2**32, "add", DIGEST, "asn"),
        (True, "add", DIGEST, "asn"),
        ("4242420999", "add", DIGEST, "asn"),
        (ASN, "add\nasn: AS1", DIGEST, "op"),
        (ASN, "delete", DIGEST, "op"),
        (ASN, "add", DIGEST.upper(), "request"),
        (ASN, "add", DIGEST + "\nop: remove", "request"),
        (ASN, "add", None, "request"),
    ],
)
def test_issue_refuses_what_it_cannot_bind(
    store: ChallengeStore, asn: object, op: str, digest: object, field: str
) -> None:
    refused("", store.issue, asn, op, digest, 1000.0, field=field)


def test_a_race_of_submissions_has_one_winner(store: ChallengeStore) -> None:
    challenge = store.issue(ASN, "add", DIGEST, now=1000.0)
    barrier = threading.Barrier(8)
    results: list[str] = []

    def submit() -> None:
        barrier.wait()
        try:
            store.consume(challenge.id, ASN, "add", DIGEST, now=1001.0)
            results.append("won")
        except AutopeerRefused as error:
            results.append(str(error))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("won") == 1 and all("already used" in r for r in results if r != "won")


def test_expired_challenges_are_pruned_and_files_are_private(store: ChallengeStore) -> None:
    old = store.issue(ASN, "add", DIGEST, now=1000.0, ttl=10)
    path = store.directory / f"{old.id}.json"
    assert path.stat().st_mode & 0o777 == 0o600 and store.directory.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["asn"] == ASN
    new = store.issue(ASN, "add", DIGEST, now=2000.0)
    assert not path.exists() and (store.directory / f"{new.id}.json").exists()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        f"{SERVICE} challenge\nhost: a\nasn: AS1\nop: add\nrequest: x\nnonce: n\n",
        f"{SERVICE} challenge\nhost: a\nasn: AS1\nop: add\nrequest: x\nnonce: n\nexpires: e\n"
        "extra: 1\n",
        f"{SERVICE} challenge\nhost: a\nasn: AS1\nop: add\nrequest: x\nnonce: n\nexpires: e",
    ],
)
def test_parse_refuses_texts_we_did_not_write(text: str) -> None:
    refused("not a challenge text", parse_challenge_text, text, field="challenge")


def test_a_host_name_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        ChallengeStore(tmp_path, host="rr1\nasn: AS1")
