"""Golden digests of everything the Nix core says about the repository's plans.

For every plan of the corpus (python/tests/corpus/{good,warn,bad}), the example
(hosts/plan.toml), the test plans (python/tests/plans) and the template
(templates/default/hosts/plan.toml) the core is asked, in one nix-instantiate per
plan, for `planProblems plan` and, per host, `hostFromPlan`, `problems` and every
artifact `render` returns. Each answer is hashed (sha256 of its canonical JSON)
into python/tests/data/render-golden.json.

Why digests rather than a second checkout of the core: they work on any clone
(no git history, no worktree), and a restructuring of modules/lib must leave
every one of them unchanged. A deliberate change of behaviour regenerates them:

    .venv/bin/python python/tests/render_golden.py --write

and the diff of that file names the plans, hosts and artifacts that changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "modules" / "lib"
GOLDEN = Path(__file__).resolve().parent / "data" / "render-golden.json"
CORPUS = Path(__file__).resolve().parent / "corpus"

# An answer that throws (a bad plan's host) is recorded as this marker, so a
# plan that starts or stops throwing changes its digest too.
THROWS = "<throws>"
EVALUATION_ERROR = "<evaluation error>"

EXPRESSION = """
let
  core = import {core};
  plan = core.readPlan {plan};
  try = v: fallback: let r = builtins.tryEval (builtins.deepSeq v v); in
    if r.success then r.value else fallback;
  safe = v: try v "{throws}";
  hosts = try (builtins.attrNames plan.hosts) [ ];
  host = name: let
    spec = core.hostFromPlan plan name;
    rendered = core.render spec;
    artifacts = try (builtins.attrNames rendered) [ ];
    artifact = a: {{ name = a; value = safe rendered.${{a}}; }};
  in {{
    spec = safe spec;
    problems = safe (core.problems spec);
    render = safe (builtins.listToAttrs (map artifact artifacts));
  }};
in {{
  planProblems = safe (core.planProblems plan);
  hosts = builtins.listToAttrs (map (name: {{ inherit name; value = host name; }}) hosts);
}}
"""


def plans() -> list[Path]:
    """Every plan whose answers are pinned, sorted."""
    found = [
        *sorted((CORPUS / "good").glob("*.toml")),
        *sorted((CORPUS / "warn").glob("*.toml")),
        *sorted((CORPUS / "bad").glob("*.toml")),
        REPO / "hosts" / "plan.toml",
        *sorted((Path(__file__).resolve().parent / "plans").glob("*.toml")),
        REPO / "templates" / "default" / "hosts" / "plan.toml",
    ]
    return found


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def answers(plan: Path) -> dict[str, Any]:
    """The core's answers for one plan, each replaced by its digest.

    A plan whose hosts the evaluator rejects outright (not a throw: e.g. a
    type error in a bad plan) keeps its planProblems digest, and its hosts are
    recorded as one "<evaluation error>"."""
    data = evaluate(EXPRESSION.format(core=CORE, plan=plan, throws=THROWS))
    if data is None:
        problems = evaluate(f"(import {CORE}).planProblems ((import {CORE}).readPlan {plan})")
        return {
            "planProblems": EVALUATION_ERROR if problems is None else digest(problems),
            "hosts": EVALUATION_ERROR,
        }
    return {
        "planProblems": digest(data["planProblems"]),
        "hosts": {
            name: {
                "spec": digest(host["spec"]),
                "problems": digest(host["problems"]),
                "render": (
                    digest(host["render"])
                    if host["render"] == THROWS
                    else {k: digest(v) for k, v in sorted(host["render"].items())}
                ),
            }
            for name, host in sorted(data["hosts"].items())
        },
    }


def evaluate(expression: str) -> Any:
    """The expression's value, or None when nix-instantiate fails."""
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def key_of(plan: Path) -> str:
    return str(plan.relative_to(REPO))


def compute() -> dict[str, Any]:
    return {key_of(plan): answers(plan) for plan in plans()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN.relative_to(REPO)}")
    args = parser.parse_args()
    current = compute()
    if args.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN.relative_to(REPO)} ({len(current)} plans)")
        return 0
    golden = json.loads(GOLDEN.read_text())
    print("unchanged" if golden == current else "CHANGED")
    return 0 if golden == current else 1


if __name__ == "__main__":
    sys.exit(main())
