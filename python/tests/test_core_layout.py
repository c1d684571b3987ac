"""The Nix core (modules/lib) is built in stages, each reading only those before it:

    base → grammar → plan → spec → render

- base/     addresses, helpers, the shared constants (defaults.toml, dn42-defaults.toml)
- grammar/  the token grammars and the checkers built on them (plan rules and spec
            rules both use them, so they sit below both)
- plan/     a plan: reading, its links, a host's spec, the plan's rules (plan/rules/)
- spec/     a host spec: its shape, the DN42 defaults filled in, its rules
- render/   a checked spec -> artifacts

resources/ is data (the fixed BIRD logic and the ROA script), read by any stage.
default.nix at the top is the only way in for everyone else: the NixOS module,
checks, the Python helper and its tests (data files excepted). No file is longer
than 400 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "modules" / "lib"
STAGES = ["base", "grammar", "plan", "spec", "render"]
DATA = {"resources"}
MAX_LINES = 400

# A Nix path literal: ./x, ../x (what `import` and readFile take here).
PATH_LITERAL = re.compile(r"(?<![\w/.])(\.\.?/[A-Za-z0-9_./-]*)")
COMMENT = re.compile(r"#.*$", re.MULTILINE)

# What outside code may name inside the core besides default.nix: data.
# (a path joined piece by piece also shows its directories: base, resources).
OUTSIDE_ALLOWED = re.compile(r"^(default\.nix|base|base/(dn42-)?defaults\.toml|resources(/.*)?)?$")


def nix_paths(source: Path) -> list[Path]:
    """The files a .nix file names by path literal, comments left out."""
    text = COMMENT.sub("", source.read_text())
    return [(source.parent / m).resolve() for m in PATH_LITERAL.findall(text)]


def stage_of(path: Path) -> str | None:
    relative = path.resolve().relative_to(CORE.resolve())
    return relative.parts[0] if len(relative.parts) > 1 else None


def core_files() -> list[Path]:
    return sorted(p for p in CORE.rglob("*") if p.is_file())


def test_every_file_sits_in_a_stage() -> None:
    loose = [
        p for p in core_files() if stage_of(p) not in [*STAGES, *DATA] and p.name != "default.nix"
    ]
    assert loose == [], f"files outside the stages {STAGES}: {loose}"
    assert (CORE / "default.nix").is_file()


def test_no_stage_reads_a_later_one() -> None:
    wrong = []
    for source in core_files():
        if source.suffix != ".nix" or source == CORE / "default.nix":
            continue
        here = STAGES.index(stage_of(source) or "")
        for target in nix_paths(source):
            assert target.is_relative_to(CORE.resolve()), (
                f"{source} reads {target} outside the core"
            )
            there = stage_of(target)
            if there in DATA:
                continue
            assert there is not None, f"{source} reads {target}: only default.nix imports the top"
            if STAGES.index(there) > here:
                wrong.append(f"{source.relative_to(CORE)} -> {target.relative_to(CORE.resolve())}")
    assert wrong == [], "a stage reads a later one (order: " + " → ".join(STAGES) + f"): {wrong}"


def test_no_file_exceeds_the_limit() -> None:
    lengths = {
        str(p.relative_to(CORE)): len(p.read_text(errors="replace").splitlines())
        for p in core_files()
    }
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert long == {}, f"split these by subject (at most {MAX_LINES} lines): {long}"


def outside_nix_files() -> list[Path]:
    roots = [REPO / "modules", REPO / "checks", REPO / "templates", REPO / "flake.nix"]
    found = [p for r in roots for p in ([r] if r.is_file() else r.rglob("*.nix"))]
    return [p for p in found if not p.resolve().is_relative_to(CORE.resolve())]


def test_nix_outside_uses_only_default_nix() -> None:
    wrong = []
    for source in outside_nix_files():
        for target in nix_paths(source):
            if target.is_relative_to(CORE.resolve()) and target != CORE.resolve():
                name = str(target.relative_to(CORE.resolve()))
                if not OUTSIDE_ALLOWED.match(name):
                    wrong.append(f"{source.relative_to(REPO)} -> modules/lib/{name}")
    assert wrong == [], f"import the core as a whole (modules/lib), not its files: {wrong}"


def code_strings(tree: ast.AST) -> list[str]:
    """String constants and f-strings of code, docstrings left out; an f-string's
    fields as {name}, a path join a / "b" as a/b."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                found.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            found.append(
                "".join(
                    part.value
                    if isinstance(part, ast.Constant)
                    else "{" + ast.unparse(part.value) + "}"
                    for part in node.values
                    if isinstance(part, ast.Constant | ast.FormattedValue)
                )
            )
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found.append(ast.unparse(node).replace(" / ", "/").replace('"', "").replace("'", ""))
    return found


# modules/lib/x.nix, modules/lib/x, {CORE}/x.nix, CORE/x.nix
INTO_CORE = re.compile(r"(?:modules/lib|\{CORE\}|\bCORE|\{REPO\}/modules/lib)/([A-Za-z0-9_./-]+)")


def test_python_uses_only_default_nix_and_data() -> None:
    wrong = []
    for root in [
        REPO / "python" / "src",
        REPO / "python" / "tests",
        REPO / "bench",
        REPO / "checks",
    ]:
        for source in root.rglob("*.py"):
            for text in code_strings(ast.parse(source.read_text())):
                for name in INTO_CORE.findall(text):
                    if not OUTSIDE_ALLOWED.match(name.strip("/")):
                        wrong.append(f"{source.relative_to(REPO)}: modules/lib/{name}")
    assert wrong == [], f"ask the core through default.nix, not its files: {wrong}"
