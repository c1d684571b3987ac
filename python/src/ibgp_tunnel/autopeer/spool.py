"""The spool: requests the web service accepted, one JSON file each, for the
privileged apply unit (the thinnest version under the design's contract, written
by the web part to test against; the apply part's fuller one replaces it).

Entry (version 1): {"version": 1, "op": "add"|"update"|"remove", "asn": int,
"request": {...} | null, "challenge": {"id", "text"}, "signature": str,
"signature_kind": "ssh"|"pgp", "pgp_public_key": str | null, "received": iso8601}."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SPOOL_VERSION = 1
SUFFIX = ".json"


def write_request(spool_dir: Path, entry: dict[str, Any]) -> Path:
    """A new spool file holding `entry`: written to a temp file, then renamed (0640)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = spool_dir / f"{stamp}-{int(entry['asn'])}-{secrets.token_hex(4)}{SUFFIX}"
    fd, name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=spool_dir)
    try:
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def read_spool(spool_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every finished entry, oldest first."""
    if not spool_dir.is_dir():
        return []
    paths = sorted(
        p for p in spool_dir.iterdir() if p.suffix == SUFFIX and not p.name.startswith(".")
    )
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in paths]
