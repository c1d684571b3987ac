"""A Nix builder's surroundings, as far as this machine has them: an empty
build directory, inputs read-only, an environment with nothing but what the
builder sets, $out not yet existing, a PATH of stdenv's initial tools (and
what the derivation declares), no network and an unprivileged user.

What stays different from the real sandbox: /usr, /etc and the rest of the
machine are still visible (the sandbox has only /nix/store, /bin/sh and
/build), and the tools are Debian's, not nixpkgs'."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

# stdenv's initialPath (nixpkgs pkgs/stdenv/common-path.nix) as Debian packages.
STDENV_PACKAGES = (
    "coreutils",
    "findutils",
    "diffutils",
    "sed",
    "grep",
    "gawk",
    "mawk",
    "tar",
    "gzip",
    "bzip2",
    "make",
    "bash",
    "patch",
    "xz-utils",
    "file",
)

# Nix builds as one of the nixbld users, never as root.
BUILD_USER = "nobody"
BUILD_GROUP = "nogroup"

# How nixpkgs' setup.sh leaves the shell for a buildCommand: errexit (the
# builder runs bash -e), pipefail, inherit_errexit and nullglob on, nounset
# off (restored at the end of setup.sh).
SHELL_PRELUDE = 'set -e -o pipefail; shopt -s inherit_errexit nullglob; eval "$buildCommand"'


def package_commands(package: str) -> list[Path]:
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        return []
    return [
        Path(line)
        for line in listed.stdout.splitlines()
        if Path(line).parent.name == "bin" and os.access(line, os.X_OK) and Path(line).is_file()
    ]


def link_tools(bin_dir: Path, commands: Iterable[Path]) -> None:
    """A PATH directory holding exactly these commands (the first of a name wins)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for command in commands:
        link = bin_dir / command.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(command)


def stdenv_tools(bin_dir: Path) -> Path:
    link_tools(bin_dir, (c for p in STDENV_PACKAGES for c in package_commands(p)))
    # nixpkgs' stdenv has gawk's `awk`; Debian names it only through
    # /etc/alternatives, which no package lists.
    awk = next((bin_dir / n for n in ("gawk", "mawk") if (bin_dir / n).exists()), None)
    if awk is not None and not (bin_dir / "awk").exists():
        (bin_dir / "awk").symlink_to(awk.resolve())
    return bin_dir


def make_read_only(path: Path) -> None:
    """As a store path: no write bit anywhere below it."""
    for root, dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for name in dirs:
            p = Path(root) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def give_to_builder(*paths: Path) -> None:
    """The build directory and $out's parent belong to the build user."""
    if os.geteuid() != 0:
        return
    for path in paths:
        shutil.chown(path, BUILD_USER, BUILD_GROUP)


def base_environment(build_dir: Path, path: Iterable[Path]) -> dict[str, str]:
    """The variables Nix itself sets for every builder (nothing is inherited)."""
    return {
        "PATH": ":".join(str(p) for p in path),
        "HOME": "/homeless-shelter",
        "NIX_BUILD_TOP": str(build_dir),
        "TMPDIR": str(build_dir),
        "TEMPDIR": str(build_dir),
        "TMP": str(build_dir),
        "TEMP": str(build_dir),
        "NIX_BUILD_CORES": "1",
        "NIX_STORE": "/nix/store",
        "TERM": "xterm-256color",
    }


def wrap(command: list[str], network: bool = False) -> list[str]:
    """As the build user, without network when root can arrange that."""
    if os.geteuid() != 0:
        return command
    user = [
        _tool("setpriv"),
        f"--reuid={BUILD_USER}",
        f"--regid={BUILD_GROUP}",
        "--clear-groups",
        "--",
    ]
    return ([] if network else [_tool("unshare"), "--net", "--"]) + user + command


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (apt: util-linux): the builder needs it")
    return found


def run_build_command(
    script: str, build_dir: Path, environment: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {**environment, "buildCommand": script}
    return subprocess.run(
        wrap([_tool("bash"), "-c", SHELL_PRELUDE]),
        cwd=build_dir,
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
