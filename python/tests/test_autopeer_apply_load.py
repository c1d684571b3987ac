"""The apply unit trusts no peers/ record either: at every load each record's
signed entry is verified again against the registry as it is now (real
ssh-keygen, test keys) and must ask for exactly the record's request. A record
planted in peers/, one not JSON, one signed by a stranger's key, one whose
signed entry asks for something else: each is set aside in peers-refused/
(never deleted, never applied) and the genuine record still loads; nothing of
this stops the unit. Real core."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from autopeer_signers import registry_with, signed_entry
from nixcore import needs_nix
from test_autopeer_core import AUTOPEER, KEY, KEY2, spec_file, write_plan

from ibgp_tunnel.autopeer import apply as ap
from ibgp_tunnel.autopeer.birdinclude import Bird
from ibgp_tunnel.autopeer.run import ApplyError
from ibgp_tunnel.autopeer.state import StateDir, read_status, write_peer

pytestmark = needs_nix

ASN, PLANTED_ASN = 4242421234, 4242411234
GENUINE = {"asn": ASN, "public_key": KEY, "neighbor": "fe80::1234"}
PLANTED = {"asn": PLANTED_ASN, "public_key": KEY2, "neighbor": "fe80::1236"}


def _applier(tmp_path: Path, log: list[str]) -> ap.Applier:
    state = StateDir(tmp_path / "state")
    state.create()
    config = ap.ApplyConfig(
        state=state,
        spec_file=spec_file(write_plan(tmp_path, autopeer=AUTOPEER)),
        bird=Bird(tmp_path / "bird.conf", tmp_path / "bird.ctl"),
        registry_dir=registry_with(tmp_path, ASN, PLANTED_ASN),
    )
    return ap.Applier(config, log=log.append)


def _record(request: dict[str, Any], signed: dict[str, Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "asn": request["asn"],
        "request": request,
        "applied": "2026-01-01T00:00:00Z",
    }
    if signed is not None:
        record["signed"] = signed
    return record


PLANTS = {
    # A record copied from a genuine one's shape, signed by nobody.
    "unsigned": lambda: _record(PLANTED, None),
    # Signed, but by OTHER_ASN's maintainer's key (not PLANTED_ASN's).
    "stranger": lambda: _record(
        PLANTED, signed_entry(PLANTED_ASN, PLANTED, key="test-other-ssh-ed25519")
    ),
    # A genuine signature over another request of the same ASN.
    "other request": lambda: _record(
        PLANTED, signed_entry(PLANTED_ASN, PLANTED | {"neighbor": "fe80::99"})
    ),
    # A genuine signed removal passed off as the peering's proof.
    "a removal": lambda: _record(PLANTED, signed_entry(PLANTED_ASN, None, op="remove")),
}


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_a_planted_record_is_set_aside_and_the_genuine_one_loads(tmp_path: Path, kind: str) -> None:
    log: list[str] = []
    applier = _applier(tmp_path, log)
    state = applier.config.state
    write_peer(state, "ap4242421234", _record(GENUINE, signed_entry(ASN, GENUINE)))
    planted = PLANTS[kind]()
    write_peer(state, "ap4242411234", planted)
    applier.load()
    assert list(applier.records) == ["ap4242421234"]
    assert list(applier.current.peers) == ["ap4242421234"]
    assert sorted(p.name for p in state.peers.iterdir()) == ["ap4242421234.json"]
    (aside,) = state.peers_refused.iterdir()
    assert json.loads(aside.read_text()) == planted  # kept whole for the operator
    status = read_status(state, PLANTED_ASN)
    assert status is not None and status["state"] == "refused", status
    assert status["field"] in ("signed", "signature"), status
    assert any("ap4242411234: not applied" in line for line in log), log


def test_a_record_that_is_not_json_stops_nothing(tmp_path: Path) -> None:
    log: list[str] = []
    applier = _applier(tmp_path, log)
    state = applier.config.state
    write_peer(state, "ap4242421234", _record(GENUINE, signed_entry(ASN, GENUINE)))
    (state.peers / "ap4242411234.json").write_text("{not json")
    (state.peers / "ap4242411235.json").write_text(json.dumps([1, 2]))
    applier.load()
    assert list(applier.records) == ["ap4242421234"]
    assert sorted(p.read_text() for p in state.peers_refused.iterdir()) == ["[1, 2]", "{not json"]
    assert sum("not a JSON record" in line for line in log) == 1, log
    assert sum("not a peering record" in line for line in log) == 1, log


def test_without_the_registry_nothing_is_set_aside(tmp_path: Path) -> None:
    """A missing checkout is the host's problem, not the requester's: the unit
    retries (ApplyError) and every record stays."""
    log: list[str] = []
    applier = _applier(tmp_path, log)
    state = applier.config.state
    write_peer(state, "ap4242421234", _record(GENUINE, signed_entry(ASN, GENUINE)))
    (applier.config.registry_dir / "data" / "aut-num").rename(tmp_path / "moved-away")
    with pytest.raises(ApplyError, match="registry checkout"):
        applier.load()
    assert [p.name for p in state.peers.iterdir()] == ["ap4242421234.json"]
    assert list(state.peers_refused.iterdir()) == []


def test_the_key_is_checked_against_the_registry_now(tmp_path: Path) -> None:
    """The maintainer removed the key that signed the peering: it is not applied
    again (the status tells them to send a new request)."""
    log: list[str] = []
    applier = _applier(tmp_path, log)
    state = applier.config.state
    write_peer(state, "ap4242421234", _record(GENUINE, signed_entry(ASN, GENUINE)))
    applier.load()
    assert list(applier.records) == ["ap4242421234"]
    aut_num = applier.config.registry_dir / "data" / "aut-num" / f"AS{ASN}"
    aut_num.write_text(aut_num.read_text().replace("TEST-AUTOPEER-MNT", "TEST-OTHER-MNT"))
    applier.load()
    assert applier.records == {}
    status = read_status(state, ASN)
    assert status is not None and status["field"] == "signature", status


def test_the_watch_loop_outlives_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What fails inside the loop (BIRD gone, the registry missing, a state it
    cannot read) is logged and retried; before, it ended the unit."""
    log: list[str] = []
    applier = _applier(tmp_path, log)
    calls: list[str] = []

    def restore() -> ap.Target:
        calls.append("restore")
        return applier.current

    def drain() -> list[ap.Outcome]:
        calls.append("drain")
        if calls.count("drain") == 1:
            raise ApplyError("the registry checkout is gone")
        return []

    monkeypatch.setattr(applier, "restore", restore)
    monkeypatch.setattr(applier, "drain", drain)
    monkeypatch.setattr(ap, "SPOOL_POLL", 0.0)
    ap.watch(applier, stop=lambda: calls.count("drain") >= 3)
    assert calls.count("drain") == 3
    assert any("retrying: the registry checkout is gone" in line for line in log), log


def test_a_fifo_where_a_record_or_status_was_expected_hangs_nothing(tmp_path: Path) -> None:
    """Opened without blocking and refused as no regular file: before, reading a
    FIFO in peers/ waited for a writer forever (the unit hung at load), and the
    web service's status read did the same."""
    log: list[str] = []
    applier = _applier(tmp_path, log)
    state = applier.config.state
    write_peer(state, "ap4242421234", _record(GENUINE, signed_entry(ASN, GENUINE)))
    os.mkfifo(state.peers / "ap4242411234.json")
    os.mkfifo(state.status / f"{PLANTED_ASN}.json")
    done: list[bool] = []

    def work() -> None:
        applier.load()
        done.append(read_status(state, PLANTED_ASN) is None)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert done == [True], "load or read_status blocked on a FIFO"
    assert list(applier.records) == ["ap4242421234"]
    (aside,) = state.peers_refused.iterdir()
    assert stat.S_ISFIFO(aside.lstat().st_mode)
    assert any("not a regular file" in line for line in log), log
