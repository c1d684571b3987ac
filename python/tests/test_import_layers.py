"""The package's import graph: no circle, and no import from a lower layer up.

Every `import` counts, wherever it stands (module level, inside a function,
under TYPE_CHECKING): an import hidden in a function is still a dependency, and
a circle hidden that way is still a circle. The layers, lowest first:

    base     errors, findings, formats, paths, planfile, plan, schema, newfile,
             flake_inputs, vmtest: no Nix, no commands; paths is the only
             module that knows where the Nix core's files are
    core     core: the one module that runs nix-instantiate over default.nix
    plan     check, render, scaffold, peerinfo: what a plan means, asked of the core
    keys     keys/: key storage (sops files, the all-or-none writes, the lock)
    autopeer autopeer/: self-service DN42 peering (registry, signatures, spool, apply)
    lab      lab/: network namespaces running the rendered artifacts
    doctor   doctor/: a live host (or a lab host) against what the core renders
    graph    graph/: the plan as a picture, coloured by doctor's results
    face     cli, flake_inputs_cli, dn42_cli, autopeer_cli: the commands

A module may import its own layer and those below. A new module must be given
a layer here, so its place is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "ibgp_tunnel"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE

LAYERS: list[tuple[str, set[str]]] = [
    (
        "base",
        {
            "ibgp_tunnel",
            "errors",
            "findings",
            "formats",
            "paths",
            "planfile",
            "newfile",
            "flake_inputs",
            "command",
            "vmtest",
        },
    ),
    ("core", {"core"}),
    # The plan's shape (pydantic, the field table, the schema) reads the core's table.
    ("plan", {"fieldtable", "plan", "schema", "check", "render", "scaffold", "peerinfo"}),
    ("keys", {"keys"}),
    # autopeer/: requests from strangers, checked by the core before anything is applied.
    ("autopeer", {"autopeer"}),
    ("lab", {"lab"}),
    ("doctor", {"doctor"}),
    # graph/: the plan's picture, coloured by doctor's results (it runs doctor with --lab).
    ("graph", {"graph"}),
    ("face", {"cli", "flake_inputs_cli", "dn42_cli", "autopeer_cli"}),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or node.module is None:
        raise AssertionError(f"line {node.lineno}: use absolute imports of {PACKAGE}")
    # `from pkg import name` loads pkg.name when that is a module, else pkg.
    return [
        f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
        for alias in node.names
    ]


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= {t for t in _targets(node) if t in MODULES and t != module}
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def layer_of(module: str) -> int:
    # The module itself, else its top-level name under the package (keys/, lab/, ...).
    short = module.removeprefix(f"{PACKAGE}.")
    for key in (module if module == PACKAGE else short, short.split(".")[0]):
        for number, (_, members) in enumerate(LAYERS):
            if key in members:
                return number
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {Path(__file__).name}")


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_was_read() -> None:
    # Guards the test itself: a reader that found no imports would pass everything.
    assert "ibgp_tunnel.core" in GRAPH["ibgp_tunnel.render"]
    assert "ibgp_tunnel.planfile" in GRAPH["ibgp_tunnel.check"]
    assert "ibgp_tunnel.lab.netns" in GRAPH["ibgp_tunnel.doctor.collect"]  # in a function


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_circle() -> None:
    assert _circles(GRAPH) == []


def test_circles_are_found() -> None:
    # The detector on a graph with a known circle, so test_no_circle can fail.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_stay_at_or_below_the_layer(module: str) -> None:
    mine = layer_of(module)
    upward = sorted(
        f"{target} ({LAYERS[layer_of(target)][0]})"
        for target in GRAPH[module]
        if layer_of(target) > mine
    )
    assert not upward, f"{module} ({LAYERS[mine][0]}) imports a higher layer: {upward}"


CORE_FILES = ("default.nix", "defaults.toml", "dn42-defaults.toml")


def _names_a_core_file(path: Path) -> bool:
    return any(
        isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in CORE_FILES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


def test_only_paths_names_the_core_files() -> None:
    # The Nix core may move its files around; Python reaches them through paths alone.
    assert _names_a_core_file(MODULES[f"{PACKAGE}.paths"])
    named = [m for m, p in MODULES.items() if m != f"{PACKAGE}.paths" and _names_a_core_file(p)]
    assert named == []
