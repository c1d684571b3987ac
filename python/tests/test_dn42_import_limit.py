"""A DN42 peer's own import limit (fields.nix import_limit, issue 22 item 4):
in both channels of its session, refused out of range, and both BIRDs parse it."""

from __future__ import annotations

from pathlib import Path

import pytest
from nixcore import core_call, render
from test_dn42_core import _errors, _parses, _plan, _session


def test_every_peer_is_limited_by_default(tmp_path: Path) -> None:
    artifacts = render(_plan(tmp_path, import_limit=None), "dmz")
    session = _session(artifacts["birdConfig"])
    # Once per channel (ipv4, ipv6), the table's default, tuning's action.
    assert session.count("import limit 9000 action block;") == 2
    assert "import limit 50000" not in session
    _parses(artifacts, tmp_path)


def test_the_plan_sets_the_limit_and_tuning_the_action(tmp_path: Path) -> None:
    plan = _plan(tmp_path, import_limit=250)
    text = plan.read_text() + '\n[tuning]\nimport_limit_action = "restart"\n'
    plan.write_text(text)
    artifacts = render(plan, "dmz")
    assert _session(artifacts["birdConfig"]).count("import limit 250 action restart;") == 2
    _parses(artifacts, tmp_path)


@pytest.mark.parametrize("value", [0, 1000001])
def test_out_of_range_is_a_plan_error(tmp_path: Path, value: int) -> None:
    found = _errors(_plan(tmp_path, import_limit=value))
    at = [f for f in found if f["path"] == "hosts.dmz.dn42_peers.peer1.import_limit"]
    assert at and "1 to 1000000" in at[0]["message"], found


def test_null_in_a_hand_made_spec_falls_back_to_tuning(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    conf = core_call(
        f'let s = core.hostFromPlan (core.readPlan {plan}) "dmz"; in (core.render (s // '
        "{ dn42Peers.peer1 = s.dn42Peers.peer1 // { importLimit = null; }; })).birdConfig"
    )
    assert _session(conf).count("import limit 50000 action block;") == 2


def test_the_renderer_refuses_an_out_of_range_limit_in_a_spec(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    found = core_call(
        f'let s = core.hostFromPlan (core.readPlan {plan}) "dmz"; in core.problems (s // '
        "{ dn42Peers.peer1 = s.dn42Peers.peer1 // { importLimit = 0; }; })"
    )
    assert any(p["path"].endswith("dn42Peers.peer1.importLimit") for p in found), found
