"""Public keys into a plan's text: only the public_key lines differ, byte for byte,
whichever tomlkit is installed (the end-to-end run through `keys` is in test_keys.py)."""

from __future__ import annotations

import base64
import re
import tomllib

import pytest
from plandiff import EXAMPLE, TRICKY, added_lines, assert_only_public_keys_added, crlf, unkeyed

from ibgp_tunnel.keys import plantext
from ibgp_tunnel.keys.plantext import PlanTextError, with_public_keys


def _key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def _keys_for(plan: bytes) -> dict[str, str]:
    hosts = tomllib.loads(plan.decode())["hosts"]
    return {host: _key(n) for n, host in enumerate(hosts, start=1)}


def _write(plan: bytes, public_keys: dict[str, str]) -> tuple[bytes, list[str]]:
    text, changed = with_public_keys(plan.decode(), public_keys, "plan.toml")
    return text.encode(), changed


def _with_keys(plan: bytes, public_keys: dict[str, str]) -> dict:
    data = tomllib.loads(plan.decode())
    for host, public_key in public_keys.items():
        data["hosts"][host]["public_key"] = public_key
    return data


PLANS = {
    "example": unkeyed(EXAMPLE.read_bytes()),
    "example-crlf": crlf(unkeyed(EXAMPLE.read_bytes())),
    "tricky": TRICKY,
    "tricky-crlf": crlf(TRICKY),
}


@pytest.mark.parametrize("name", PLANS)
def test_only_public_key_lines_are_added(name: str) -> None:
    plan = PLANS[name]
    public_keys = _keys_for(plan)
    written, changed = _write(plan, public_keys)
    assert changed == list(public_keys)
    added = assert_only_public_keys_added(plan, written, len(public_keys))
    assert tomllib.loads(written.decode()) == _with_keys(plan, public_keys)
    # Each line carries its own host's key, in the host's indentation.
    lines = written.decode().splitlines()
    for host, public_key in public_keys.items():
        header = next(i for i, line in enumerate(lines) if re.search(rf"hosts\.\"?{host}\b", line))
        router_id = next(i for i in range(header, len(lines)) if "router_id" in lines[i])
        indent = lines[router_id][: len(lines[router_id]) - len(lines[router_id].lstrip())]
        assert lines[router_id + 1] == f'{indent}public_key = "{public_key}"'
    assert len(added) == len(set(added))


@pytest.mark.parametrize("name", PLANS)
def test_a_second_write_changes_nothing(name: str) -> None:
    public_keys = _keys_for(PLANS[name])
    written, _ = _write(PLANS[name], public_keys)
    assert _write(written, public_keys) == (written, [])


def test_a_changed_key_is_replaced_inside_its_quotes() -> None:
    plan = b"[hosts.a]\r\nrole = 'client'\r\npublic_key = 'old'   # rotated yearly\r\n"
    plan += b'[hosts.b]\nrouter_id = "10.0.0.2"\npublic_key = "keep"\n'
    written, changed = _write(plan, {"a": _key(1), "b": "keep"})
    assert changed == ["a"]
    assert written == plan.replace(b"'old'", f"'{_key(1)}'".encode())


def test_the_key_goes_after_role_or_the_header_without_router_id() -> None:
    plan = b'[hosts.a]\nrole = "client"\nendpoint = "x"\n[hosts.b]\nendpoint = "y"\n'
    written, _ = _write(plan, {"a": _key(1), "b": _key(2)})
    assert (
        written
        == (
            f'[hosts.a]\nrole = "client"\npublic_key = "{_key(1)}"\nendpoint = "x"\n'
            f'[hosts.b]\npublic_key = "{_key(2)}"\nendpoint = "y"\n'
        ).encode()
    )


def test_a_last_line_without_newline_gets_one() -> None:
    plan = b'[hosts.a]\r\nrole = "client"\r\nrouter_id = "10.0.0.1"'
    written, _ = _write(plan, {"a": _key(1)})
    assert written == plan + f'\r\npublic_key = "{_key(1)}"'.encode()


def test_an_inline_host_table_gets_the_key_before_its_brace() -> None:
    plan = b'[hosts]\nb = { role = "client", router_id = "10.0.0.2" }  # {x}\nc = {}\n'
    plan += b'\n[hosts.a]\nrole = "reflector"\nrouter_id = "10.0.0.1"\n'
    written, changed = _write(plan, {"a": _key(1), "b": _key(2), "c": _key(3)})
    assert changed == ["a", "b", "c"]
    assert written.decode() == (
        f'[hosts]\nb = {{ role = "client", router_id = "10.0.0.2", public_key = "{_key(2)}" }}'
        f'  # {{x}}\nc = {{ public_key = "{_key(3)}"}}\n'
        f'\n[hosts.a]\nrole = "reflector"\nrouter_id = "10.0.0.1"\npublic_key = "{_key(1)}"\n'
    )


def test_dotted_host_keys_are_left_to_tomlkit_and_checked() -> None:
    plan = b'[hosts]\nb.role = "client"\nb.router_id = "10.0.0.2"\n'
    written, changed = _write(plan, {"b": _key(2)})
    assert changed == ["b"]
    assert tomllib.loads(written.decode()) == _with_keys(plan, {"b": _key(2)})


def test_a_wrong_result_is_refused_with_the_lines_to_add(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if tomlkit wrote dotted keys wrong: nothing is returned to be written.
    monkeypatch.setattr(plantext, "_with_tomlkit", lambda text, _keys, _key: text + "oops = 1\n")
    plan = b'[hosts]\nb.role = "client"\n[hosts.a]\nrole = "client"\n'
    with pytest.raises(PlanTextError, match=r"add these public keys to plan\.toml") as error:
        _write(plan, {"a": _key(1), "b": _key(2)})
    assert f'[hosts.a] public_key = "{_key(1)}"' in str(error.value)
    assert f'[hosts.b] public_key = "{_key(2)}"' in str(error.value)


def test_a_header_inside_a_string_does_not_mislead_the_edit() -> None:
    # The first "[hosts.a]" is text in a multi-line string: editing there would
    # change the string, so the result is checked and rendered by tomlkit instead.
    plan = b'note = """\n[hosts.a]\nrole = "x"\n"""\n[hosts.a]\nrole = "client"\n'
    written, _ = _write(plan, {"a": _key(1)})
    assert tomllib.loads(written.decode()) == _with_keys(plan, {"a": _key(1)})


def test_unchanged_keys_leave_the_text_alone() -> None:
    plan = crlf(EXAMPLE.read_bytes())
    public_keys = {h: t["public_key"] for h, t in tomllib.loads(plan.decode())["hosts"].items()}
    assert _write(plan, public_keys) == (plan, [])


def test_not_toml_is_refused_naming_the_plan() -> None:
    with pytest.raises(PlanTextError, match=r"plan\.toml is not valid TOML"):
        with_public_keys("[hosts.a\n", {"a": _key(1)}, "plan.toml")


def test_the_byte_comparison_sees_a_moved_blank_line() -> None:
    # The failure tomlkit 0.15.3 caused: same lines, a blank one elsewhere.
    before = b"a = 1\n\n# c\n[t]\n"
    with pytest.raises(AssertionError):
        added_lines(before, b"a = 1\n# c\nk = 2\n\n[t]\n")
    with pytest.raises(AssertionError):
        added_lines(before, crlf(before))
    assert added_lines(before, b"a = 1\nk = 2\n\n# c\n[t]\n") == [(1, b"k = 2\n")]
