"""What the documents promise a reader: README's first screen is the two
commands CI runs too, README stays a short read that links to the rest, every
link between the documents leads somewhere, and README's example plan passes
`check`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from cli_helpers import REPO, run

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
FIRST_SCREEN_LINES = 24
README_MAX_LINES = 420

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _commands(block: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_first_screen_shows_exactly_the_two_commands() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN_LINES])
    blocks = [body for lang, body in _FENCE.findall(first_screen) if lang == "sh"]
    assert len(blocks) == 1, "README's first screen needs one sh block with the two commands"
    assert _commands(blocks[0]) == ["scripts/lab", "scripts/test"]
    assert "`nix run`" in first_screen and "`nix flake check`" in first_screen


def test_ci_runs_the_test_command_the_readme_shows() -> None:
    ci_commands = [
        shlex.split(line)
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # The command itself, after any VAR=value prefixes.
    programs = [next((w for w in words if "=" not in w), None) for words in ci_commands]
    assert "scripts/test" in programs


def test_readme_is_a_short_read() -> None:
    assert len(README.read_text().splitlines()) <= README_MAX_LINES


def _slug(heading: str) -> str:
    # GitHub's anchor for a heading: lower case, punctuation but - and _ dropped.
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("document", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(document: Path) -> None:
    for target in _LINK.findall(_FENCE.sub("", document.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        assert path.exists(), f"{document.name} links to {target}: no such file"
        if anchor:
            assert anchor in _anchors(path), f"{document.name} links to {target}: no such heading"


def test_readme_links_every_document_in_docs() -> None:
    linked = set(_LINK.findall(README.read_text()))
    for document in DOCS:
        assert any(target.partition("#")[0] == f"docs/{document.name}" for target in linked), (
            f"README does not link docs/{document.name}"
        )


def test_readmes_example_plan_passes_check(tmp_path: Path) -> None:
    text = README.read_text()
    section = text[text.index("## A plan") :]
    plan = next(body for lang, body in _FENCE.findall(section) if lang == "toml")
    (tmp_path / "plan.toml").write_text(plan.replace("#:schema ../", f"#:schema {REPO}/"))
    result = run("check", tmp_path / "plan.toml")
    assert result.exit_code == 0, result.stdout + (result.stderr or "")
