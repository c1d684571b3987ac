"""Saved outputs on disk: `--save-outputs` writes them, `--from-outputs` reads them.

Writing: doctor may run as root, in a directory a user can reach, so it writes
only into a directory it has just made itself (mkdir fails if the path exists),
and creates every file there with O_EXCL|O_NOFOLLOW relative to that
directory's descriptor: no symlink planted before or during the run redirects
a write.

Reading: a recording is input like any other. Its files must be regular files
of bounded size, snapshot.json must have exactly the structure `save` writes,
and each problem is reported with the file and the field, never a traceback.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import math
import os
import re
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ibgp_tunnel.doctor.collect import IFNAME, KNOWN_KEYS, Output, Snapshot
from ibgp_tunnel.doctor.parse_ping import split_key
from ibgp_tunnel.errors import InputError

META = "snapshot.json"
# Far above any real host's (a big nftables ruleset is a few MB as JSON).
MAX_META_BYTES = 8 << 20
MAX_OUTPUT_BYTES = 32 << 20
MAX_ARGV = 256
MAX_ROUTE_GET = 1024
MAX_PROBES = 4096  # path MTU pings
MAX_LIVENESS = 1024  # liveness pings, one a tunnel; latency classes, one a peer
PEER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_AGAIN = "save the outputs again with `ibgp-tunnel doctor --save-outputs NEW_DIR`"


# --- writing -------------------------------------------------------------------------


def _exists(directory: Path) -> InputError:
    return InputError(
        f"{directory} exists already; name a new directory for --save-outputs "
        "(doctor creates it itself, so nothing already there is overwritten)"
    )


def require_new_directory(directory: Path) -> None:
    """Refuse a path that exists (even an empty directory, even a dangling symlink):
    `--save-outputs` makes its directory itself, so nothing there is written through.
    Checked before doctor reads anything; the mkdir in `save` is what makes it sure."""
    if os.path.lexists(directory):
        raise _exists(directory)


def _new_directory(directory: Path) -> int:
    """Make `directory` (its parents may exist) and return a descriptor of it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        raise _exists(directory) from None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise InputError(f"{directory} was replaced right after doctor made it: {error}") from None
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise InputError(f"{directory} was replaced right after doctor made it")
    return fd


def _write(directory: Path, dir_fd: int, name: str, text: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        raise InputError(
            f"{directory / name} appeared while doctor was writing its new directory: "
            "someone else writes there; save the outputs somewhere only you can write"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def save(snapshot: Snapshot, directory: Path) -> None:
    """Each tool's output in its own file (KEY.txt, as the tool printed it) and
    snapshot.json with the rest (command lines, exit codes, stderr, time), in a new
    directory `directory` (mode 0700)."""
    unknown = set(snapshot.outputs) - KNOWN_KEYS
    if unknown:  # the keys become file names: only the known ones
        raise InputError(f"cannot save outputs named {sorted(unknown)}")
    require_new_directory(directory)
    dir_fd = _new_directory(directory)
    try:
        for key, output in snapshot.outputs.items():
            _write(directory, dir_fd, f"{key}.txt", output.stdout)
        meta = {
            "time": snapshot.time,
            "outputs": {
                k: {"argv": list(v.argv), "returncode": v.returncode, "stderr": v.stderr}
                for k, v in snapshot.outputs.items()
            },
            "route_get": {k: asdict(v) for k, v in snapshot.route_get.items()},
            "liveness": {k: asdict(v) for k, v in snapshot.liveness.items()},
            "latency": {k: asdict(v) for k, v in snapshot.latency.items()},
        }
        if snapshot.probes is not None:
            meta["probes"] = {k: asdict(v) for k, v in snapshot.probes.items()}
        _write(directory, dir_fd, META, json.dumps(meta, indent=1) + "\n")
    finally:
        os.close(dir_fd)


# --- reading -------------------------------------------------------------------------


def _read(directory: Path, dir_fd: int, name: str, limit: int) -> str:
    path = directory / name
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as error:
        why = "is a symlink" if error.errno == errno.ELOOP else error.strerror
        raise InputError(f"cannot read saved outputs: {path} {why}; {_AGAIN}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path} is not a regular file; {_AGAIN}")
        raw = os.read(fd, limit + 1) if info.st_size <= limit else b""
        if info.st_size > limit or len(raw) > limit:
            raise InputError(f"{path} is larger than {limit >> 20} MiB: not doctor's outputs")
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error}); {_AGAIN}") from None


class _Fields:
    """Type checks on snapshot.json, each error naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def bad(self, field: str, expected: str, value: Any) -> InputError:
        return InputError(
            f"{self.path}: {field} must be {expected}, not {type(value).__name__}; {_AGAIN}"
        )

    def mapping(
        self, value: Any, field: str, allowed: set[str], required: set[str]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.bad(field, "an object", value)
        extra = sorted(set(value) - allowed)
        if extra:
            raise InputError(f"{self.path}: {field} has unknown fields {extra}; {_AGAIN}")
        missing = sorted(required - set(value))
        if missing:
            raise InputError(f"{self.path}: {field} lacks {missing}; {_AGAIN}")
        return value

    def text(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise self.bad(field, "a string", value)
        return value

    def returncode(self, value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not -255 <= value <= 255:
            raise self.bad(field, "an exit status (an integer from -255 to 255)", value)
        return value

    def argv(self, value: Any, field: str) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) > MAX_ARGV:
            raise self.bad(field, f"a list of at most {MAX_ARGV} strings", value)
        return tuple(self.text(a, f"{field}[{i}]") for i, a in enumerate(value))

    def time(self, value: Any, field: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise self.bad(field, "a unix time (a number of seconds, 0 or more)", value)
        return float(value)

    def output(self, value: Any, field: str, stdout: str | None) -> Output:
        names = {"argv", "returncode", "stderr"} | ({"stdout"} if stdout is None else set())
        raw = self.mapping(value, field, names, names)
        return Output(
            self.argv(raw["argv"], f"{field}.argv"),
            self.returncode(raw["returncode"], f"{field}.returncode"),
            self.text(raw["stdout"], f"{field}.stdout") if stdout is None else stdout,
            self.text(raw["stderr"], f"{field}.stderr"),
        )


def _probes(fields: _Fields, top: dict[str, Any]) -> dict[str, Output] | None:
    """The path MTU pings, or None for a recording made before doctor probed."""
    if "probes" not in top:
        return None
    raw = top["probes"]
    if not isinstance(raw, dict) or len(raw) > MAX_PROBES:
        raise fields.bad("probes", f"an object of at most {MAX_PROBES} pings", raw)
    for key in raw:
        try:
            split_key(key)
        except ValueError as error:
            raise InputError(f"{fields.path}: probes has {error}; {_AGAIN}") from None
    return {key: fields.output(value, f"probes.{key}", None) for key, value in raw.items()}


def _by_name(
    fields: _Fields, top: dict[str, Any], key: str, name: re.Pattern[str], what: str
) -> dict[str, Output]:
    """A recording's outputs keyed by a name it must match (none in older recordings)."""
    raw = top.get(key, {})
    if not isinstance(raw, dict) or len(raw) > MAX_LIVENESS:
        raise fields.bad(key, f"an object of at most {MAX_LIVENESS} {what}s", raw)
    for item in raw:
        if not name.fullmatch(item):
            raise InputError(
                f"{fields.path}: {key} has {item!r}, which is no {what} name; {_AGAIN}"
            )
    return {item: fields.output(value, f"{key}.{item}", None) for item, value in raw.items()}


def _liveness(fields: _Fields, top: dict[str, Any]) -> dict[str, Output]:
    """The liveness pings by tunnel interface."""
    return _by_name(fields, top, "liveness", IFNAME, "interface")


def _latency(fields: _Fields, top: dict[str, Any]) -> dict[str, Output]:
    """The DN42 latency classes BIRD held, by peer."""
    return _by_name(fields, top, "latency", PEER_NAME, "DN42 peer")


def load(directory: Path) -> Snapshot:
    """A snapshot written by `save`; InputError (exit 2) names what is wrong."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise InputError(f"cannot read saved outputs in {directory}: {error.strerror}") from None
    try:
        path = directory / META
        try:
            meta = json.loads(_read(directory, dir_fd, META, MAX_META_BYTES))
        except ValueError as error:
            raise InputError(f"{path} is not JSON ({error}); {_AGAIN}") from None
        fields = _Fields(path)
        top = fields.mapping(
            meta,
            "the top level",
            {"time", "outputs", "route_get", "probes", "liveness", "latency"},
            {"time", "outputs"},
        )
        outputs = fields.mapping(top["outputs"], "outputs", KNOWN_KEYS, set())
        route_get = top.get("route_get", {})
        if not isinstance(route_get, dict) or len(route_get) > MAX_ROUTE_GET:
            raise fields.bad(
                "route_get", f"an object of at most {MAX_ROUTE_GET} addresses", route_get
            )
        for address in route_get:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise InputError(
                    f"{path}: route_get has {address!r}, which is no IP address; {_AGAIN}"
                ) from None
        probes = _probes(fields, top)
        liveness = _liveness(fields, top)
        latency = _latency(fields, top)
        return Snapshot(
            {
                key: fields.output(
                    value,
                    f"outputs.{key}",
                    _read(directory, dir_fd, f"{key}.txt", MAX_OUTPUT_BYTES),
                )
                for key, value in outputs.items()
            },
            {
                address: fields.output(value, f"route_get.{address}", None)
                for address, value in route_get.items()
            },
            fields.time(top["time"], "time"),
            probes,
            liveness,
            latency,
        )
    finally:
        os.close(dir_fd)
