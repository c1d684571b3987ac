"""WireGuard keys for the lab: from the plan's sops files when they decrypt,
otherwise generated on the fly, for the lab only.

Either way they are written (0600) into the host's lab directory, which the
host's commands see as /run: the rendered privateKeyFile/presharedKeyFile
paths (/run/secrets/...) then resolve to the lab's files, and the machine's
real /run/secrets is never read or written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel import keys
from ibgp_tunnel.lab.errors import LabError


@dataclass(frozen=True)
class LabKeys:
    private_keys: dict[str, str]  # host -> base64
    public_keys: dict[str, str]  # host -> base64
    psks: dict[str, str]  # link -> base64
    sources: dict[str, str]  # host -> "sops" | "generated"


def _inside_path(rendered_path: str) -> Path:
    """Where a host's commands see a secret: the rendered path when under /run."""
    rendered = Path(rendered_path)
    if rendered.is_relative_to("/run"):
        return rendered
    return Path("/run/lab-secrets") / rendered.name


def read_installed_secret(run_dir: Path, rendered_path: str) -> str:
    """A secret `install_secret` wrote for a host whose /run is `run_dir`."""
    path = run_dir / _inside_path(rendered_path).relative_to("/run")
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise LabError(f"the lab's secret {path} is missing; bring the lab up again") from None


def install_secret(run_dir: Path, rendered_path: str, value: str) -> str:
    """Write a secret for a host whose commands see `run_dir` as /run; return the path
    to give its `wg`. A rendered path under /run (sops-nix's /run/secrets/...) is
    kept as it is, so the lab runs the rendered paths unchanged."""
    inside = _inside_path(rendered_path)
    target = run_dir / inside.relative_to("/run")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return str(inside)


def _decrypted_secrets(secrets_dir: Path, host: str) -> Mapping[str, Any]:
    """The host's decrypted sops file, or {} when absent or not decryptable here."""
    path = secrets_dir / f"{host}.yaml"
    if not path.is_file():
        return {}
    try:
        from ibgp_tunnel.keys import sops

        return sops.decrypt_file(path)
    except Exception:  # any failure means "no usable key": generate one
        return {}


def _valid_key(value: object) -> str | None:
    try:
        keys.decode_key(value, "key")
    except keys.KeysError:
        return None
    return str(value)


def lab_keys(plan: Mapping[str, Any], secrets_dir: Path) -> LabKeys:
    """Every host's private key and every link's PSK: decrypted, else generated."""
    names = keys.default_secret_names()
    secrets = {host: _decrypted_secrets(secrets_dir, host) for host in plan.get("hosts", {})}
    private: dict[str, str] = {}
    sources: dict[str, str] = {}
    for host, data in secrets.items():
        stored = _valid_key(keys.get_secret(data, names.private_key))
        sources[host] = "sops" if stored else "generated"
        private[host] = stored or keys.generate_private_key()
    psks: dict[str, str] = {}
    for link_name, link in plan.get("links", {}).items():
        stored = [
            _valid_key(keys.get_secret(secrets.get(link[end], {}), names.psk(link_name)))
            for end in ("reflector", "client")
        ]
        # Both ends must agree; a PSK only one end can decrypt is useless to the lab.
        psks[link_name] = stored[0] if stored[0] and stored[0] == stored[1] else keys.generate_psk()
    public = {host: keys.public_key_of(key) for host, key in private.items()}
    return LabKeys(private, public, psks, sources)
