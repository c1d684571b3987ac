"""The plan's JSON Schema: generated from the pydantic models, committed for editors.

`check` validates against the committed copy (what taplo and VS Code see via the
plan's `#:schema` line); a test keeps it equal to the generated one.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import InputError
from ibgp_tunnel.plan import Plan

SCHEMA_FILE = Path(__file__).with_name("plan.schema.json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def generate() -> dict[str, Any]:
    """The JSON Schema of a plan, from the models."""
    return {"$schema": DIALECT, **Plan.model_json_schema()}


def to_text(schema: dict[str, Any]) -> str:
    """The committed file's exact text (stable key order, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


@cache
def committed() -> dict[str, Any]:
    """The schema file shipped with the package."""
    try:
        return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(
            f"the packaged schema {SCHEMA_FILE} is unusable ({error}); reinstall ibgp-tunnel"
        ) from error
