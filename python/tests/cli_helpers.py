"""Shared by the CLI tests: run `ibgp-tunnel` in-process and insist on clean failures."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner, Result

from ibgp_tunnel.cli import app

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "corpus"
REPO = TESTS.parent.parent
EXAMPLE_PLAN = REPO / "hosts" / "plan.toml"

_EXPECT = re.compile(r"^# expect: (error|warning) (.+)$", re.MULTILINE)


def run(*args: str | Path, stdin: str | None = None) -> Result:
    """Run the CLI; fail the test on a traceback or an exception escaping the app."""
    result = CliRunner().invoke(app, [str(a) for a in args], input=stdin)
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not escaped, f"exception escaped the CLI: {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output
    assert "Traceback" not in (result.stderr or "")
    if result.exit_code != 0:
        assert (result.stdout + (result.stderr or "")).strip(), "failed without a message"
    return result


def expected_findings(plan: Path) -> set[tuple[str, str]]:
    """The `# expect: <severity> <path>` lines at the top of a corpus file."""
    return set(_EXPECT.findall(plan.read_text(encoding="utf-8")))


def corpus(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).glob("*.toml"))
