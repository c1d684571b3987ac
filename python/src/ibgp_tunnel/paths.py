"""Where the Nix core (modules/lib) lives, and its shared constants.

One fact, one place: the default port, interface, /1 halves, secret names and
the DN42 prefix set are read from modules/lib/base/defaults.toml and
base/dn42-defaults.toml, never re-typed here. Every file of the core Python
reads or hands to Nix is found here.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import InputError

ENV_VAR = "IBGP_TUNNEL_NIX_LIB"
# Paths inside modules/lib (its base/ stage holds the shared constants).
DEFAULTS_FILE = "base/defaults.toml"
DN42_DEFAULTS_FILE = "base/dn42-defaults.toml"
CORE_FILE = "default.nix"

# Inside a wheel built from a checkout (see python/hatch_build.py).
_PACKAGED = Path(__file__).resolve().parent / "nix_lib"


def _is_core_dir(path: Path) -> bool:
    # defaults.toml is the marker: it exists wherever the core does, and it is all
    # that `check` needs; `render` additionally asks for default.nix.
    return (path / DEFAULTS_FILE).is_file()


def _from_checkout(start: Path) -> Path | None:
    for parent in start.parents:
        candidate = parent / "modules" / "lib"
        if _is_core_dir(candidate):
            return candidate
    return None


@cache
def nix_lib_dir() -> Path:
    """The directory holding the Nix core's default.nix and defaults.toml.

    Order: $IBGP_TUNNEL_NIX_LIB; the copy bundled into a wheel; a checkout found
    by walking up from this file (editable installs). The bundled copy comes
    before the walk so that a wheel installed into a venv inside some checkout
    keeps using the core it was built with.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_core_dir(path):
            raise InputError(
                f"{ENV_VAR}={env} does not point at the Nix core: no {DEFAULTS_FILE} there. "
                "Set it to the modules/lib directory of an ibgp-tunnel checkout."
            )
        return path
    if _is_core_dir(_PACKAGED):
        return _PACKAGED
    found = _from_checkout(Path(__file__).resolve())
    if found is not None:
        return found
    raise InputError(
        "cannot find the Nix core (modules/lib). Install from a checkout "
        f"(pip install -e 'python[test]') or set {ENV_VAR} to its modules/lib directory."
    )


def core_file() -> Path:
    """modules/lib/default.nix, for `render`; InputError if it is missing."""
    path = nix_lib_dir() / CORE_FILE
    if not path.is_file():
        raise InputError(
            f"the Nix core has no {CORE_FILE} at {path}; render needs a complete modules/lib."
        )
    return path


@cache
def defaults() -> dict[str, Any]:
    """modules/lib/base/defaults.toml as a dict (read once)."""
    return _read_toml(nix_lib_dir() / DEFAULTS_FILE)


def dn42_defaults() -> dict[str, Any]:
    """modules/lib/base/dn42-defaults.toml (DN42 secret names, ROA settings) as a dict."""
    return _read_toml(nix_lib_dir() / DN42_DEFAULTS_FILE)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"cannot read the shared defaults {path}: {error}") from error
