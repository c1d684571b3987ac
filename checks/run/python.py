"""checks.python (= packages.ibgp-tunnel) executed here as far as this machine
allows: exactly the files of python/fileset.nix (the package's src, as git
tracks them) copied with store permissions, only source/python made writable
(nixpkgs' unpackPhase: `cp -pr` of the store path, then `chmod -R u+w` of
sourceRoot alone), the wheel built from that copy and installed, then
package.nix's own preCheck and pytestCheckHook's selection
(disabledTestPaths, disabledTests), with only the check inputs package.nix
declares on PATH, no network, no CI variables, and a non-root user owning
the copy (as the build user owns it)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from builder import base_environment, link_tools, package_commands, stdenv_tools
from report import could_not_run, report

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"

# package.nix with every argument a name: what it hands buildPythonApplication
# (nothing else is forced), its inputs named as nixpkgs attributes.
PACKAGE_FACTS = """
{ repo }:
let
  f = import (repo + "/python/package.nix");
  named = name: { __name = name; };
  pythonNames = [ "pytestCheckHook" "hypothesis" "hatchling" "typer" "pydantic" "jsonschema"
    "tomlkit" "cryptography" ];
  pythonPackages = builtins.listToAttrs (map (name: {
    inherit name;
    value = named "python3Packages.${name}";
  }) pythonNames);
  args = builtins.mapAttrs (name: _: named name) (builtins.functionArgs f) // {
    python3Packages = pythonPackages // { buildPythonApplication = attrs: attrs; };
  };
  drv = f args;
in
{
  fileset = map toString (import (repo + "/python/fileset.nix"));
  inherit (drv) sourceRoot preCheck;
  nativeCheckInputs = map (input: input.__name) drv.nativeCheckInputs;
  disabledTestPaths = drv.disabledTestPaths or [ ];
  disabledTests = drv.disabledTests or [ ];
}
"""

# Where this machine has what package.nix asks nixpkgs for: Debian packages
# (their commands), or a Python module the venv holds. Debian splits some of
# nixpkgs' packages (its `gnupg` is a metapackage with no commands).
DEBIAN: dict[str, tuple[str, ...]] = {
    "age": ("age",),
    "wireguard-tools": ("wireguard-tools",),
    "nix": ("nix-bin",),
    "graphviz": ("graphviz",),
    "jq": ("jq",),
    "curl": ("curl",),
    "openssh": ("openssh-client",),
    "gnupg": ("gpg", "gpg-agent", "gpgconf", "gpgv", "gpgsm"),
    "git": ("git",),
}
VENV_COMMANDS = {"sops": ["sops"]}
# BIRD 3 as NixOS runs it: Debian 13's, which scripts/setup unpacks (scripts/bird-debian).
BIRD_COMMANDS = {"bird3": ["bird", "birdc"]}
PYTHON_MODULES = {
    "python3Packages.pytestCheckHook": "pytest",
    "python3Packages.hypothesis": "hypothesis",
}

# The tests must exercise the installed wheel, not the venv's editable copy.
IMPORTED_FROM = (
    "import ibgp_tunnel, sys\n"
    "if not ibgp_tunnel.__file__.startswith(sys.argv[1]):\n"
    "    sys.exit(f'ibgp_tunnel imported from {ibgp_tunnel.__file__}, not the installed wheel')"
)

ONLY_NIX = [
    "nixpkgs' Python, its versions of the dependencies, pytest and hypothesis, and its sops, age, "
    "wg and nix (here: the venv's, Debian's and PyPI's)",
    "the wheel built by nixpkgs' hatchling inside the sandbox (here: pip with build isolation)",
    "the sandbox's emptiness: /usr, /etc and /bin are visible here (the sandbox has /bin/sh and "
    "the store only), so a test that reaches for a tool outside PATH by absolute path passes "
    "here and not there",
    "the module-evaluation tests: the sandbox has no flake-input cache, so they skip there as here",
]


@dataclass
class Outcome:
    returncode: int
    output: str
    counts: Counter[str] = field(default_factory=Counter)
    skips: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


NIX_EVAL = ("nix-instantiate", "--eval", "--strict", "--json", "-E")


def facts() -> dict:
    result = subprocess.run(
        [*NIX_EVAL, PACKAGE_FACTS, "--argstr", "repo", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nix-instantiate could not read python/package.nix:\n{result.stderr}")
    return json.loads(result.stdout)


def tracked_files(fileset: list[str]) -> list[Path]:
    """The fileset as a flake sees it: git-tracked files only."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, text=True, check=True
    )
    roots = [Path(p).relative_to(REPO) for p in fileset]
    files = [Path(p) for p in listed.stdout.split("\0") if p]
    chosen = [f for f in files if any(f == r or r in f.parents for r in roots)]
    missing = [str(r) for r in roots if not any(f == r or r in f.parents for f in files)]
    if missing:
        raise RuntimeError(f"python/fileset.nix names paths git does not track: {missing}")
    return chosen


def copy_as_unpacked(files: list[Path], source: Path, source_root: Path) -> None:
    """The store path copied with `cp -pr` (files r--/r-x, directories r-x),
    then `chmod -R u+w` of sourceRoot only."""
    for rel in files:
        target = source / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, target)
        executable = os.access(REPO / rel, os.X_OK)
        target.chmod(0o555 if executable else 0o444)
    for root, dirs, _ in os.walk(source):
        for name in dirs:
            (Path(root) / name).chmod(0o555)
    source.chmod(0o555)
    for root, dirs, names in os.walk(source_root):
        for name in dirs + names:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    source_root.chmod(source_root.stat().st_mode | stat.S_IWUSR)


def build_and_install(source_root: Path, site: Path, scratch: Path) -> None:
    """The wheel from the copy (build and install phases), into a site directory."""
    dist = scratch / "dist"
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(source_root)], check=True)
    wheels = list(dist.glob("*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), *map(str, wheels)],
        check=True,
    )


def check_path(bin_dir: Path, inputs: list[str]) -> Path:
    """A PATH directory with the commands of the declared check inputs."""
    commands: list[Path] = []
    for name in inputs:
        if name in DEBIAN:
            for package in DEBIAN[name]:
                found = package_commands(package)
                if not found:
                    raise RuntimeError(
                        f"{name}: Debian's {package} is not installed (scripts/setup)"
                    )
                commands += found
        elif name in VENV_COMMANDS:
            commands += [VENV / "bin" / c for c in VENV_COMMANDS[name]]
        elif name in BIRD_COMMANDS:
            bird_bin = REPO / ".cache" / "bird" / name / "bin"
            if not (bird_bin / "bird").is_file():
                raise RuntimeError(f"{name}: {bird_bin} has no bird (scripts/setup)")
            commands += [bird_bin / c for c in BIRD_COMMANDS[name]]
        elif name not in PYTHON_MODULES:
            raise RuntimeError(
                f"package.nix checks with {name}, which checks/run/python.py has no local "
                "counterpart for: add it to DEBIAN, VENV_COMMANDS or PYTHON_MODULES there"
            )
    # The interpreter buildPythonApplication runs the tests with.
    python = Path(os.path.realpath(VENV / "bin" / "python"))
    commands += [python]
    link_tools(bin_dir, commands)
    for alias in ("python", "python3"):
        if not (bin_dir / alias).exists():
            (bin_dir / alias).symlink_to(python)
    return bin_dir


def pytest_arguments(selection: dict, source_root: Path) -> list[str]:
    """pytestCheckHook's flags: each disabledTestPaths entry must match (else
    the hook aborts), `::` entries are deselected, the rest ignored; each
    disabledTests entry a `not` in -k."""
    args: list[str] = []
    for entry in selection["disabledTestPaths"]:
        if "::" in entry:
            args.append(f"--deselect={entry}")
            continue
        if not list(source_root.glob(entry)):
            raise RuntimeError(
                f'disabledTestPaths entry "{entry}" matches nothing: the hook aborts'
            )
        args.append(f"--ignore-glob={entry}")
    if selection["disabledTests"]:
        args += ["-k", " and ".join(f"not {t}" for t in selection["disabledTests"])]
    return args


def shell_quote(words: list[str]) -> str:
    return " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)


def summarize(junit: Path, outcome: Outcome) -> None:
    if not junit.exists():
        return
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome.counts["failed"] += 1
            outcome.failures.append(name)
        elif skipped is not None:
            outcome.counts["skipped"] += 1
            outcome.skips[(skipped.get("message") or "").split("\n")[0][:160]] += 1
        else:
            outcome.counts["passed"] += 1


def run(extra_pytest_args: list[str] | None = None) -> Outcome:
    chosen = facts()
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-python-check.") as top:
        build = Path(top)
        build.chmod(0o755)
        source = build / "source"
        source_root = build / chosen["sourceRoot"]
        copy_as_unpacked(tracked_files(chosen["fileset"]), source, source_root)
        scratch = Path(tempfile.mkdtemp(prefix="ibgp-tunnel-python-wheel."))
        try:
            site = scratch / "site"
            build_and_install(source_root, site, scratch)
            path = [check_path(scratch / "check-bin", chosen["nativeCheckInputs"])]
            path.append(stdenv_tools(scratch / "stdenv-bin"))
            venv_site = next((VENV / "lib").glob("python3*/site-packages"))
            env = base_environment(build, path) | {
                "out": str(scratch / "out"),
                # As nixpkgs' Python builds: the package and its dependencies
                # on PYTHONPATH (no .pth of the venv's editable install).
                "PYTHONPATH": f"{site}:{venv_site}",
                "preCheck": chosen["preCheck"],
            }
            junit = build / "junit.xml"
            pytest = ["python3", "-m", "pytest", "-rs", f"--junitxml={junit}"]
            pytest += pytest_arguments(chosen, source_root) + (extra_pytest_args or [])
            script = (
                f"cd {shell_quote([str(source_root)])}\n"
                f'python3 -c {shell_quote([IMPORTED_FROM])} "$1"\n'
                'eval "$preCheck"\n' + shell_quote(pytest) + "\n"
            )
            result = subprocess.run(
                sandboxed(["bash", "-e", "-o", "pipefail", "-c", script, "check", str(site)]),
                cwd=build,
                env=env,
                text=True,
                capture_output=True,
                check=False,
            )
            outcome = Outcome(result.returncode, result.stdout + result.stderr)
            summarize(junit, outcome)
            return outcome
        finally:
            restore_writable(build)
            shutil.rmtree(scratch, ignore_errors=True)


def sandboxed(command: list[str]) -> list[str]:
    """No network, and not root: a user namespace whose only user owns the
    copy as the build user owns its unpacked sources."""
    if os.geteuid() != 0:
        return command
    unshare = shutil.which("unshare")
    bash = shutil.which("bash")
    if unshare is None or bash is None:
        raise RuntimeError("unshare (util-linux) and bash are needed to run the check")
    ip = shutil.which("ip")
    if ip is None:
        raise RuntimeError("ip (iproute2) is needed to run the check")
    # Nix's sandbox has a network namespace whose loopback is up (the web tests
    # talk to 127.0.0.1): an outer user namespace as root brings it up, an inner
    # one runs the build as its only, unprivileged user.
    inner = [unshare, "--user", "--map-user=65534", "--map-group=65534", "--", bash, *command[1:]]
    outer = [unshare, "--user", "--map-root-user", "--net", "--"]
    return [*outer, bash, "-c", f'{shell_quote([ip])} link set lo up && exec "$@"', "lo", *inner]


def restore_writable(top: Path) -> None:
    """So that the temporary directory can be removed."""
    for root, dirs, _ in os.walk(top):
        for name in dirs:
            p = Path(root) / name
            if not p.is_symlink():
                p.chmod(0o755)
    top.chmod(0o755)


def main() -> int:
    if shutil.which("nix-instantiate") is None:
        return could_not_run("python", "nix-instantiate is missing: run scripts/setup", ONLY_NIX)
    try:
        outcome = run()
    except (RuntimeError, subprocess.CalledProcessError) as error:
        return could_not_run("python", str(error), ONLY_NIX)
    print(outcome.output[-6000:], end="")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(outcome.counts.items()))
    ran = [
        "python/package.nix's src (python/fileset.nix, git-tracked) copied read-only but for "
        f"source/python; wheel built and installed from it; its preCheck; pytest: {counts}",
        *(f"skipped {n}: {reason}" for reason, n in outcome.skips.most_common()),
        *(f"FAILED: {name}" for name in outcome.failures),
    ]
    report("python", ran, ONLY_NIX)
    return 0 if outcome.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
