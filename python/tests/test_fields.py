"""The plan field table (modules/lib/grammar/fields.nix) and what is made from it agree:
the committed fields.json, the pydantic models (shape layer) and the host spec."""

from __future__ import annotations

import json
from typing import Any

import pinned
import pytest
from nixcore import core_call, needs_nix
from pydantic import BaseModel

from ibgp_tunnel import fieldtable
from ibgp_tunnel.plan import Dn42Peer, Host, Link, Plan, Tuning

Dn42Roa: type[BaseModel] = Host.model_fields["dn42_roa"].annotation  # type: ignore[assignment]

# The plan model of each scope; None: options only (each end's view of a link).
MODELS: dict[str, type[BaseModel] | None] = {
    "plan": Plan,
    "host": Host,
    "dn42Peer": Dn42Peer,
    "dn42Tunnel": Dn42Peer,
    "dn42Roa": Dn42Roa,
    "tuning": Tuning,
    "link": Link,
    "linkEnd": None,
}

# The options of services.ibgpTunnel that are not plan fields: the module's
# switches, where the plan is, secrets' paths, the BIRD layout, monitoring.
NOT_PLAN_FIELDS = {
    "enable",
    "plan",
    "hostName",
    "openFirewall",
    "privateKey",
    "privateKeyFile",
    "nftables.enable",
    "sops.file",
    "dn42.privateKeyFile",
    "bird.standalone",
    "bird.kernelProtocols",
    "monitoring.enable",
    "monitoring.instance",
    "monitoring.openFirewall",
    "monitoring.latencyTextfile",
    "monitoring.alertRules",
    "monitoring.expectedKernelRoutes",
    "monitoring.expectedKernelRoutes.ipv4",
    "monitoring.expectedKernelRoutes.ipv6",
    # The helper the autopeer units run (a package, as services.bird.package).
    "autopeer.package",
}


def _plan_fields() -> list[tuple[type[BaseModel], dict[str, Any]]]:
    """Every plan key of the table with the model that holds it, records'
    fields included (in the record's own model)."""
    found: list[tuple[type[BaseModel], dict[str, Any]]] = []

    def walk(model: type[BaseModel], fields: list[dict[str, Any]]) -> None:
        for field in fieldtable.plan_fields(fields):
            found.append((model, field))
            if "fields" in field:
                walk(fieldtable.model(field), field["fields"])

    for scope, model in MODELS.items():
        if model is not None:
            walk(model, fieldtable.of(scope))
    return found


def _option_names() -> set[str]:
    """The options the table declares, as optionAttrSetToDocList names them."""
    names: set[str] = set()

    def walk(prefix: str, fields: list[dict[str, Any]]) -> None:
        for field in fields:
            if field["option"] is None:
                continue
            name = prefix + field["option"]
            names.add(name)
            inner = {"record": ".", "recordList": ".*.", "recordAttrs": ".<name>."}
            if field["type"] in inner:
                walk(name + inner[field["type"]], field["fields"])

    for field in fieldtable.table():
        if field["optionPath"] is not None:
            walk("".join(f"{step}." for step in field["optionPath"]), [field])
    return names


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
    # Options only: no plan key, and a note on what the option is made from.
    for field in fieldtable.of("linkEnd"):
        assert field["key"] is None and field["derived"], field["option"]


def test_the_plan_models_have_no_field_the_table_lacks() -> None:
    declared: dict[type[BaseModel], set[str]] = {}
    for model, field in _plan_fields():
        declared.setdefault(model, set()).add(field["key"])
    # Containers of other scopes' tables (hosts, links, dn42_peers, tuning).
    containers = {Plan: {"hosts", "links", "tuning"}, Host: {"dn42_peers"}}
    for model, keys in declared.items():
        assert set(model.model_fields) == keys | containers.get(model, set()), model.__name__


def _expected_schema(field: dict[str, Any]) -> dict[str, Any]:
    kind = field["type"]
    if kind in ("int", "intList"):
        low, high = fieldtable.bounds(field)
        number = {"type": "integer", "minimum": low, "maximum": high}
        if kind == "int" and field.get("also"):
            # A number or one of the words ("auto").
            return {"anyOf": [number, {"type": "string", "enum": field["also"]}]}
        if kind == "int":
            return number
        return {"type": "array", "items": number, "minItems": field["length"]}
    if kind == "enum":
        return {"enum": field["values"]}
    ref = {"$ref": f"#/$defs/{field.get('model')}"}
    if kind == "record":
        return ref
    if kind == "recordList":
        return {"type": "array", "items": ref}
    if kind == "recordAttrs":
        return {"type": "object", "additionalProperties": ref}
    return {
        "bool": {"type": "boolean"},
        "str": {"type": "string"},
        "strList": {"type": "array", "items": {"type": "string"}},
    }[kind]


@pytest.mark.parametrize(
    ("model", "field"),
    _plan_fields(),
    ids=lambda x: x.__name__ if isinstance(x, type) else x["key"],
)
def test_pydantic_agrees_with_the_table(model: type[BaseModel], field: dict[str, Any]) -> None:
    info = model.model_fields[field["key"]]
    assert info.is_required() == field["required"]
    if field["type"] == "record":
        # A record's default is its model with its own fields' defaults.
        assert info.default == fieldtable.model(field)()
        assert field["default"] == {}
    elif not field["required"]:
        assert info.default == field.get("default")
    assert info.description == field["description"]
    whole = model.model_json_schema()
    schema = whole["properties"][field["key"]]
    if field["type"].startswith("record"):
        assert whole["$defs"][field["model"]]["description"] == field["modelDoc"]
    for name, value in _expected_schema(field).items():
        assert schema[name] == value, (field["key"], name)
    # TOML has no null: the schema never offers it, nor a null default.
    assert all(choice.get("type") != "null" for choice in schema.get("anyOf", []))
    assert "anyOf" not in schema or field.get("also")
    assert schema.get("default", "absent") is not None


def test_the_table_drives_the_host_spec() -> None:
    plan = {
        "asn": 4242420038,
        "links": {
            "l1": {
                "reflector": "vps",
                "client": "pve",
                "ipv4": "10.255.255.0/30",
                "ipv6": "fdb7:1dec:4d21:ff::/64",
                "reflector_ipv4": "10.255.255.1",
                "client_ipv4": "10.255.255.2",
                "reflector_ipv6": "fdb7:1dec:4d21:ff::1",
                "client_ipv6": "fdb7:1dec:4d21:ff::2",
            }
        },
        "hosts": {
            "pve": {
                "role": "client",
                "router_id": "172.23.101.2",
                "public_key": "y" * 43 + "=",
                "dn42_inbound": [{"prefix": "10.42.1.0/24", "proto": "tcp", "port": 22}],
            },
            "vps": {
                "role": "reflector",
                "router_id": "172.23.101.1",
                "uplink_interfaces": ["eth0"],
                "announce": {"ipv4": ["10.42.0.0/24"]},
                "dn42_roa": {
                    "interval": "1h",
                    "source": "rtr",
                    "rtr_caches": [{"address": "127.0.0.1", "port": 8282}],
                },
                "autopeer": {"enable": True, "link_local": "fe80::38/64"},
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
            },
        },
    }
    spec = core_call(f'core.hostFromPlan (builtins.fromJSON {json.dumps(json.dumps(plan))}) "vps"')
    # Every option the table declares is in the spec (one entry of each list, a
    # named one of each attribute set).
    named = {"links": "l1", "dn42Peers": "p1", "prefixSets": "dn42"}
    for name in _option_names():
        where = spec
        steps = name.split(".")
        for step in steps:
            where = (
                where[0]
                if step == "*"
                else where[named.get(steps[0], step) if step == "<name>" else step]
            )
    assert spec["asn"] == 4242420038
    assert spec["announce"] == {"ipv4": ["10.42.0.0/24"], "ipv6": []}
    assert spec["dn42"]["roa"]["interval"] == "1h"
    assert spec["dn42"]["roa"]["enable"] is True
    assert spec["dn42"]["roa"]["rtrCaches"] == [{"address": "127.0.0.1", "port": 8282}]
    assert spec["links"]["l1"]["peer"]["publicKey"] == "y" * 43 + "="
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


@needs_nix
@pinned.needs_inputs
def test_every_plan_option_of_the_module_comes_from_the_table() -> None:
    import optionsdoc

    declared = {
        option["name"].removeprefix("services.ibgpTunnel.")
        for option in optionsdoc.option_list(hidden=True)
    }
    from_table = _option_names()
    # An option holding a scope's options (links, dn42Peers, tuning, ...).
    containers = {name for name in declared if any(o.startswith(name + ".") for o in from_table)}
    assert from_table <= declared, from_table - declared
    assert declared >= NOT_PLAN_FIELDS, NOT_PLAN_FIELDS - declared
    by_hand = declared - from_table - containers - NOT_PLAN_FIELDS
    assert by_hand == set(), (
        f"{sorted(by_hand)} declared by hand: declare a plan field in "
        "the field table (grammar/fields/ of the core), or add a non-plan option to "
        "NOT_PLAN_FIELDS"
    )


# The shape of a host spec (spec/shape.nix) and the table's fields, as data: each
# shape node {type: inner}, a leaf's grammar as its kind's data (regex, expect,
# low, high, values; {} for true/false).
_SPEC_SHAPE = """
let
  inherit (builtins) attrNames filter isFunction mapAttrs removeAttrs;
  data = k: if k == null then { } else removeAttrs k (filter (n: isFunction k.${n}) (attrNames k));
  shape = s:
    if s.type == "leaf" then { leaf = data s.kind; }
    else if s.type == "record" || s.type == "families"
    then { ${s.type} = mapAttrs (_: shape) s.fields; }
    else { ${s.type} = shape s.of; };
  field = f: {
    inherit (f) option type;
    nullable = f.nullable or false;
    specOptional = f.specOptional or false;
    kind = data (core.fields.kindOf f);
    fields = map (g: field (core.fields.optionOf g)) (f.fields or [ ]);
  };
  scope = name: map (f: field f // { inherit (f) optionPath; }) (core.fields.of name);
in
{
  shape = shape core.specShape;
  table = mapAttrs (name: _: scope name) {
    plan = 0; host = 0; linkEnd = 0; dn42Roa = 0; dn42Peer = 0; dn42Tunnel = 0;
  };
}
"""

# The host spec's options that hold a scope's options (tuning's shape is looser
# than its options, plainTuning: not compared here).
SPEC_CONTAINERS = {"links", "dn42Peers", "dn42", "tuning"}


def _expected_shape(field: dict[str, Any]) -> dict[str, Any]:
    """A table field's shape in the host spec: what spec/shape.nix must say."""
    kind = field["type"]
    leaf = {"leaf": field["kind"]}
    if kind == "strList":
        node: dict[str, Any] = {"list": leaf}
    elif kind in ("record", "recordList", "recordAttrs"):
        own = {sub["option"]: _expected_shape(sub) for sub in field["fields"]}
        # families.nix's two prefix lists: either may be left out.
        inner = {"families" if list(own) == ["ipv4", "ipv6"] else "record": own}
        node = {"record": inner, "recordList": {"list": inner}, "recordAttrs": {"attrs": inner}}[
            kind
        ]
    else:
        node = leaf
    if field["specOptional"]:
        return {"optional": node}
    if field["nullable"]:
        return {"nullOr": node}
    return node


def test_the_spec_shape_is_the_tables() -> None:
    got = core_call(_SPEC_SHAPE)
    root = got["shape"]["record"]
    for scope, fields in got["table"].items():
        for field in fields:
            where = got["shape"]
            for step in field["optionPath"]:
                where = where.get("nullOr", where)
                where = where["attrs"] if step == "<name>" else where["record"][step]
            where = where.get("nullOr", where)["record"]
            assert field["option"] in where, (
                f"{scope} field {field['option']} is not in the host spec's shape: "
                "spec/shape.nix takes it from the table (tableShape)"
            )
            assert where[field["option"]] == _expected_shape(field), (scope, field["option"])
    # Beside the table's, only the scopes' containers and the options that are
    # not plan fields: a plan field written into the shape by hand fails here.
    from_table = {f["option"] for scope in ("plan", "host") for f in got["table"][scope]}
    not_plan = {name.split(".")[0] for name in NOT_PLAN_FIELDS}
    by_hand = set(root) - from_table - SPEC_CONTAINERS
    assert by_hand <= not_plan, sorted(by_hand - not_plan)
    assert set(root["dn42"]["record"]) == {"roa", "privateKeyFile"}
