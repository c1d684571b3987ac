"""`init`: a new host flake from the flake template (templates/default, what
`nix flake init -t` copies), never over existing files."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.errors import IbgpTunnelError, InputError
from ibgp_tunnel.newfile import write_new

PLAN_FILE = Path("hosts/plan.toml")
SOPS_FILE = Path(".sops.yaml")
FLAKE_FILE = Path("flake.nix")
# The template's placeholder for the ibgp-tunnel input's url in flake.nix.
FLAKE_URL_PLACEHOLDER = "REPLACE-ME/ibgp-tunnel"
# Not a valid recipient on purpose: sops refuses it until the user replaces it.
AGE_PLACEHOLDER = "REPLACE-WITH-YOUR-AGE-RECIPIENTS"
# age1 + 58 bech32 characters (a 32-byte X25519 key with its checksum).
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
# The link's ULA /64 in the template's plan, replaced by a fresh one per init.
TEMPLATE_ULA = "fd4b:1c2d:3e4f:ffff::"
TEMPLATE_ENV = "IBGP_TUNNEL_TEMPLATE"
_PACKAGED_TEMPLATE = Path(__file__).resolve().parent / "template"


def template_dir() -> Path:
    """The flake template (templates/default): `nix flake init -t` copies it, `init`
    renders it. $IBGP_TUNNEL_TEMPLATE, the copy in a wheel, or the checkout's."""
    env = os.environ.get(TEMPLATE_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(_PACKAGED_TEMPLATE)
    candidates += [parent / "templates" / "default" for parent in Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / PLAN_FILE).is_file():
            return candidate
    raise InputError(
        "cannot find the flake template (templates/default of an ibgp-tunnel checkout); "
        f"set {TEMPLATE_ENV} to it"
    )


def template_files() -> dict[Path, str]:
    """Every file of the template, by path relative to it."""
    root = template_dir()
    return {
        path.relative_to(root): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class Written:
    plan: Path
    sops_config: Path
    files: tuple[Path, ...]


def plan_text(ula_global_id: bytes | None = None) -> str:
    """The template's commented plan with a fresh RFC 4193 ULA /64 for the link."""
    global_id = ula_global_id if ula_global_id is not None else secrets.token_bytes(5)
    net = ipaddress.IPv6Network((b"\xfd" + global_id + b"\xff\xff" + bytes(8), 64))
    text = template_files()[PLAN_FILE]
    if text.count(TEMPLATE_ULA) != 3:
        raise InputError(
            f"the template's {PLAN_FILE} no longer holds its ULA {TEMPLATE_ULA} three times "
            "(network, reflector, client): update TEMPLATE_ULA in scaffold.py with it"
        )
    return text.replace(TEMPLATE_ULA, f"{net.network_address}")


def sops_text(recipients: list[str]) -> str:
    """The template's .sops.yaml with the given age recipients, or the placeholder."""
    for recipient in recipients:
        if not _AGE_RECIPIENT.fullmatch(recipient):
            raise InputError(
                f'"{recipient}" is not an age recipient (age1 followed by 58 characters); '
                "get one with `age-keygen -y KEYFILE` or `ibgp-tunnel age-recipient`"
            )
    text = template_files()[SOPS_FILE]
    return text.replace(AGE_PLACEHOLDER, ",".join(recipients) or AGE_PLACEHOLDER)


def flake_url_line(flake_text: str) -> tuple[int, str]:
    """Where the template's flake.nix sets the ibgp-tunnel input's url: (line number, line)."""
    for number, line in enumerate(flake_text.splitlines(), start=1):
        if FLAKE_URL_PLACEHOLDER in line and "url" in line:
            return number, line.strip()
    raise InputError(
        f"the template's {FLAKE_FILE} no longer has the url placeholder {FLAKE_URL_PLACEHOLDER}: "
        "update FLAKE_URL_PLACEHOLDER in scaffold.py with it"
    )


def in_git_repository(directory: Path) -> bool:
    """Is `directory` inside a git work tree (a .git entry here or above)?"""
    here = directory.resolve()
    return any((parent / ".git").exists() for parent in (here, *here.parents))


def next_steps(directory: Path, written: Written, recipients_given: bool) -> list[str]:
    """What to do after init, in order. Flakes in a git repository see only the files
    git tracks, so new files (the template's, later secrets/<host>.yaml) must be added."""
    line_number, line = flake_url_line(template_files()[FLAKE_FILE])
    track = "git add -A" if in_git_repository(directory) else "git init && git add -A"
    steps = [
        f"in {directory}: {track}  (a flake sees only the files git tracks)",
        f"edit {written.plan} (replace the endpoint, addresses and names; hosts/<name>/ "
        "holds each host's machine settings)",
        f"ibgp-tunnel check {written.plan}",
        "ibgp-tunnel keys  (writes secrets/<host>.yaml with sops and the public keys into "
        f"the plan), then git add secrets {written.plan}: an untracked secrets file is "
        "missing from the flake",
        f"set the ibgp-tunnel input's url in {directory / FLAKE_FILE} line {line_number} "
        f"({line}) to where you got ibgp-tunnel, then nix flake check",
    ]
    if not recipients_given:
        steps.insert(1, f"put your age recipients into {written.sops_config}")
    return steps


def project_files(recipients: list[str]) -> dict[Path, str]:
    """What init writes: the template's files, the plan and .sops.yaml filled in."""
    files = template_files()
    files[PLAN_FILE] = plan_text()
    files[SOPS_FILE] = sops_text(recipients)
    return files


def init_project(directory: Path, recipients: list[str]) -> Written:
    """Write the flake template's files under `directory`; all or none.

    InputError if any of them exists (naming it) or cannot be written.
    """
    contents = {directory / name: text for name, text in project_files(recipients).items()}
    for path in contents:
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} already exists; init never overwrites, move it away first")
    written: list[Path] = []
    try:
        for path, text in contents.items():
            write_new(path, text)
            written.append(path)
    except IbgpTunnelError:
        # Leave no half-initialised project: remove only what this call created.
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return Written(directory / PLAN_FILE, directory / SOPS_FILE, tuple(contents))
