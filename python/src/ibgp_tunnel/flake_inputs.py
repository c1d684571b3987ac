"""The verified cache of pinned flake inputs: nixpkgs' lib and sops-nix, at the
revisions flake.lock pins, outside the repository.

Module evaluation needs the real NixOS module system and the real sops-nix
module, but code fetched from public repositories is never committed. So a
developer (or CI's machine) brings each input once, from a tarball, an unpacked
tree or a git directory, and `add` accepts it only when its NAR hash (what Nix
records as `narHash`) is the pinned one. Readers verify again before use, so a
tree edited after it was added is refused, not evaluated.

What is pinned: sops-nix by flake.lock's own node. nixpkgs' lib by
`checks/pinned-inputs.toml`, which records the nix-community/nixpkgs.lib
revision matching flake.lock's nixpkgs revision, with its NAR hash and
`lib/.version`: flake.lock pins all of nixpkgs (4.4 GB), of which evaluation
needs only lib/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ibgp_tunnel.errors import InputError

CACHE_ENV = "IBGP_TUNNEL_FLAKE_INPUTS"
PINS_FILE = Path("checks") / "pinned-inputs.toml"
ADD_COMMAND = "scripts/flake-inputs add"
NIX_HASH = ("nix", "--extra-experimental-features", "nix-command", "hash", "path")


class InputMismatch(InputError):
    """A tree whose NAR hash (or version) is not the pinned one: unusable input."""


@dataclass(frozen=True)
class Pin:
    name: str
    owner: str
    repo: str
    rev: str
    nar_hash: str
    # What must exist in the tree, and what it must say (lib/.version).
    marker: str
    version_file: str | None = None
    version: str | None = None

    @property
    def tarball_url(self) -> str:
        return f"https://github.com/{self.owner}/{self.repo}/archive/{self.rev}.tar.gz"


def cache_dir() -> Path:
    """$IBGP_TUNNEL_FLAKE_INPUTS, else ${XDG_CACHE_HOME:-$HOME/.cache}/ibgp-tunnel/flake-inputs."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ibgp-tunnel" / "flake-inputs"


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{path} must be readable TOML: {error}") from error


def _read_lock(project: Path) -> dict:
    path = project / "flake.lock"
    if not path.is_file():
        # A package's source (python/fileset.nix) carries no lock: nothing is pinned there.
        raise InputError(
            f"run in a checkout of the flake, which has flake.lock and `{ADD_COMMAND}` "
            f"fills the cache from: {project} has no flake.lock"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{path} must be readable JSON (the flake's lock): {error}") from error


def _locked(lock: dict, node: str) -> dict:
    try:
        locked = lock["nodes"][node]["locked"]
    except (KeyError, TypeError) as error:
        raise InputError(f"flake.lock has no locked node {node!r}: run `nix flake lock`") from error
    if locked.get("type") != "github":
        raise InputError(f"flake.lock's {node} must be a github input, not {locked.get('type')!r}")
    return locked


def pins(project: Path) -> dict[str, Pin]:
    """Every input the module-evaluation tier reads, as the project pins it."""
    lock = _read_lock(project)
    sops = _locked(lock, "sops-nix")
    nixpkgs = _locked(lock, "nixpkgs")
    recorded = _read_toml(project / PINS_FILE).get("nixpkgs-lib", {})
    matches = recorded.get("nixpkgs_rev")
    if matches != nixpkgs["rev"]:
        raise InputError(
            f"update {PINS_FILE}'s [nixpkgs-lib] to the nix-community/nixpkgs.lib revision "
            f"of nixpkgs {nixpkgs['rev']}: it records one for nixpkgs {matches}, "
            "but flake.lock pins another"
        )
    owner, _, repo = str(recorded.get("repo", "")).partition("/")
    return {
        "nixpkgs-lib": Pin(
            name="nixpkgs-lib",
            owner=owner,
            repo=repo,
            rev=recorded["rev"],
            nar_hash=recorded["narHash"],
            marker="lib/default.nix",
            version_file="lib/.version",
            version=recorded["version"],
        ),
        "sops-nix": Pin(
            name="sops-nix",
            owner=sops["owner"],
            repo=sops["repo"],
            rev=sops["rev"],
            nar_hash=sops["narHash"],
            marker="modules/sops/default.nix",
        ),
    }


def pin_named(project: Path, name: str) -> Pin:
    known = pins(project)
    if name not in known:
        raise InputError(f"name one of {', '.join(sorted(known))}, not {name!r}")
    return known[name]


def cached_tree(pin: Pin) -> Path:
    # By revision, so worktrees pinning different revisions share one cache.
    return cache_dir() / pin.name / pin.rev


def nar_hash(tree: Path) -> str:
    """Nix's SRI NAR hash of a tree, as flake.lock records it."""
    try:
        result = subprocess.run([*NIX_HASH, str(tree)], capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise InputError("install Nix (apt: nix-bin): `nix hash path` verifies inputs") from error
    if result.returncode != 0:
        raise InputError(f"`nix hash path {tree}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def verify(pin: Pin, tree: Path, shown: Path | None = None) -> None:
    """Raise unless tree is exactly the pinned input; messages name it as shown."""
    shown = shown or tree
    if not (tree / pin.marker).is_file():
        raise InputMismatch(
            f"give {pin.name} as {pin.owner}/{pin.repo} at {pin.rev}: {shown} has no {pin.marker}"
        )
    actual = nar_hash(tree)
    if actual != pin.nar_hash:
        raise InputMismatch(
            f"give {pin.name} at revision {pin.rev} ({pin.tarball_url}): "
            f"its NAR hash is {pin.nar_hash}, {shown}'s is {actual}"
        )
    if pin.version_file is not None:
        version = (tree / pin.version_file).read_text(encoding="utf-8").strip()
        if version != pin.version:
            raise InputMismatch(
                f"give {pin.name} at {pin.rev}: {pin.version_file} says {version!r}, "
                f"the pin {pin.version!r}"
            )


@cache
def verified_tree(project: Path, name: str) -> Path:
    """The cached input, verified now (once per process). Raises when absent or altered."""
    pin = pin_named(project, name)
    tree = cached_tree(pin)
    if not tree.is_dir():
        raise InputError(
            f"run `{ADD_COMMAND} {name} PATH` (PATH: {pin.tarball_url}, unpacked or as a git "
            f"directory): the verified flake-input cache {cache_dir()} has no {name} at {pin.rev}"
        )
    try:
        verify(pin, tree)
    except InputMismatch as error:
        raise InputError(
            f"run `{ADD_COMMAND} {name} PATH` again: the cached {name} was changed after it "
            f"was verified ({error})"
        ) from error
    return tree


def _is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _from_git(git_dir: Path, rev: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir), "archive", "--format=tar", rev],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise InputError(
            f"fetch revision {rev} into {git_dir}: `git archive` could not read it "
            f"({archive.stderr.decode(errors='replace').strip()})"
        )
    tar_path = into.parent / "archive.tar"
    tar_path.write_bytes(archive.stdout)
    _from_tarball(tar_path, into)
    tar_path.unlink()


def _from_tarball(path: Path, into: Path) -> None:
    try:
        with tarfile.open(path) as archive:
            # "data" refuses absolute names, .. and links leaving the tree.
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise InputError(f"give a readable tarball: {path}: {error}") from error
    entries = list(into.iterdir())
    # GitHub's archives hold one top directory (repo-rev/): the input is inside it.
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        top = entries[0]
        staged = into.parent / "top"
        top.rename(staged)
        into.rmdir()
        staged.rename(into)


def _materialise(source: Path, rev: str, into: Path) -> None:
    if source.is_file():
        _from_tarball(source, into)
    elif _is_git_dir(source / ".git"):
        _from_git(source / ".git", rev, into)
    elif _is_git_dir(source):
        _from_git(source, rev, into)
    elif source.is_dir():
        shutil.copytree(source, into, symlinks=True)
    else:
        raise InputError(f"give a tarball, an unpacked tree or a git directory: {source} is none")


def _read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def _writable(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o700)


def _remove(tree: Path) -> None:
    if tree.exists():
        _writable(tree)
        shutil.rmtree(tree)


def add(project: Path, name: str, source: Path) -> tuple[Pin, bool]:
    """Verify source against the pin and put it in the cache. Returns (pin, added):
    added is False when a verified copy was already there. Nothing is replaced
    before the new tree has been verified."""
    pin = pin_named(project, name)
    target = cached_tree(pin)
    if target.is_dir():
        try:
            verify(pin, target)
            return pin, False
        except InputMismatch:
            pass  # an altered copy: replaced below, once the new one verifies
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{pin.rev}.", dir=target.parent))
    try:
        tree = staging / "tree"
        _materialise(source, pin.rev, tree)
        verify(pin, tree, shown=source)
        _read_only(tree)
        if target.exists():
            old = staging / "old"
            target.rename(old)
        tree.rename(target)
    finally:
        _remove(staging)
    verified_tree.cache_clear()
    return pin, True


def status(project: Path) -> list[dict[str, str]]:
    """Each pinned input: where it is cached and whether that copy verifies."""
    rows = []
    for pin in pins(project).values():
        tree = cached_tree(pin)
        if not tree.is_dir():
            state = "missing"
        else:
            try:
                verify(pin, tree)
                state = "verified"
            except InputMismatch as error:
                state = f"altered: {error}"
        rows.append(
            {
                "name": pin.name,
                "source": f"{pin.owner}/{pin.repo}",
                "rev": pin.rev,
                "narHash": pin.nar_hash,
                "path": str(tree),
                "tarball": pin.tarball_url,
                "state": state,
            }
        )
    return rows
