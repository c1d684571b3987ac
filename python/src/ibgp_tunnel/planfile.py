"""Reading a plan file: the one reader `check`, `render`, `doctor`, `keys` and the lab share.

A plan may come from a cloned repository, so nothing about it is trusted:

- it is opened without blocking and must be a regular file, so a FIFO or a
  device named hosts/plan.toml is refused instead of hanging the command;
- its bytes are decoded as they are (no newline translation: `keys` writes the
  plan back with only its public_key lines changed);
- TOML nested deeper than any plan needs is refused before anything recursive
  (tomllib, tomlkit, JSON Schema, pydantic, json, Nix) walks it: Python's
  parsers hit RecursionError long before the file is large.

Functions:
    read_text(path: Path) -> str                       # InputError if unusable
    parse(text: str, path: Path) -> dict[str, Any]      # InputError if not TOML / too deep
    load(path: Path) -> dict[str, Any]                  # both
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import InputError

# The deepest a valid plan goes is hosts.<h>.dn42_peers.<p>.<key> or
# hosts.<h>.announce.ipv4[i]: five levels. Far more is allowed, far less than
# the ~1000 frames a recursive walker has.
MAX_DEPTH = 32


class PlanDepthError(InputError):
    """The plan nests tables or arrays deeper than MAX_DEPTH (exit 2)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_bytes(path: Path) -> bytes:
    """The plan file's bytes; InputError unless it is a readable regular file."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; create one with `ibgp-tunnel init`") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path} is a directory; give the plan file, e.g. hosts/plan.toml")
        if not stat.S_ISREG(mode):
            raise InputError(
                f"replace {path} with the plan file: it is {_kind(mode)}, not a regular file"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    """The plan file as text (UTF-8, line endings kept); InputError if unusable."""
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error.reason}); TOML must be UTF-8") from None


def _too_deep(path: Path) -> PlanDepthError:
    return PlanDepthError(
        f"{path}: the plan nests too deeply (tables or arrays more than {MAX_DEPTH} levels "
        "deep); no plan needs that, fix the file"
    )


def depth(value: Any) -> int:
    """How many tables and arrays deep ``value`` goes, walked without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest  # enough to refuse; do not walk a huge tree further
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse(text: str, path: Path) -> dict[str, Any]:
    """TOML text as data; InputError if it is not TOML or nests more than MAX_DEPTH."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path} is not valid TOML: {error}") from None
    except RecursionError:
        raise _too_deep(path) from None
    if depth(data) > MAX_DEPTH:
        raise _too_deep(path)
    return data


def load(path: Path) -> dict[str, Any]:
    """The plan file's TOML data, checked to be a regular file of sane depth."""
    return parse(read_text(path), path)
