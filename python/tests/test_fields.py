"""The plan field table (modules/lib/grammar/fields.nix) and what is made from it agree:
the committed fields.json, the pydantic models (shape layer) and the host spec."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nixcore import core_call

from ibgp_tunnel import fieldtable
from ibgp_tunnel.plan import Dn42Peer, Host, Link, Tuning

MODELS = {
    "host": Host,
    "dn42Peer": Dn42Peer,
    "dn42Tunnel": Dn42Peer,
    "tuning": Tuning,
    "link": Link,
}


def test_committed_table_equals_the_cores() -> None:
    committed = fieldtable.TABLE_FILE.read_text(encoding="utf-8")
    assert committed == fieldtable.to_text(fieldtable.generate()), (
        "fields.json is stale: run "
        "`python -m ibgp_tunnel.fieldtable > python/src/ibgp_tunnel/fields.json`"
    )


def test_every_scope_has_a_model_and_fields() -> None:
    assert {field["scope"] for field in fieldtable.table()} == set(MODELS)
    for scope in MODELS:
        assert fieldtable.of(scope), scope


def _expected_schema(field: dict[str, Any]) -> dict[str, Any]:
    kind = field["type"]
    if kind in ("int", "intList"):
        low, high = fieldtable.bounds(field)
        number = {"type": "integer", "minimum": low, "maximum": high}
        if kind == "int":
            return number
        return {"type": "array", "items": number, "minItems": field["length"]}
    if kind == "enum":
        return {"enum": field["values"]}
    return {
        "bool": {"type": "boolean"},
        "str": {"type": "string"},
        "strList": {"type": "array", "items": {"type": "string"}},
    }[kind]


@pytest.mark.parametrize("field", fieldtable.table(), ids=lambda f: f"{f['scope']}.{f['key']}")
def test_pydantic_agrees_with_the_table(field: dict[str, Any]) -> None:
    model = MODELS[field["scope"]]
    info = model.model_fields[field["key"]]
    assert info.is_required() == field["required"]
    if not field["required"]:
        assert info.default == field.get("default")
    assert info.description == field["description"]
    schema = model.model_json_schema()["properties"][field["key"]]
    for name, value in _expected_schema(field).items():
        assert schema[name] == value, (field["key"], name)
    # TOML has no null: the schema never offers it, nor a null default.
    assert "anyOf" not in schema
    assert schema.get("default", "absent") is not None


def test_the_table_drives_the_host_spec() -> None:
    plan = {
        "asn": 4242420038,
        "hosts": {
            "vps": {
                "role": "reflector",
                "router_id": "172.23.101.1",
                "uplink_interfaces": ["eth0"],
                "dn42_peers": {
                    "p1": {
                        "asn": 4242421080,
                        "neighbor": "fe80::1",
                        "latency": 3,
                        "public_key": "x" * 43 + "=",
                        "link_local": "fe80::2/64",
                        "preshared_key": True,
                    }
                },
            }
        },
    }
    spec = core_call(f'core.hostFromPlan (builtins.fromJSON {json.dumps(json.dumps(plan))}) "vps"')
    for field in fieldtable.table():
        if field["optionPath"] is None:  # plan only (links: each end's view is derived)
            continue
        where = spec
        for step in field["optionPath"]:
            where = where["p1" if step == "<name>" else step]
        assert field["option"] in where, field["option"]
    assert spec["routerId"] == "172.23.101.1"
    assert spec["uplinkInterfaces"] == ["eth0"]
    assert spec["acceptRAInterfaces"] is None
    assert spec["dn42Peers"]["p1"]["latency"] == 3
    assert spec["dn42Peers"]["p1"]["exportSets"] == []
    tunnel = spec["dn42Peers"]["p1"]["tunnel"]
    assert tunnel["linkLocal"] == "fe80::2/64"
    assert tunnel["mtu"] is None
    # preshared_key, a flag in the plan, names the PSK's file as an option.
    assert tunnel["presharedKeyFile"].endswith("/wg_dn42/psk/p1")
