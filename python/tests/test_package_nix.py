"""python/package.nix's test selection: nixpkgs' pytestCheckHook aborts the build
when a `disabledTestPaths` glob matches no path, and a `disabledTests` entry
that matches no test silently disables nothing. Both are checked here against
the test files, the way the hook reads them (globs relative to python/)."""

from __future__ import annotations

import ast
import glob
from pathlib import Path

from nixcore import REPO, needs_nix, nix_eval

PYTHON = REPO / "python"
PACKAGE = PYTHON / "package.nix"

# package.nix is called with every argument unusable: only the attributes
# handed to buildPythonApplication are read, so nothing else may be forced.
ARGUMENTS = f"""
  let
    f = import {PACKAGE};
    unusable = name: throw "package.nix forced its argument ${{name}}";
    args = builtins.mapAttrs (name: _: unusable name) (builtins.functionArgs f) // {{
      python3Packages = {{ buildPythonApplication = attrs: attrs; }};
    }};
    drv = f args;
  in
  {{
    disabledTestPaths = drv.disabledTestPaths or [ ];
    disabledTests = drv.disabledTests or [ ];
  }}
"""


def selection() -> dict[str, list[str]]:
    return nix_eval(ARGUMENTS)


def defined_test_names(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            is_test_function = isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef
            ) and node.name.startswith("test")
            is_test_class = isinstance(node, ast.ClassDef) and node.name.startswith("Test")
            if is_test_function or is_test_class:
                names.add(node.name)
    return names


def collected_files(disabled_paths: list[str]) -> list[Path]:
    ignored = {
        Path(match).resolve()
        for pattern in disabled_paths
        if "::" not in pattern
        for match in glob.glob(str(PYTHON / pattern))
    }
    return [p for p in sorted((PYTHON / "tests").glob("test_*.py")) if p.resolve() not in ignored]


@needs_nix
def test_every_disabled_test_path_matches_a_file() -> None:
    paths = selection()["disabledTestPaths"]
    for pattern in paths:
        assert pattern, "an empty disabledTestPaths entry aborts pytestCheckHook"
        file_part = pattern.split("::", 1)[0]
        matches = glob.glob(str(PYTHON / file_part))
        assert matches, (
            f'python/package.nix: disabledTestPaths entry "{pattern}" matches nothing under '
            "python/ (pytestCheckHook aborts the build): name an existing test file or glob"
        )
        if "::" in pattern:
            test = pattern.split("::")[-1].split("[", 1)[0]
            assert test in defined_test_names([Path(m) for m in matches]), (
                f'python/package.nix: disabledTestPaths entry "{pattern}" names no test'
            )


@needs_nix
def test_every_disabled_test_matches_a_collected_test() -> None:
    chosen = selection()
    names = defined_test_names(collected_files(chosen["disabledTestPaths"]))
    for entry in chosen["disabledTests"]:
        assert any(entry in name for name in names), (
            f'python/package.nix: disabledTests entry "{entry}" matches no test that '
            "pytestCheckHook collects: it disables nothing; remove or rename it"
        )


@needs_nix
def test_no_lab_test_runs_in_the_build_sandbox() -> None:
    # The lab needs root and network namespaces, which the build sandbox lacks.
    lab_tests = sorted((PYTHON / "tests").glob("test_lab_*.py"))
    assert lab_tests
    still_collected = set(collected_files(selection()["disabledTestPaths"])) & set(lab_tests)
    assert not still_collected, f"python/package.nix runs lab tests: {sorted(still_collected)}"
