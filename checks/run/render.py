"""checks.render executed here: checks/render-check.nix evaluated by
nix-instantiate (the hosts of the committed plans, their bird.conf and the
preCheckConfig the core gives them, and the script checks/render.nix hands
runCommand), the configs written as read-only files, the script run in an
empty directory with $out fresh, BIRD 2.17 and 3.1 from scripts/setup in the
place of nixpkgs' bird2 and bird3."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from builder import (
    base_environment,
    give_to_builder,
    make_read_only,
    run_build_command,
    stdenv_tools,
)
from report import could_not_run, report

REPO = Path(__file__).resolve().parents[2]
BIRDS = (REPO / ".cache" / "bird" / "bird2", REPO / ".cache" / "bird" / "bird3")

# The same call checks/render.nix makes, with this machine's inputs. `hosts`
# is a Nix function of the hosts list: identity for the check itself.
EXPRESSION = """
{ repo, configDir, bird2, bird3, hosts }:
let
  check = import (repo + "/checks/render-check.nix") { core = import (repo + "/modules/lib"); };
  chosen = (import hosts) check.hosts;
in
{
  hosts = chosen;
  script = check.scriptFor {
    hosts = chosen;
    birds = [ bird2 bird3 ];
    configFile = host: "${configDir}/${host.name}-bird.conf";
  };
}
"""

ONLY_NIX = [
    "nixpkgs' bird2 and bird3 (their versions, build options and patches) parsing the configs",
    "runCommand's real stdenv and the build sandbox (no /usr, no /etc, store paths only)",
    "that checks/render.nix itself evaluates against nixpkgs (callPackage, writeText)",
]


@dataclass(frozen=True)
class Outcome:
    hosts: list[str]
    returncode: int
    output: str


def evaluate(config_dir: Path, hosts: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".nix", delete=False) as f:
        f.write(hosts)
    try:
        result = subprocess.run(
            [
                "nix-instantiate",
                "--eval",
                "--strict",
                "--json",
                "-E",
                EXPRESSION,
                "--argstr",
                "repo",
                str(REPO),
                "--argstr",
                "configDir",
                str(config_dir),
                "--argstr",
                "bird2",
                str(BIRDS[0]),
                "--argstr",
                "bird3",
                str(BIRDS[1]),
                "--arg",
                "hosts",
                f.name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(f.name).unlink()
    if result.returncode != 0:
        raise RuntimeError(
            f"nix-instantiate could not evaluate checks/render-check.nix:\n{result.stderr}"
        )
    return json.loads(result.stdout)


def run(hosts: str = "hosts: hosts") -> Outcome:
    """Runs the check's script on the hosts `hosts` (a Nix function) picks."""
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-render-check.") as top:
        root = Path(top)
        root.chmod(0o755)
        inputs, build, outputs = root / "inputs", root / "build", root / "outputs"
        for d in (inputs, build, outputs):
            d.mkdir()
        data = evaluate(inputs, hosts)
        for host in data["hosts"]:
            (inputs / f"{host['name']}-bird.conf").write_text(host["birdConfig"])
        make_read_only(inputs)
        give_to_builder(build, outputs)
        out = outputs / "out"
        env = base_environment(build, [stdenv_tools(root / "stdenv" / "bin")]) | {"out": str(out)}
        result = run_build_command(data["script"], build, env)
        output = result.stdout + result.stderr
        if result.returncode == 0 and not out.exists():
            return Outcome([h["name"] for h in data["hosts"]], 1, output + "\n$out was not created")
        return Outcome([h["name"] for h in data["hosts"]], result.returncode, output)


def main() -> int:
    missing = [str(b / "bin" / "bird") for b in BIRDS if not (b / "bin" / "bird").exists()]
    if missing:
        return could_not_run("render", f"{', '.join(missing)} missing: run scripts/setup", ONLY_NIX)
    try:
        outcome = run()
    except RuntimeError as error:
        return could_not_run("render", str(error), ONLY_NIX)
    print(outcome.output, end="")
    ran = [
        f"the script of checks/render.nix for {len(outcome.hosts)} hosts "
        f"({', '.join(outcome.hosts)}), each with BIRD 2.17 and BIRD 3.1 from scripts/setup: "
        + ("passed" if outcome.returncode == 0 else f"FAILED (exit {outcome.returncode})"),
    ]
    report("render", ran, ONLY_NIX)
    return 0 if outcome.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
