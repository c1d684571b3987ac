"""The plan field table (modules/lib/grammar/fields.nix) on the Python side.

fields.json is the table as `(import modules/lib).fields.json` prints it, with
every grammar resolved; it is committed and shipped so that building the plan
models needs no Nix, and a test keeps it equal to the core's. The pydantic
fields of the table's scopes are made from it here, so a field is declared
once, in the core.

    ibgp-tunnel-fields > python/src/ibgp_tunnel/fields.json   (see main below)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

TABLE_FILE = Path(__file__).with_name("fields.json")
_CORE_EXPRESSION = "{ coreFile }: (import coreFile).fields.json"


@cache
def table() -> list[dict[str, Any]]:
    """The committed table."""
    loaded: list[dict[str, Any]] = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    return loaded


def generate() -> list[dict[str, Any]]:
    """The table as the Nix core has it now (needs nix-instantiate)."""
    from ibgp_tunnel.core import evaluate_core

    found: list[dict[str, Any]] = evaluate_core(
        _CORE_EXPRESSION, "the Nix core could not list its plan fields"
    )
    return found


def to_text(fields: list[dict[str, Any]]) -> str:
    return json.dumps(fields, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def of(scope: str) -> list[dict[str, Any]]:
    return [field for field in table() if field["scope"] == scope]


def plan_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plan keys among `fields` (an option-only field, key null, is none)."""
    return [field for field in fields if field["key"] is not None]


class PlanTable(BaseModel):
    """A table of the plan."""

    # strict: "51821" is not a port; forbid: a misspelt key is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


_MODELS: dict[str, type[BaseModel]] = {}


def model(field: dict[str, Any]) -> type[BaseModel]:
    """The plan model of a record field (by its `model` name: one class however
    many fields share it, announce and anycast)."""
    name = field["model"]
    if name not in _MODELS:
        made: type[BaseModel] = create_model(
            name,
            __base__=PlanTable,
            __doc__=field.get("modelDoc"),
            __module__="ibgp_tunnel.plan",
            **_made(field["fields"]),
        )
        _MODELS[name] = made
    return _MODELS[name]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# The bounds of a shapeOnly number: BIRD parses 32-bit numbers; the core checks
# the narrower ranges and reports a finding.
U32_MAX = 2**32 - 1


def bounds(field: dict[str, Any]) -> tuple[int, int]:
    """The range the plan models check a number (or a list's numbers) against."""
    if field.get("shapeOnly"):
        return 0, U32_MAX
    return field["low"], field["high"]


def _shape(field: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The Python type of a field's values and its JSON Schema (the shape only:
    strings stay strings, the core checks their grammar and reports findings)."""
    kind = field["type"]
    if kind == "bool":
        return bool, {"type": "boolean"}
    if kind in ("int", "intList"):
        low, high = bounds(field)
        number = Annotated[int, Field(ge=low, le=high)]
        schema = {"type": "integer", "minimum": low, "maximum": high}
        if kind == "int" and field.get("also"):
            # A number or one of the words ("auto"): the core checks which.
            words = Literal[tuple(field["also"])]  # type: ignore[valid-type]
            return number | words, {"anyOf": [schema, {"type": "string", "enum": field["also"]}]}
        if kind == "int":
            return number, schema
        length = field["length"]
        return Annotated[list[number], Field(min_length=length, max_length=length)], {  # type: ignore[valid-type]
            "type": "array",
            "items": schema,
            "minItems": length,
            "maxItems": length,
        }
    if kind == "str":
        return str, {"type": "string"}
    if kind == "strList":
        return list[str], {"type": "array", "items": {"type": "string"}}
    if kind == "enum":
        return Literal[tuple(field["values"])], {"type": "string", "enum": field["values"]}
    if kind == "record":
        return model(field), {"$ref": f"#/$defs/{field['model']}"}
    if kind == "recordList":
        return list[model(field)], {  # type: ignore[misc]
            "type": "array",
            "items": {"$ref": f"#/$defs/{field['model']}"},
        }
    if kind == "recordAttrs":
        return dict[str, model(field)], {  # type: ignore[misc]
            "type": "object",
            "additionalProperties": {"$ref": f"#/$defs/{field['model']}"},
        }
    raise ValueError(f"fields.json: {field['key']} has unknown type {kind!r}; regenerate it")


def pydantic_fields(scope: str) -> dict[str, Any]:
    """`create_model` arguments for the table's fields of `scope`: name -> (type, Field)."""
    return _made(of(scope))


def _made(fields: list[dict[str, Any]]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for field in plan_fields(fields):
        python_type, schema = _shape(field)
        title = field["key"].replace("_", " ").title()
        schema = {**schema, "title": title, "description": field["description"]}
        if field["required"]:
            made[field["key"]] = (python_type, Field(description=field["description"]))
        elif field["nullable"] and field.get("default") is None:
            # TOML has no null: an absent key is missing, so no null in the schema.
            made[field["key"]] = (
                Annotated[python_type | None, WithJsonSchema(schema)],
                Field(
                    default=None, json_schema_extra=_no_default, description=field["description"]
                ),
            )
        elif field["type"] == "record":
            # The record's own defaults, as a model (its schema shows them).
            made[field["key"]] = (
                python_type,
                Field(default=python_type(), description=field["description"]),
            )
        else:
            made[field["key"]] = (
                Annotated[python_type, WithJsonSchema({**schema, "default": field["default"]})]
                if field["nullable"]
                else python_type,
                Field(default=field["default"], description=field["description"]),
            )
    return made


def main() -> int:
    print(to_text(generate()), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
