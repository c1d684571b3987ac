"""The autopeer state directory (/var/lib/ibgp-tunnel/autopeer on a host, under the
lab directory in the lab): what lives where, and the applied peers (`peers/`,
the source of truth a restore rebuilds from) and the per-ASN status files
(`status/`, what the web service shows the requester)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.files import NotAFile, read_regular, write_atomic
from ibgp_tunnel.paths import defaults

# One place for the layout: base/defaults.toml [autopeer], read by the core too
# (bird.conf's include line). Each path there lies under state_dir; a StateDir
# anywhere else (the lab's) keeps the same layout below its root.
_LAYOUT = defaults()["autopeer"]
DEFAULT_STATE_DIR = Path(_LAYOUT["state_dir"])


def _below(key: str) -> Path:
    return Path(_LAYOUT[key]).relative_to(DEFAULT_STATE_DIR)


# Names the core gives autopeers: ap<asn>, ap<asn>_<k> when an AS may have
# several (render/autopeer.nix); checked here again because a name becomes a
# file name.
# A peers/ record (the signed entry, a PGP key at most, inside) or a status file:
# far above what the apply unit writes.
MAX_FILE_BYTES = 256 * 1024
_PEER_NAME = re.compile(r"^ap[0-9]{1,10}(_[0-9]{1,3})?$")


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def spool(self) -> Path:
        return self.root / _below("spool_dir")

    @property
    def peers(self) -> Path:
        return self.root / _below("peers_dir")

    @property
    def status(self) -> Path:
        return self.root / _below("status_dir")

    @property
    def challenges(self) -> Path:
        return self.root / _below("challenges_dir")

    @property
    def registry(self) -> Path:
        return self.root / _below("registry_checkout")

    @property
    def bird_include(self) -> Path:
        return self.root / _below("bird_include")

    @property
    def failed(self) -> Path:
        """Spool entries that could not even be read, kept for the operator."""
        return self.root / "spool-failed"

    @property
    def peers_refused(self) -> Path:
        """peers/ records the apply unit refused at load (not JSON, not signed by
        the ASN's maintainer now, refused by the core), kept for the operator."""
        return self.root / "peers-refused"

    @property
    def generation_file(self) -> Path:
        return self.root / "generation"

    def generation(self) -> str:
        """Changes whenever peers/ does: a running apply unit reloads when it sees
        another process (the operator's `remove`) changed the state."""
        try:
            return self.generation_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return ""

    def bump(self) -> str:
        value = f"{time.time_ns()}-{os.getpid()}"
        write_atomic(self.generation_file, value + "\n", 0o644)
        return value

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One process changes the state at a time (the apply unit, the operator)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create(self) -> None:
        """Every directory, and the BIRD include (empty: bird.conf always includes it)."""
        for directory, mode in (
            (self.root, 0o755),
            (self.spool, 0o770),
            (self.peers, 0o700),
            (self.status, 0o755),
            (self.challenges, 0o700),
            (self.bird_include.parent, 0o755),
            (self.failed, 0o700),
            (self.peers_refused, 0o700),
        ):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode)
        if not self.bird_include.exists():
            write_atomic(self.bird_include, "", 0o644)


def peer_path(state: StateDir, name: str) -> Path:
    if not _PEER_NAME.match(name):
        raise AutopeerRefused(f"{name!r} is not an autopeer name (ap<asn>[index])", "name")
    return state.peers / f"{name}.json"


@dataclass(frozen=True)
class PeerFiles:
    """peers/ as found: the records, and the files that are none (name -> why)."""

    records: dict[str, dict[str, Any]]
    unreadable: dict[str, str]


def scan_peers(state: StateDir) -> PeerFiles:
    """Every peers/ file: a JSON object with an integer `asn` and a `request` object
    is a record; anything else is named with why it is not (never raised: one bad
    file must not stop the apply unit from loading the others)."""
    records: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in sorted(state.peers.glob("*.json")):
            if path.is_symlink() or not _PEER_NAME.match(path.stem):
                continue
            try:
                record = json.loads(read_regular(path, MAX_FILE_BYTES).decode("utf-8"))
            except NotAFile as error:
                unreadable[path.stem] = f"not a record file ({error})"
                continue
            except ValueError as error:  # UnicodeDecodeError too
                unreadable[path.stem] = f"not a JSON record ({error})"
                continue
            if not (
                isinstance(record, dict)
                and type(record.get("asn")) is int
                and isinstance(record.get("request"), dict)
            ):
                unreadable[path.stem] = "not a peering record (an integer asn and a request)"
                continue
            records[path.stem] = record
    return PeerFiles(records, unreadable)


def read_peers(state: StateDir) -> dict[str, dict[str, Any]]:
    """The applied peers: name -> record (request, signed entry, rendered facts)."""
    return scan_peers(state).records


def write_peer(state: StateDir, name: str, record: dict[str, Any]) -> None:
    write_atomic(peer_path(state, name), json.dumps(record, indent=1, sort_keys=True) + "\n", 0o600)


def delete_peer(state: StateDir, name: str) -> None:
    peer_path(state, name).unlink(missing_ok=True)


def set_aside_peer(state: StateDir, name: str) -> Path:
    """A record the apply unit will not run, moved to peers-refused/ for the operator
    (never deleted: it may be the only copy of something they need to see)."""
    source = peer_path(state, name)
    state.peers_refused.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = state.peers_refused / f"{name}.{stamp}.{time.time_ns() % 10**9}.json"
    source.replace(target)
    return target


def status_path(state: StateDir, asn: int) -> Path:
    return state.status / f"{int(asn)}.json"


def read_status(state: StateDir, asn: int) -> dict[str, Any] | None:
    """status/<asn>.json as the apply unit wrote it, a JSON object; None when absent
    or not one (put there by hand: the apply unit writes it again whole)."""
    try:
        data = json.loads(read_regular(status_path(state, asn), MAX_FILE_BYTES))
    except (NotAFile, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_status(state: StateDir, asn: int, status: dict[str, Any]) -> None:
    """What the web service shows for `asn`; readable by it (0644 in a 0755 directory)."""
    text = json.dumps({"asn": int(asn), **status}, indent=1, sort_keys=True) + "\n"
    write_atomic(status_path(state, asn), text, 0o644)
