"""Checking a plan file in two layers, every problem at once.

Layer 1 is the shape: the TOML data against the committed JSON Schema (what
editors see), then the pydantic models. Layer 2 is the network rules, which live
once, in the Nix core (`planProblems`, modules/lib/plan/problems.nix), the same
rules the NixOS module asserts; this module asks the core for them (`core`).
Layer 2 runs only on a plan whose shape is right, so shape errors come first,
then rule findings once they are fixed.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import ValidationError

from ibgp_tunnel import planfile, schema
from ibgp_tunnel.core import plan_problems
from ibgp_tunnel.findings import Finding, Severity, toml_path
from ibgp_tunnel.plan import Plan

# JSON Schema type names in the words a TOML user knows.
_TOML_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "a table",
}

# pydantic error types for the same mismatches (a float 1.0 passes JSON Schema's
# "integer" but not the strict models).
_PYDANTIC_TYPES = {
    "int_type": "an integer",
    "string_type": "a string",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
}


def structure_findings(data: dict[str, Any]) -> list[Finding]:
    """Layer 1: the data against the committed JSON Schema."""
    validator = Draft202012Validator(schema.committed())
    found = [f for error in validator.iter_errors(data) for f in _schema_findings(error)]
    return sorted(set(found))


def _schema_findings(error: SchemaError) -> Iterator[Finding]:
    parts = list(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        for key in (k for k in expected if k not in value):
            yield Finding(toml_path([*parts, key]), "is missing; this key is required")
    elif kind == "additionalProperties" and isinstance(value, dict):
        known = sorted(error.schema.get("properties", {}))
        for key in (k for k in value if k not in known):
            yield Finding(toml_path([*parts, key]), _unknown_key(key, known))
    elif kind == "type":
        wanted = _TOML_TYPES.get(expected, expected)
        yield Finding(toml_path(parts), f"must be {wanted}, not {_describe(value)}")
    elif kind == "enum":
        choices = ", ".join(f'"{c}"' for c in expected)
        yield Finding(toml_path(parts), f"must be one of {choices}, not {_describe(value)}")
    elif kind == "minimum":
        yield Finding(toml_path(parts), f"{value} is too small; the minimum is {expected}")
    elif kind == "maximum":
        yield Finding(toml_path(parts), f"{value} is too large; the maximum is {expected}")
    else:
        yield Finding(toml_path(parts), error.message)


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f"is not a known key here; {hint}known keys: {', '.join(known) or 'none'}"


def _describe(value: Any) -> str:
    """A TOML value as the user wrote it, briefly: 'the string "abc"'."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}" if abs(value) < 10**30 else "a huge integer"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'the string "{shown}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime.date | datetime.time):
        return f"the date/time {value.isoformat()}"
    return type(value).__name__


def model_findings(error: ValidationError) -> list[Finding]:
    """Layer 2 shape errors (normally caught by layer 1) as findings."""
    found = []
    for item in error.errors(include_url=False):
        path = toml_path([p for p in item["loc"] if isinstance(p, str | int)])
        if item["type"] == "missing":
            message = "is missing; this key is required"
        elif item["type"] == "extra_forbidden":
            message = "is not a known key here"
        elif item["type"] in _PYDANTIC_TYPES:
            message = f"must be {_PYDANTIC_TYPES[item['type']]}, not {_describe(item['input'])}"
        else:
            message = f"{item['msg']}, not {_describe(item['input'])}"
        found.append(Finding(path, message))
    return sorted(set(found))


def check_data(data: dict[str, Any]) -> list[Finding]:
    """All findings for plan data: shape first, then (if the shape is right) the rules."""
    shape = structure_findings(data)
    if shape:
        return shape
    try:
        Plan.model_validate(data)
    except ValidationError as error:
        return model_findings(error)
    nul = _nul_findings(data)
    if nul:
        return nul
    return rule_findings(data)


def rule_findings(data: dict[str, Any]) -> list[Finding]:
    """Layer 2: the core's planProblems over shape-checked data, sorted."""
    found = {
        Finding(item["path"], item["message"], Severity(item["severity"]))
        for item in plan_problems(data)
    }
    return sorted(found)


def _nul_findings(data: Any, path: tuple[str | int, ...] = ()) -> list[Finding]:
    # Nix strings end at a NUL byte, so the core would see a different value.
    if isinstance(data, str):
        return (
            [Finding(toml_path(path), "contains a NUL character; remove it")]
            if "\0" in data
            else []
        )
    if isinstance(data, dict):
        keys = [
            Finding(toml_path((*path, k)), "the key contains a NUL character; rename it")
            for k in data
            if "\0" in k
        ]
        return keys + [f for k, v in data.items() for f in _nul_findings(v, (*path, k))]
    if isinstance(data, list):
        return [f for i, v in enumerate(data) for f in _nul_findings(v, (*path, i))]
    return []


def check_file(path: Path) -> list[Finding]:
    """All findings for a plan file; InputError if the file is unusable."""
    return check_data(planfile.load(path))
