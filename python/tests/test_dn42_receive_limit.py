"""A DN42 peer's optional receive limit (fields.nix receive_limit, issue 22 item
4): none by default, in both channels of its session with tuning's action when
set, refused out of range, and both BIRDs parse it."""

from __future__ import annotations

from pathlib import Path

import pytest
from nixcore import core_call, render
from test_dn42_core import _errors, _parses, _plan, _session


def test_no_receive_limit_unless_the_plan_sets_one(tmp_path: Path) -> None:
    session = _session(render(_plan(tmp_path), "dmz")["birdConfig"])
    assert "receive limit" not in session
    assert session.count("import limit 9000 action block;") == 2


def test_the_plan_sets_it_and_tuning_the_action(tmp_path: Path) -> None:
    plan = _plan(tmp_path, receive_limit=12000)
    plan.write_text(plan.read_text() + '\n[tuning]\nimport_limit_action = "disable"\n')
    artifacts = render(plan, "dmz")
    session = _session(artifacts["birdConfig"])
    assert session.count("receive limit 12000 action disable;") == 2
    assert session.count("import limit 9000 action disable;") == 2
    _parses(artifacts, tmp_path)


def test_the_route_model_carries_the_peers_own_limits(tmp_path: Path) -> None:
    plan = _plan(tmp_path, import_limit=300, receive_limit=400)
    model = core_call(f'core.routes.hostModel (core.readPlan {plan}) {{ }} "dmz"')
    (session,) = [s for s in model["sessions"] if s["kind"] == "dn42"]
    # Not the sessions' [tuning] import_limit: what bird.conf holds for this peer.
    assert (session["importLimit"], session["receiveLimit"]) == (300, 400)


@pytest.mark.parametrize("value", [0, -5, 1000001])
def test_out_of_range_is_a_plan_error(tmp_path: Path, value: int) -> None:
    found = _errors(_plan(tmp_path, receive_limit=value))
    at = [f for f in found if f["path"] == "hosts.dmz.dn42_peers.peer1.receive_limit"]
    assert at and "1 to 1000000" in at[0]["message"], found


def test_a_string_is_a_plan_error(tmp_path: Path) -> None:
    found = _errors(_plan(tmp_path, receive_limit="9000; } protocol x {"))
    assert any(f["path"] == "hosts.dmz.dn42_peers.peer1.receive_limit" for f in found), found


def test_the_renderer_refuses_an_out_of_range_limit_in_a_spec(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    found = core_call(
        f'let s = core.hostFromPlan (core.readPlan {plan}) "dmz"; in core.problems (s // '
        "{ dn42Peers.peer1 = s.dn42Peers.peer1 // { receiveLimit = 0; }; })"
    )
    assert any(p["path"].endswith("dn42Peers.peer1.receiveLimit") for p in found), found


def test_a_hand_made_spec_without_it_has_none(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    conf = core_call(
        f'let s = core.hostFromPlan (core.readPlan {plan}) "dmz"; in (core.render (s // '
        '{ dn42Peers.peer1 = removeAttrs s.dn42Peers.peer1 [ "receiveLimit" ]; })).birdConfig'
    )
    assert "receive limit" not in _session(conf)


def _warnings(plan: Path) -> list[str]:
    found = core_call(f"core.planProblems (core.readPlan {plan})")
    return [
        p["message"]
        for p in found
        if p["severity"] == "warning" and p["path"] == "hosts.dmz.dn42_peers.peer1.receive_limit"
    ]


@pytest.mark.parametrize(
    ("peer", "warned"),
    [
        ({"receive_limit": 8999}, True),  # below the default import limit
        ({"receive_limit": 9000}, False),
        ({"receive_limit": 150, "import_limit": 200}, True),
        ({"receive_limit": 250, "import_limit": 200}, False),
        ({"receive_limit": 0}, False),  # an error of its own, not also this
    ],
)
def test_a_receive_limit_below_the_import_limit_is_a_warning(
    tmp_path: Path, peer: dict[str, int], warned: bool
) -> None:
    found = _warnings(_plan(tmp_path, **peer))
    assert bool(found) == warned, found
    assert all("import limit is never reached" in m for m in found)
