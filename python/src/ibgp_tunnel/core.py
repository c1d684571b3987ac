"""The one door to the Nix core: `nix-instantiate` over modules/lib/default.nix.

The core is pure Nix with builtins only, so a plain
`nix-instantiate --eval --strict --json` evaluates it without nixpkgs. Every
value (paths, a host name) travels as an --argstr, never spliced into Nix
source, so no quoting can go wrong. `render` asks it for a host's spec and
artifacts, `check` for the plan-level rules (`planProblems`); where default.nix
lives is paths.core_file's business alone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import InputError, RenderError
from ibgp_tunnel.paths import core_file

NIX_INSTANTIATE = "nix-instantiate"
TIMEOUT_SECONDS = 120

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TRACE_HINT = re.compile(r"^\(use '--show-trace'.*\)$")


def evaluate_core(expression: str, refused: str, **arguments: str) -> Any:
    """Evaluate `expression` (a function of coreFile and `arguments`) strictly as JSON.
    Every argument travels as --argstr, never spliced into Nix source."""
    command = [
        _nix_instantiate(),
        "--eval",
        "--strict",
        "--json",
        "--expr",
        expression,
        *("--argstr", "coreFile", str(core_file())),
    ]
    for name, value in arguments.items():
        command += ["--argstr", name, value]
    try:
        # Plans may hold any text; never let a stray byte in Nix's output crash us.
        done = subprocess.run(
            command,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(f"nix-instantiate took longer than {TIMEOUT_SECONDS}s; gave up") from None
    except OSError as error:
        raise InputError(f"cannot run {NIX_INSTANTIATE}: {error.strerror or error}") from None
    # Nix streams JSON, so a failed evaluation may leave half a document on stdout.
    if done.returncode != 0:
        raise RenderError(f"{refused}: {nix_error_message(done.stderr)}")
    try:
        return json.loads(done.stdout)
    except ValueError as error:
        raise RenderError(f"nix-instantiate printed something that is not JSON: {error}") from None


# The plan's data as the helper read it (JSON, so the core sees exactly what the
# shape layer checked), and the core's plan-level rules over it.
_PLAN_PROBLEMS = """
{ coreFile, planJson }:
(import coreFile).planProblems (builtins.fromJSON (builtins.readFile planJson))
"""


def plan_problems(data: dict[str, Any]) -> list[dict[str, str]]:
    """`planProblems plan`: the core's rules over plan data whose shape is right,
    as [{path, severity, message}] with TOML paths."""
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-") as directory:
        plan_json = Path(directory) / "plan.json"
        plan_json.write_text(json.dumps(data), encoding="utf-8")
        found: list[dict[str, str]] = evaluate_core(
            _PLAN_PROBLEMS, "the Nix core could not check the plan", planJson=str(plan_json)
        )
    return found


def _nix_instantiate() -> str:
    found = shutil.which(NIX_INSTANTIATE)
    if found is None:
        raise InputError(
            f"{NIX_INSTANTIATE} is not on PATH; render asks the Nix core, so install Nix "
            "(https://nixos.org/download) or run it where Nix is available"
        )
    return found


def nix_error_message(stderr: str, max_lines: int = 20) -> str:
    """Nix's error text without colours, the 'error:' prefix or the --show-trace hint."""
    lines = [_ANSI.sub("", line).rstrip() for line in stderr.splitlines()]
    lines = [line for line in lines if line.strip() and not _TRACE_HINT.match(line.strip())]
    # Nix's own complaints about the machine's settings are not the core's answer.
    lines = [line for line in lines if not line.startswith("warning: ")]
    if not lines:
        return "nix-instantiate failed without saying why"
    first = lines[0].strip()
    lines[0] = first.removeprefix("error:").strip()
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more lines)"]
    return "\n".join(lines)
