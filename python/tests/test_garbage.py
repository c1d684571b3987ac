"""Hypothesis-generated garbage plans: `check` exits 1 or 2 with a message, never a traceback.

Each strategy starts from the corpus's valid base plan and breaks it in one way
that is certain to be invalid (wrong type, missing required key, out-of-range
number, overlapping subnet), or feeds text and bytes that need not be TOML.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from cli_helpers import CORPUS, run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ibgp_tunnel import planfile

BASE: dict[str, Any] = tomllib.loads((CORPUS / "good" / "base.toml").read_text())

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.integers(),  # unbounded: huge numbers too
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),  # any unicode (hypothesis leaves out surrogates)
    st.booleans(),
    st.datetimes(),
    st.dates(),
)
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the plan, tables and arrays included."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _leaves(item, (*path, index))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, datetime.datetime | datetime.date):
        return "datetime"
    return type(value).__name__


def _check(data: dict[str, Any]) -> int:
    try:
        text = tomlkit.dumps(data)
    except Exception:  # tomlkit cannot write every value (e.g. some float/key mixes)
        assume(False)
    return _check_text(text.encode("utf-8"))


def _check_text(content: bytes) -> int:
    with tempfile.TemporaryDirectory() as directory:
        plan = Path(directory) / "plan.toml"
        plan.write_bytes(content)
        result = run("check", plan)
        # A shape-checked plan must never crash the core's rules (a Nix trace).
        assert "could not check the plan" not in result.output + (result.stderr or "")
        return result.exit_code


PATHS = _leaves(BASE)
REQUIRED = [
    ("asn",),
    ("hosts",),
    ("hosts", "dmz", "role"),
    ("hosts", "pve", "router_id"),
    ("hosts", "dmz", "dn42_peers", "peer1", "asn"),
    ("hosts", "dmz", "dn42_peers", "peer1", "neighbor"),
    *[("links", "pve", key) for key in ("reflector", "client", "ipv4", "ipv6")],
    *[
        ("links", "pve", f"{end}_{family}")
        for end in ("reflector", "client")
        for family in ("ipv4", "ipv6")
    ],
]


@SETTINGS
@given(path=st.sampled_from(PATHS), value=garbage)
def test_a_value_of_the_wrong_type_fails(path: tuple[Any, ...], value: Any) -> None:
    assume(_kind(value) != _kind(_get(BASE, path)))
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    assert _check(data) == 1


@SETTINGS
@given(path=st.sampled_from(REQUIRED))
def test_a_missing_required_key_fails(path: tuple[Any, ...]) -> None:
    data = copy.deepcopy(BASE)
    del _get(data, path[:-1])[path[-1]]
    assert _check(data) == 1


@SETTINGS
@given(
    key=st.sampled_from(
        [("asn",), ("links", "pve", "port"), ("hosts", "dmz", "dn42_peers", "peer1", "asn")]
    ),
    number=st.one_of(st.integers(max_value=0), st.integers(min_value=2**32)),
)
def test_numbers_out_of_range_fail(key: tuple[Any, ...], number: int) -> None:
    data = copy.deepcopy(BASE)
    _set(data, key, number)
    assert _check(data) == 1


@SETTINGS
@given(
    table=st.sampled_from(["hosts", "links", "prefix_sets"]),
    name=st.text(min_size=1, max_size=20),
    field=st.sampled_from(["router_id", "interface", "endpoint", "ipv4"]),
    text=st.text(max_size=40),
)
def test_unicode_names_and_values_never_crash(table: str, name: str, field: str, text: str) -> None:
    data = copy.deepcopy(BASE)
    first = next(iter(data[table]))
    assume(name != first)
    data[table][name] = data[table].pop(first)
    target = {"router_id": ("hosts", "dmz"), "endpoint": ("hosts", "dmz")}.get(
        field, ("links", "pve")
    )
    owner = _get(data, target) if target[1] in data[target[0]] else None
    if owner is not None:
        owner[field] = text
    # Renaming a host always strands the link that names it; other renames may be fine.
    assert _check(data) in ({1} if table == "hosts" else {0, 1})


STRING_PATHS = [path for path in PATHS if isinstance(_get(BASE, path), str)]


@SETTINGS
@given(path=st.sampled_from(STRING_PATHS), text=st.text(max_size=60))
def test_any_text_in_any_string_is_judged_by_the_core(path: tuple[Any, ...], text: str) -> None:
    data = copy.deepcopy(BASE)
    _set(data, path, text)
    assert _check(data) in {0, 1}


OVERLAPPING_V4 = ["10.255.255.0/31", "10.255.255.2/31", "10.255.255.0/30", "10.255.254.0/23"]


@SETTINGS
@given(subnet=st.sampled_from(OVERLAPPING_V4), port=st.integers(1, 65535), count=st.integers(1, 3))
def test_overlapping_link_subnets_fail(subnet: str, port: int, count: int) -> None:
    data = copy.deepcopy(BASE)
    net = ipaddress.ip_network(subnet)
    ends = list(net) if net.prefixlen == 31 else list(net.hosts())
    for index in range(count):
        name = f"extra{index}"
        data["hosts"][name] = {"role": "client", "router_id": f"172.23.102.{index + 1}"}
        data["links"][name] = {
            "reflector": "dmz",
            "client": name,
            "interface": f"wg-x{index}",
            "port": (port + index) % 65535 + 1,
            "ipv4": subnet,
            "ipv6": f"2001:db8:{index + 100}::/64",
            "reflector_ipv4": str(ends[0]),
            "client_ipv4": str(ends[1]),
            "reflector_ipv6": f"2001:db8:{index + 100}::1",
            "client_ipv6": f"2001:db8:{index + 100}::2",
        }
    assert _check(data) == 1


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_fails_cleanly(text: str) -> None:
    assert _check_text(text.encode("utf-8")) in {1, 2}


@SETTINGS
@given(content=st.binary(max_size=200))
def test_any_bytes_fail_cleanly(content: bytes) -> None:
    assert _check_text(content) in {1, 2}


@SETTINGS
@given(tables=st.dictionaries(st.text(max_size=10), garbage, max_size=5))
def test_random_tables_fail_cleanly(tables: dict[str, Any]) -> None:
    assert _check({**tables}) in {1, 2}


@SETTINGS
@given(
    depth=st.integers(1, 3000),
    opener=st.sampled_from(["[", "{a = ", "[{b = ["]),
    where=st.sampled_from(["asn", "hosts.dmz.announce", "x"]),
)
def test_any_nesting_fails_cleanly(depth: int, opener: str, where: str) -> None:
    # Python's TOML parsers recurse per level: past the plan reader's limit the
    # answer is exit 2 ("nests too deeply"), never a RecursionError traceback.
    closer = {"[": "]", "{a = ": "}", "[{b = [": "]}]"}[opener]
    value = opener * depth + "1" + closer * depth
    text = (
        f"{where} = {value}\n"
        if where != "hosts.dmz.announce"
        else (f"[hosts.dmz]\nannounce = {value}\n")
    )
    code = _check_text(text.encode("utf-8"))
    levels = depth * opener.count("[") + depth * opener.count("{")
    assert code == 2 if levels > planfile.MAX_DEPTH else code in {1, 2}
