"""Where a lab lives and which BIRD it runs: its state directory, the prefix of
its namespace names, and the directory holding `bird` and `birdc`.

Each is read from the environment when used (the CLI's options set the same
variables), so a second lab, such as the tests' own, lives beside the one a
user has up without either seeing the other.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ibgp_tunnel.lab.errors import LabError, MissingToolError

LAB_DIR_ENV = "IBGP_TUNNEL_LAB_DIR"
PREFIX_ENV = "IBGP_TUNNEL_LAB_PREFIX"
BIRD_DIR_ENV = "IBGP_TUNNEL_BIRD_DIR"

# Always under /run by default because the lab dies with the machine anyway.
DEFAULT_LAB_DIR = Path("/run/ibgp-tunnel-lab")
DEFAULT_PREFIX = "ibgpt-"
# Short, so `ip netns` output stays readable and a prefix plus a host name
# would still fit an interface name (15 bytes) should one ever carry it.
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,6}-")


def lab_dir() -> Path:
    """The lab's state directory: $IBGP_TUNNEL_LAB_DIR or /run/ibgp-tunnel-lab."""
    value = os.environ.get(LAB_DIR_ENV)
    if not value:
        return DEFAULT_LAB_DIR
    path = Path(value)
    if not path.is_absolute():
        raise LabError(f"{LAB_DIR_ENV}={value!r}: give an absolute path, e.g. /run/my-lab")
    return path


def validate_prefix(value: str, origin: str = PREFIX_ENV) -> str:
    if not _PREFIX.fullmatch(value):
        raise LabError(
            f"{origin}={value!r}: a namespace prefix is a lowercase letter, up to 6 more "
            "letters or digits, and a final '-' (e.g. 'ibgpt-', 'test-')"
        )
    return value


def netns_prefix() -> str:
    """What every namespace name of the lab starts with: $IBGP_TUNNEL_LAB_PREFIX or ibgpt-."""
    value = os.environ.get(PREFIX_ENV)
    return validate_prefix(value) if value else DEFAULT_PREFIX


def bird_dir() -> Path | None:
    """The directory holding the `bird` and `birdc` the lab runs ($IBGP_TUNNEL_BIRD_DIR),
    or None for the ones on PATH."""
    value = os.environ.get(BIRD_DIR_ENV)
    if not value:
        return None
    path = Path(value).resolve()
    for tool in ("bird", "birdc"):
        if not os.access(path / tool, os.X_OK):
            raise MissingToolError(
                f"{BIRD_DIR_ENV}={value!r} holds no executable {tool}; run scripts/setup "
                "(it provides .cache/bird/bird3/bin) or name a directory with bird and birdc"
            )
    return path


def bird_tool(tool: str) -> str:
    """The command to run for `bird` or `birdc`: from the BIRD directory, else PATH."""
    directory = bird_dir()
    if directory is not None:
        return str(directory / tool)
    found = shutil.which(tool)
    return found or tool


DN42_REGISTRY_ENV = "IBGP_TUNNEL_LAB_DN42_REGISTRY"


def dn42_registry() -> Path | None:
    """A DN42 registry's data directory ($IBGP_TUNNEL_LAB_DN42_REGISTRY: the one with
    route/ and route6/) whose ROAs the lab adds to its ROA files and RTR cache, or None."""
    value = os.environ.get(DN42_REGISTRY_ENV)
    if not value:
        return None
    path = Path(value)
    if not (path / "route").is_dir() or not (path / "route6").is_dir():
        raise LabError(f"{DN42_REGISTRY_ENV}={value!r}: give a DN42 registry's data directory")
    return path


def use_bench_lab(lab_dir: str, prefix: str, bird_dir: Path | None, default_bird: Path) -> str:
    """Point this process's lab at a bench's own directory, prefix and BIRD (the
    given one, else default_bird when it is installed), and say which BIRD that is."""
    os.environ[LAB_DIR_ENV] = lab_dir
    os.environ[PREFIX_ENV] = validate_prefix(prefix, "--prefix")
    chosen = bird_dir or (default_bird if (default_bird / "bird").exists() else None)
    if chosen is not None:
        os.environ[BIRD_DIR_ENV] = str(chosen.resolve())
    version = subprocess.run(
        [bird_tool("bird"), "--version"], capture_output=True, text=True, check=False
    )
    return (version.stdout or version.stderr).strip()
