"""The NixOS module and `ibgp-tunnel check` agree on every corpus plan: the
module asserts the core's planProblems (the rules `check` asks the core for),
so a plan `check` refuses is refused by the module for every host (a failed
assertion naming the same TOML path, or an option type error), and a plan
`check` accepts evaluates without a failed assertion, its warnings included."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from cli_helpers import corpus, expected_findings
from moduleeval import REPO, eval_module, needs_inputs
from nixcore import needs_nix

pytestmark = [needs_nix, needs_inputs]

PLANS = [p for kind in ("good", "warn", "bad") for p in corpus(kind)]


def _hosts(plan: Path) -> list[str]:
    try:
        hosts = tomllib.loads(plan.read_text(encoding="utf-8")).get("hosts")
    except tomllib.TOMLDecodeError:
        return []
    return sorted(hosts) if isinstance(hosts, dict) else []


def _module(plan: Path, host: str) -> str:
    return (
        "{ services.ibgpTunnel = { enable = true; "
        f"plan = {plan}; hostName = {json.dumps(host)}; "
        f"sops.file = {REPO}/secrets/test/pve.yaml; }}; }}"
    )


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_module_and_check_agree(plan: Path) -> None:
    expected = expected_findings(plan)
    errors = {path for severity, path in expected if severity == "error"}
    warnings = {path for severity, path in expected if severity == "warning"}
    hosts = _hosts(plan)
    if not hosts:
        assert errors, "a plan without hosts must fail check"
        return
    for host in hosts:
        result = eval_module(_module(plan, host))
        if result.returncode != 0:
            # An option type or the core refused the plan before any assertion.
            assert errors, f"{host}: check accepts {plan.name}, the module not:\n{result.stderr}"
            assert "error:" in result.stderr
            continue
        data = json.loads(result.stdout)
        failed = data["failedAssertions"]
        for path in errors:
            assert any(f": {path}: " in message for message in failed), (host, path, failed)
        if not errors:
            assert failed == [], (host, failed)
        for path in warnings:
            assert any(f": {path}: " in message for message in data["warnings"]), (host, path)
