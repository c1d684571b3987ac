"""`ibgp-tunnel check` over the corpus: every rule, exit codes, JSON and human output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import EXAMPLE_PLAN, corpus, expected_findings, run

from ibgp_tunnel.check import check_file
from ibgp_tunnel.findings import Severity


def _found(plan: Path) -> set[tuple[str, str]]:
    return {(str(f.severity), f.path) for f in check_file(plan)}


@pytest.mark.skipif(not EXAMPLE_PLAN.is_file(), reason="not in a checkout: no hosts/plan.toml")
def test_example_plan_passes() -> None:
    result = run("check", EXAMPLE_PLAN)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].endswith("valid (0 errors, 1 warning)")


def test_corpus_has_a_file_per_rule() -> None:
    assert len(corpus("bad")) >= 50
    assert corpus("warn") and corpus("good") and corpus("unusable")


@pytest.mark.parametrize("plan", corpus("bad"), ids=lambda p: p.stem)
def test_bad_plan_fails_with_exactly_the_expected_findings(plan: Path) -> None:
    expected = expected_findings(plan)
    assert any(severity == "error" for severity, _ in expected), "corpus file names no error"
    assert _found(plan) == expected
    result = run("check", plan)
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    # One line per finding, then the summary.
    assert len(lines) == len(expected) + 1
    for line in lines[:-1]:
        severity, path, message = line.split(": ", 2)
        assert (severity, path) in expected
        assert len(message) > 10
    assert "invalid" in lines[-1]


@pytest.mark.parametrize("plan", corpus("warn"), ids=lambda p: p.stem)
def test_warnings_alone_pass(plan: Path) -> None:
    assert _found(plan) == expected_findings(plan)
    result = run("check", plan)
    assert result.exit_code == 0
    assert result.stdout.startswith("warning: ")


@pytest.mark.parametrize("plan", corpus("good"), ids=lambda p: p.stem)
def test_good_plan_has_no_findings(plan: Path) -> None:
    assert check_file(plan) == []
    assert run("check", plan).exit_code == 0


@pytest.mark.parametrize("plan", corpus("unusable"), ids=lambda p: p.stem)
def test_unusable_file_exits_2_naming_it(plan: Path) -> None:
    result = run("check", plan)
    assert result.exit_code == 2
    assert str(plan) in result.stderr
    assert result.stdout == ""


def test_missing_file_and_directory_exit_2(tmp_path: Path) -> None:
    missing = run("check", tmp_path / "nope.toml")
    assert missing.exit_code == 2
    assert "ibgp-tunnel init" in missing.stderr
    assert run("check", tmp_path).exit_code == 2


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("asn = 1\n")
    plan.chmod(0)
    try:
        plan.read_text()
    except PermissionError:
        assert run("check", plan).exit_code == 2
    else:
        pytest.skip("running as root: permissions do not stop reading")


def test_default_plan_is_hosts_plan_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("check")
    assert result.exit_code == 2
    assert "hosts/plan.toml" in result.stderr


def test_json_output_is_data() -> None:
    plan = next(p for p in corpus("bad") if p.stem == "many-problems")
    result = run("check", "--json", plan)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["plan"] == str(plan)
    assert {(f["severity"], f["path"]) for f in data["findings"]} == expected_findings(plan)
    assert all(set(f) == {"path", "message", "severity"} for f in data["findings"])


def test_json_output_for_valid_and_unusable() -> None:
    good = run("check", "--json", corpus("warn")[0])
    assert good.exit_code == 0
    data = json.loads(good.stdout)
    assert data["valid"] is True
    assert {f["severity"] for f in data["findings"]} == {Severity.WARNING.value}
    unusable = run("check", "--json", corpus("unusable")[0])
    assert unusable.exit_code == 2
    assert "error" in json.loads(unusable.stdout)


def test_messages_stay_on_one_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('asn = 4242420038\n[hosts.a]\nrole = "client"\nrouter_id = "x\\ny"\n')
    result = run("check", plan)
    assert result.exit_code == 1
    assert all(
        line.startswith(("error: ", "warning: ", str(plan))) for line in result.stdout.splitlines()
    )
