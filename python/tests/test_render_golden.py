"""Everything the Nix core says about the repository's plans is unchanged.

The safety net for restructuring modules/lib (issue 20): every host of every
plan (corpus good/warn/bad, the example, the test plans, the template) rendered
to every artifact, its spec and host problems, and each plan's planProblems,
hashed and compared with the committed digests (python/tests/data/render-golden.json).
Golden digests rather than a checkout of an older revision: they need no git
history, so the test runs on any clone. A deliberate change of the core's output
regenerates them with `.venv/bin/python python/tests/render_golden.py --write`;
see render_golden.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nixcore import needs_nix
from render_golden import GOLDEN, answers, key_of, plans


def differences(golden: Any, current: Any, path: str = "") -> list[str]:
    """The paths where two digest trees differ, for a readable failure."""
    if isinstance(golden, dict) and isinstance(current, dict):
        found: list[str] = []
        for key in sorted(set(golden) | set(current)):
            if key not in golden or key not in current:
                found.append(f"{path}/{key}: {'new' if key not in golden else 'gone'}")
            else:
                found.extend(differences(golden[key], current[key], f"{path}/{key}"))
        return found
    return [] if golden == current else [path or "/"]


GOLDEN_DATA: dict[str, Any] = json.loads(GOLDEN.read_text())


def test_golden_covers_every_plan() -> None:
    assert sorted(GOLDEN_DATA) == sorted(key_of(plan) for plan in plans()), (
        "plans were added or removed: regenerate with python/tests/render_golden.py --write"
    )


@needs_nix
@pytest.mark.parametrize("plan", plans(), ids=key_of)
def test_core_answers_unchanged(plan: Path) -> None:
    changed = differences(GOLDEN_DATA.get(key_of(plan)), answers(plan))
    assert not changed, (
        f"the core's answers for {key_of(plan)} changed at {changed}; if intended, "
        "regenerate with .venv/bin/python python/tests/render_golden.py --write"
    )
