"""`ibgp-tunnel dn42 autopeer registry-refresh`: bring the local copy of DN42's
registry up to date, atomically. A shallow fetch into a bare cache
(`registry.git` beside the checkout), then the objects autopeer reads
(`data/aut-num`, `data/mntner`, `data/route`, `data/route6`) checked out into a
new directory under `registry.d/` with symlinks written as plain files, checked
to hold aut-num and mntner objects, and only then made current by renaming a
new symlink over `registry` (readers see the old or the new copy, never half).
Only https:// and file:// URLs: git's other transports (ext::, ssh, git://)
run commands or talk unauthenticated."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.autopeer.registry import RegistryScan, scan_registry
from ibgp_tunnel.errors import InputError

PATHS = ("data/aut-num", "data/mntner", "data/route", "data/route6")
REQUIRED = ("data/aut-num", "data/mntner")
URL = re.compile(r"(https://[A-Za-z0-9.-]+(:[0-9]{1,5})?|file://)/[A-Za-z0-9._~%/+@-]*")
TIMEOUT = 900
REF = "refs/heads/autopeer-fetched"


@dataclass(frozen=True)
class Refreshed:
    commit: str
    path: Path  # the directory `registry` now points to
    changed: bool
    scan: RegistryScan


def check_url(url: str) -> str:
    """The registry URL, or InputError naming the option and the fix."""
    if not isinstance(url, str) or not URL.fullmatch(url) or "/../" in f"{url}/":
        raise InputError(
            f"autopeer.registry_url: {str(url)[:80]!r} is not an https:// or file:// URL "
            "(e.g. https://git.dn42.dev/dn42/registry.git)"
        )
    return url


def git(args: list[str], cache: Path, **env: str) -> str:
    """git with no user or system config, no prompts, only https and file."""
    step = next(a for a in args if a[:1] != "-" and "/" not in a)
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cache),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **env,
    }
    argv = [
        "git",
        "-c", "protocol.allow=never",
        "-c", "protocol.https.allow=always",
        "-c", "protocol.file.allow=always",
        "-c", "core.symlinks=false",
        "-c", "core.hooksPath=/dev/null",
        *args,
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=clean, timeout=TIMEOUT)
    except FileNotFoundError:
        raise InputError("install git: the registry refresh fetches with it") from None
    except subprocess.TimeoutExpired:
        raise InputError(f"registry refresh: `git {step}` took over {TIMEOUT} s") from None
    if done.returncode != 0:
        raise InputError(
            f"registry refresh: `git {step}` failed; check autopeer.registry_url and the network",
            details=done.stderr,
        )
    return done.stdout


def refresh_registry(url: str, registry_dir: Path) -> Refreshed:
    """Fetch the registry at `url` and make `registry_dir` (a symlink this
    function owns) point at a fresh checkout; the old copy stays current if
    anything fails. Two refreshes at once (the timer and an operator) take
    turns on a lock beside the checkout."""
    check_url(url)
    registry_dir = Path(registry_dir)
    parent = registry_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with open(parent / f".{registry_dir.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return refresh_locked(url, registry_dir)


def refresh_summary(done: Refreshed) -> str:
    """What `ibgp-tunnel dn42 autopeer registry-refresh` prints."""
    state = "updated to" if done.changed else "already at"
    return f"registry {state} {done.commit[:12]} ({done.path})\n{done.scan.summary()}"


def refresh_locked(url: str, registry_dir: Path) -> Refreshed:
    parent = registry_dir.parent
    cache, copies = parent / f"{registry_dir.name}.git", parent / f"{registry_dir.name}.d"
    copies.mkdir(parents=True, exist_ok=True)
    if not (cache / "HEAD").exists():
        git(["init", "--bare", "-q", str(cache)], parent)
    git(
        ["-C", str(cache), "fetch", "-q", "--depth", "1", "--no-tags", "--", url, f"+HEAD:{REF}"],
        cache,
    )
    commit = git(["-C", str(cache), "rev-parse", "--verify", f"{REF}^{{commit}}"], cache).strip()
    current = registry_dir.resolve() if registry_dir.is_symlink() else None
    if current is not None and current.name.startswith(f"{commit}-") and current.is_dir():
        return Refreshed(commit, current, False, scan_registry(current))
    present = [p for p in PATHS if has_path(cache, p)]
    missing = [p for p in REQUIRED if p not in present]
    if missing:
        raise InputError(f"autopeer.registry_url: the repository has no {', '.join(missing)}")
    fresh = copies / f"{commit}-{secrets.token_hex(4)}"
    fresh.mkdir()
    index = copies / f".index-{secrets.token_hex(4)}"
    try:
        git(
            [
                "--git-dir",
                str(cache),
                "--work-tree",
                str(fresh),
                "checkout",
                "-q",
                "-f",
                REF,
                "--",
                *present,
            ],
            cache,
            GIT_INDEX_FILE=str(index),
        )
        scan = scan_registry(fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    finally:
        index.unlink(missing_ok=True)
    swap(registry_dir, fresh)
    prune(copies, keep={fresh.name, current.name if current else ""})
    return Refreshed(commit, fresh, True, scan)


def has_path(cache: Path, path: str) -> bool:
    listed = git(["-C", str(cache), "ls-tree", "--name-only", REF, "--", path], cache)
    return path in listed.split("\n")


def swap(link: Path, target: Path) -> None:
    """Point `link` at `target` with one rename; a real directory in its place
    (from before the first refresh) is moved into registry.d first."""
    if link.exists() and not link.is_symlink():
        link.rename(target.parent / f"old-{secrets.token_hex(4)}")
    tmp = link.parent / f".{link.name}.{secrets.token_hex(4)}"
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def prune(copies: Path, keep: set[str]) -> None:
    """Old copies go; the current one and the one before (a reader may still be
    in it) stay."""
    for path in copies.iterdir():
        if path.name not in keep and not path.name.startswith(".index-"):
            shutil.rmtree(path, ignore_errors=True)
