"""The committed JSON Schema is exactly what the models generate, and it is usable."""

from __future__ import annotations

import json
import tomllib

import pytest
from cli_helpers import EXAMPLE_PLAN, REPO, run
from jsonschema import Draft202012Validator

from ibgp_tunnel import schema


def test_committed_schema_equals_generated() -> None:
    committed = schema.SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema.to_text(schema.generate()), (
        "plan.schema.json is stale: run "
        "`ibgp-tunnel schema > python/src/ibgp_tunnel/plan.schema.json`"
    )


def test_schema_command_prints_the_committed_file() -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert result.stdout == schema.SCHEMA_FILE.read_text(encoding="utf-8")


def test_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(json.loads(schema.SCHEMA_FILE.read_text()))


def test_schema_takes_its_defaults_from_defaults_toml() -> None:
    from ibgp_tunnel.paths import defaults

    link = schema.generate()["$defs"]["Link"]["properties"]
    assert link["port"]["default"] == defaults()["port"]
    assert link["interface"]["default"] == defaults()["interface"]


@pytest.mark.skipif(not EXAMPLE_PLAN.is_file(), reason="not in a checkout: no hosts/plan.toml")
def test_example_plan_points_editors_at_the_committed_schema() -> None:
    first = EXAMPLE_PLAN.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#:schema ")
    target = (EXAMPLE_PLAN.parent / first.removeprefix("#:schema ").strip()).resolve()
    # The committed schema, which is the one the package ships (an installed
    # wheel holds a copy, an editable install the file itself).
    assert target == (REPO / "python" / "src" / "ibgp_tunnel" / "plan.schema.json").resolve()
    assert target.read_text(encoding="utf-8") == schema.SCHEMA_FILE.read_text(encoding="utf-8")
    data = tomllib.loads(EXAMPLE_PLAN.read_text(encoding="utf-8"))
    assert list(Draft202012Validator(schema.committed()).iter_errors(data)) == []
