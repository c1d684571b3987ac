"""Doctor on a host with self-service peering (issue 24): the applied peerings
(peers/, read through autopeer/state.py and rendered by the real core as the
apply unit renders them) are expected and checked like static DN42 peers, and
the `autopeer` lines say whether the units run, the spool drains and the last
request went through. Recorded from the lab (test_lab_autopeer.py with
IBGP_TUNNEL_DOCTOR_RECORD=DIR; DIR/autopeer copied to
python/tests/data/doctor-autopeer: dmz's outputs and the peers/ records),
replayed and broken here; no root, no lab."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from nixcore import needs_nix

from ibgp_tunnel.autopeer.state import StateDir
from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.autopeer import (
    APPLY_UNIT,
    WEB_UNIT,
    applied,
    pid_unit_state,
    runtime,
)
from ibgp_tunnel.doctor.collect import AUTOPEER_KEY, Snapshot
from ibgp_tunnel.doctor.core import host_view
from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.run import diagnose_snapshot, plan_expectations

pytestmark = needs_nix

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "python" / "tests" / "plans" / "autopeer.toml"
RECORDED = Path(__file__).resolve().parent / "data" / "doctor-autopeer"
HOST, ASN = "dmz", 4242420999


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    """The recorded peers/ in a state directory of the test's own."""
    st = StateDir(tmp_path / "autopeer")
    st.create()
    for record in sorted((RECORDED / "peers").glob("*.json")):
        shutil.copy(record, st.peers / record.name)
    return st


def _recorded() -> Snapshot:
    return saved.load(RECORDED / HOST)


def _peering(state: StateDir) -> tuple[str, dict[str, Any]]:
    ((name, record),) = [
        (p.stem, json.loads(p.read_text())) for p in sorted(state.peers.glob("*.json"))
    ]
    return name, record


def _by_id(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


def _with(snapshot: Snapshot, key: str, text: str) -> Snapshot:
    outputs = dict(snapshot.outputs)
    outputs[key] = dataclasses.replace(outputs[key], stdout=text)
    return dataclasses.replace(snapshot, outputs=outputs)


def _runtime(snapshot: Snapshot) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(snapshot.get(AUTOPEER_KEY).stdout)
    return data


# --- the recorded healthy peering -----------------------------------------------------


def test_the_recorded_peering_is_checked_like_a_static_peer(state: StateDir) -> None:
    name, record = _peering(state)
    interface = record["interface"]
    checks = _by_id(diagnose_snapshot(PLAN, HOST, _recorded(), state.root))
    for check_id in (
        f"autopeer.unit {WEB_UNIT}",
        f"autopeer.unit {APPLY_UNIT}",
        "autopeer.spool",
        "autopeer.last-apply",
        f"autopeer.firewall AS{ASN} {interface}",
        f"wireguard.interface {interface}",
        f"wireguard.peer-key {interface} AS{ASN}",
        f"bgp.session dn42_{name}",
    ):
        assert check_id in checks, sorted(checks)
        assert checks[check_id].status is Status.OK, checks[check_id].line()
    # The static peer is checked as before, beside it.
    assert checks["bgp.session dn42_peer1"].status is not Status.SKIP


def test_without_records_nothing_is_expected(tmp_path: Path) -> None:
    empty = StateDir(tmp_path / "none")
    exp = plan_expectations(PLAN, HOST, empty.root)
    assert exp.autopeer is not None and exp.autopeer.peerings == ()
    assert not any(s.protocol.startswith("dn42_ap") for s in exp.sessions)


def test_off_no_autopeer_lines() -> None:
    exp = plan_expectations(REPO / "hosts" / "plan.toml", HOST)
    assert exp.autopeer is None


# --- broken: what the apply unit's absence, a flush, a stuck spool look like -------


def test_set_elements_flushed(state: StateDir) -> None:
    """`nft flush set` (or a firewall reload) dropped the elements: the peering's
    firewall line fails and says how to get them back."""
    snapshot = _recorded()
    ruleset = json.loads(snapshot.get("nft").stdout)
    for item in ruleset["nftables"]:
        if "set" in item and item["set"]["name"].startswith("autopeer_"):
            item["set"].pop("elem", None)
    checks = diagnose_snapshot(PLAN, HOST, _with(snapshot, "nft", json.dumps(ruleset)), state.root)
    _, record = _peering(state)
    line = _by_id(checks)[f"autopeer.firewall AS{ASN} {record['interface']}"]
    assert line.status is Status.FAIL
    assert "autopeer_ifaces" in line.summary and "autopeer_ports" in line.summary
    assert f"systemctl restart {APPLY_UNIT}" in line.fix


def test_interface_gone_names_the_apply_unit(state: StateDir) -> None:
    """The peering's interface deleted by hand: its line says which unit makes it
    (the apply unit's restore), not NixOS's wireguard-<interface>."""
    snapshot = _recorded()
    _, record = _peering(state)
    interface = record["interface"]
    wg = "".join(
        line + "\n"
        for line in snapshot.get("wg").stdout.splitlines()
        if not line.startswith(interface + "\t")
    )
    checks = _by_id(diagnose_snapshot(PLAN, HOST, _with(snapshot, "wg", wg), state.root))
    line = checks[f"wireguard.interface {interface}"]
    assert line.status is Status.FAIL and f"systemctl restart {APPLY_UNIT}" in line.fix
    assert "wireguard-ap" not in line.fix


def test_apply_unit_down_and_spool_backing_up(state: StateDir) -> None:
    snapshot = _recorded()
    data = _runtime(snapshot)
    data["units"][APPLY_UNIT] = "failed"
    data["spool"] = [{"name": "1700000000-abc.json", "age": 600.0}]
    checks = _by_id(
        diagnose_snapshot(PLAN, HOST, _with(snapshot, AUTOPEER_KEY, json.dumps(data)), state.root)
    )
    assert checks[f"autopeer.unit {APPLY_UNIT}"].status is Status.FAIL
    assert checks[f"autopeer.unit {WEB_UNIT}"].status is Status.OK
    spool = checks["autopeer.spool"]
    assert spool.status is Status.FAIL and "10 min" in spool.summary, spool.line()


def test_a_failed_apply_is_named_by_its_asn(state: StateDir) -> None:
    snapshot = _recorded()
    data = _runtime(snapshot)
    data["statuses"] = [
        {"asn": ASN, "state": "applied", "message": "", "updated": "2026-01-01T00:00:00Z"},
        {
            "asn": 4242420123,
            "state": "failed",
            "message": "the host could not apply it: bird -p refused",
            "updated": "2026-01-01T00:01:00Z",
        },
    ]
    checks = _by_id(
        diagnose_snapshot(PLAN, HOST, _with(snapshot, AUTOPEER_KEY, json.dumps(data)), state.root)
    )
    line = checks["autopeer.last-apply AS4242420123"]
    assert line.status is Status.FAIL and "bird -p refused" in line.evidence


def test_a_refusal_is_the_requesters_not_the_hosts(state: StateDir) -> None:
    snapshot = _recorded()
    data = _runtime(snapshot)
    data["statuses"] = [
        {"asn": 4242420123, "state": "refused", "message": "x", "updated": "2026-01-01T00:01:00Z"}
    ]
    checks = _by_id(
        diagnose_snapshot(PLAN, HOST, _with(snapshot, AUTOPEER_KEY, json.dumps(data)), state.root)
    )
    assert checks["autopeer.last-apply"].status is Status.OK


# --- planted records: never expected, reported -----------------------------------------

PLANTED = [
    # A neighbor carrying BIRD syntax, a port no one gave, a name out of the grammar.
    ({"neighbor": 'fe80::1"; }'}, {}, "neighbor"),
    ({}, {"listen_port": "22"}, "listen_port"),
    ({"mtu": 10**9}, {}, "mtu"),
    ({"interface": "eth0"}, {}, "request"),
]


@pytest.mark.parametrize(("request_change", "record_change", "words"), PLANTED)
def test_a_planted_record_is_reported_never_expected(
    state: StateDir, request_change: dict[str, Any], record_change: dict[str, Any], words: str
) -> None:
    name, record = _peering(state)
    planted = dict(record, asn=4242420777)
    planted["request"] = dict(record["request"], asn=4242420777, neighbor="fe80::777")
    planted["request"]["public_key"] = "P" + record["request"]["public_key"][1:]
    planted["request"].update(request_change)
    planted.update(record_change)
    planted.pop("interface", None)
    (state.peers / "ap4242420777.json").write_text(json.dumps(planted))
    view = host_view(PLAN, HOST)
    found, tunnels, sessions = applied(view.spec, state)
    assert [s.protocol for s in sessions] == [f"dn42_{name}"]
    assert [p.name for p in found.peerings] == [name]
    assert [t.interface for t in tunnels] == [record["interface"]]
    ((planted_name, why),) = found.refused
    assert planted_name == "ap4242420777" and words in why, why
    checks = _by_id(diagnose_snapshot(PLAN, HOST, _recorded(), state.root))
    line = checks["autopeer.record ap4242420777"]
    assert line.status is Status.WARN and words in line.evidence
    assert not any("4242420777" in c for c in checks if not c.startswith("autopeer.record"))


def test_files_state_py_never_reads_are_not_peerings(state: StateDir) -> None:
    """A symlink, a name that is no peer name, a record without a request."""
    name, record = _peering(state)
    (state.peers / "ap4242420778.json").symlink_to(state.peers / f"{name}.json")
    (state.peers / "evil;name.json").write_text(json.dumps(record))
    (state.peers / "ap4242420779.json").write_text(json.dumps({"asn": 1}))
    found, _, _ = applied(host_view(PLAN, HOST).spec, state)
    assert [p.name for p in found.peerings] == [name]
    assert [n for n, _ in found.refused] == ["ap4242420779"]


def test_a_record_that_is_not_json(state: StateDir) -> None:
    """Named as such; the others are still expected (the apply unit sets only
    that one aside and loads the rest)."""
    (state.peers / "ap4242420780.json").write_text("{not json")
    found, tunnels, _ = applied(host_view(PLAN, HOST).spec, state)
    assert [p.name for p in found.peerings] == ["ap4242420999"] and len(tunnels) == 1
    assert [n for n, _ in found.refused] == ["ap4242420780"]
    assert "not a JSON record" in found.refused[0][1]


# --- the runtime read -------------------------------------------------------------------


def test_runtime_reads_units_spool_and_statuses(tmp_path: Path) -> None:
    st = StateDir(tmp_path / "autopeer")
    st.create()
    entry = st.spool / "1.json"
    entry.write_text("{}")
    (st.status / "4242420999.json").write_text(
        json.dumps({"asn": ASN, "state": "applied", "updated": "t", "peers": []})
    )
    (st.status / "junk.json").write_text("{}")
    mtime = entry.stat().st_mtime
    data = json.loads(runtime(st, pid_unit_state({WEB_UNIT: True}), now=mtime + 45))
    assert data["units"] == {WEB_UNIT: "active", APPLY_UNIT: "unknown"}
    assert data["spool"] == [{"name": "1.json", "age": 45.0}]
    assert data["statuses"] == [{"asn": ASN, "state": "applied", "message": None, "updated": "t"}]


def test_unreadable_state_is_said_never_guessed_empty(tmp_path: Path) -> None:
    """Doctor run without root: peers/ and the spool are the units' (0700, 0770).
    Simulated with directories that are not directories (reading them fails as
    a permission error does: an OSError other than missing)."""
    st = StateDir(tmp_path / "autopeer")
    st.root.mkdir()
    for directory in (st.peers, st.spool):
        directory.write_text("")  # NotADirectoryError on listing
    data = json.loads(runtime(st, pid_unit_state({}), now=0.0))
    assert data["spool"] == [] and len(data["unreadable"]) == 1, data
    found, _, _ = applied(host_view(PLAN, HOST).spec, st)
    assert found.refused[0][0] == "peers/"
    snapshot = _with(_recorded(), AUTOPEER_KEY, json.dumps(data))
    checks = _by_id(diagnose_snapshot(PLAN, HOST, snapshot, st.root))
    assert checks["autopeer.peers"].status is Status.WARN
    assert checks["autopeer.state"].status is Status.WARN
    assert "run doctor as root" in checks["autopeer.peers"].fix


def test_with_the_registry_a_record_is_verified_as_the_apply_unit_does(state: StateDir) -> None:
    """With a registry checkout in the state (as on the host), each record's
    signed entry is checked (autopeer/apply.py verify_record): the recorded
    peering with a signed entry by the ASN's maintainer is expected; the same
    record for another ASN, carrying that ASN's request but no signature of
    its maintainer, is reported and never expected."""
    from autopeer_signers import FIXTURE, signed_entry

    shutil.copytree(FIXTURE / "data", state.registry / "data")
    name, record = _peering(state)
    record["signed"] = signed_entry(ASN, record["request"])
    (state.peers / f"{name}.json").write_text(json.dumps(record))
    other = 4242420998  # TEST-OTHER-MNT's, in the fixture registry
    planted = dict(record, asn=other)
    planted["request"] = dict(record["request"], asn=other, neighbor="fe80::998")
    planted["request"]["public_key"] = "P" + record["request"]["public_key"][1:]
    (state.peers / f"ap{other}.json").write_text(json.dumps(planted))
    found, _, sessions = applied(host_view(PLAN, HOST).spec, state)
    assert [p.name for p in found.peerings] == [name]
    assert [s.protocol for s in sessions] == [f"dn42_{name}"]
    ((planted_name, why),) = found.refused
    assert planted_name == f"ap{other}" and why.startswith("signed:"), why
