"""The spool between the web service and the apply unit: whole files or none,
0640, oldest first, and nothing a stranger could put in a file read as an entry
unchecked (symlinks, huge files, non-JSON, unknown fields, wrong types)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ibgp_tunnel.autopeer import spool
from ibgp_tunnel.autopeer.errors import AutopeerRefused

REQUEST = {
    "asn": 4242420001,
    "public_key": "rQ6Q9nRHXAWqsrsIgPAjSFzfLMYIYSdVVVXTTr3mfWs=",
    "neighbor": "fe80::1",
}


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "op": "add",
        "asn": 4242420001,
        "request": dict(REQUEST),
        "challenge": {"id": "c0ffee", "text": "sign me"},
        "signature": "-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\n",
        "signature_kind": "ssh",
        "pgp_public_key": None,
        "received": "2026-12-07T00:00:00+00:00",
    }
    return base | changes


def test_round_trip_mode_and_order(tmp_path: Path) -> None:
    first = spool.write_request(tmp_path, entry())
    second = spool.write_request(tmp_path, entry(op="update"))
    assert stat.S_IMODE(first.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])
    found = spool.read_spool(tmp_path)
    assert [s.path for s in found] == [first, second]
    assert [s.entry.op for s in found if s.entry] == ["add", "update"]
    assert found[0].entry is not None and found[0].entry.request == REQUEST


def test_a_bad_entry_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(AutopeerRefused) as refused:
        spool.write_request(tmp_path, entry(op="add; rm -rf /"))
    assert refused.value.field == "op"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": 2}, "version"),
        ({"asn": "4242420001"}, "asn"),
        ({"asn": 0}, "asn"),
        ({"asn": 2**32}, "asn"),
        ({"signature_kind": "x509"}, "signature_kind"),
        ({"extra": 1}, "extra"),
        ({"challenge": {"id": "../../etc/passwd", "text": "t"}}, "challenge.id"),
        ({"challenge": {"id": "a", "text": "t", "more": 1}}, "challenge.more"),
        ({"signature": "x" * 20000}, "signature"),
        ({"received": "yesterday"}, "received"),
        ({"request": None}, "request"),
        ({"op": "remove"}, "request"),
        ({"request": REQUEST | {"asn": 4242420002}}, "request.asn"),
    ],
)
def test_refused_fields(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(AutopeerRefused) as refused:
        spool.parse_entry(entry(**changes))
    assert refused.value.field == field


def test_remove_without_request() -> None:
    parsed = spool.parse_entry(entry(op="remove", request=None))
    assert parsed.op == "remove" and parsed.request is None


def test_what_is_not_an_entry(tmp_path: Path) -> None:
    good = spool.write_request(tmp_path, entry())
    (tmp_path / "b-huge.json").write_bytes(b"{" + b" " * spool.MAX_ENTRY_BYTES + b"}")
    (tmp_path / "c-binary.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "d-list.json").write_text("[1, 2]")
    secret = tmp_path.parent / "secret.txt"
    secret.write_text(json.dumps(entry()))
    os.symlink(secret, tmp_path / "e-link.json")
    (tmp_path / "f-dir.json").mkdir()
    (tmp_path / ".g-partial.json").write_text("{")  # a write in progress
    (tmp_path / "h-not-json.txt").write_text("x")
    found = {s.path.name: s for s in spool.read_spool(tmp_path)}
    assert set(found) == {good.name, "b-huge.json", "c-binary.json", "d-list.json"} | {
        "e-link.json",
        "f-dir.json",
    }
    assert found[good.name].entry is not None
    for name in ("b-huge.json", "c-binary.json", "d-list.json", "e-link.json", "f-dir.json"):
        assert found[name].entry is None and found[name].problem, name
    assert "larger than" in found["b-huge.json"].problem


def test_missing_spool_is_empty(tmp_path: Path) -> None:
    assert spool.read_spool(tmp_path / "none") == []
