"""The apply unit hands each applied peering's name and port back to the core
(its peers/ record), so a peering never moves when another goes: what a restart
(load, then restore) renders from the records of the two that stay after the
first of three is gone keeps both their interfaces and ports. Real core; the
transition itself (interfaces, nft, BIRD) is the lab's (test_lab_autopeer.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autopeer_signers import registry_with, signed_entry
from nixcore import needs_nix
from test_autopeer_core import AUTOPEER, KEY, KEY2, KEY3, spec_file, write_plan

from ibgp_tunnel.autopeer import apply as ap
from ibgp_tunnel.autopeer.birdinclude import Bird
from ibgp_tunnel.autopeer.state import StateDir, delete_peer, write_peer

pytestmark = needs_nix

REQUESTS = [
    {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1234"},
    {"asn": 4242421234, "public_key": KEY2, "neighbor": "fe80::1235"},
    {"asn": 4242411234, "public_key": KEY3, "neighbor": "fe80::1236"},
]


def _applier(tmp_path: Path) -> ap.Applier:
    state = StateDir(tmp_path / "state")
    state.create()
    plan = write_plan(tmp_path, autopeer=AUTOPEER + "max_per_asn = 3\n")
    config = ap.ApplyConfig(
        state=state,
        spec_file=spec_file(plan),
        bird=Bird(tmp_path / "bird.conf", tmp_path / "bird.ctl"),
        registry_dir=registry_with(tmp_path, 4242421234, 4242411234),
    )
    return ap.Applier(config)


def _ports(target: ap.Target) -> dict[str, tuple[str, int]]:
    return {n: (str(p["interface"]), int(p["listenPort"])) for n, p in target.peers.items()}


def test_a_restart_keeps_every_name_and_port(tmp_path: Path) -> None:
    applier = _applier(tmp_path)
    first = ap.rendered_target(applier.config, REQUESTS)[0]
    facts = _ports(first)
    by_index = sorted(first.peers.items(), key=lambda kv: kv[1]["index"])
    for index, (name, peer) in enumerate(by_index):
        record: dict[str, Any] = {
            "asn": int(peer["asn"]),
            "request": REQUESTS[index],
            "applied": f"2026-01-01T00:00:0{index}Z",
            "interface": peer["interface"],
            "listen_port": peer["listenPort"],
            "signed": signed_entry(int(peer["asn"]), REQUESTS[index]),
        }
        write_peer(applier.config.state, name, record)
    applier.load()
    assert _ports(applier.current) == facts
    delete_peer(applier.config.state, "ap4242421234_1")
    applier.load()
    kept = {n: facts[n] for n in ("ap4242421234_2", "ap4242411234_1")}
    assert _ports(applier.current) == kept
    # Without the records' names and ports the core would have moved both.
    naive = _ports(ap.rendered_target(applier.config, REQUESTS[1:])[0])
    assert naive != kept


def test_a_record_from_before_ports_were_kept_still_loads(tmp_path: Path) -> None:
    applier = _applier(tmp_path)
    write_peer(
        applier.config.state,
        "ap4242411234_1",
        {
            "asn": 4242411234,
            "request": REQUESTS[2],
            "applied": "2026-01-01T00:00:00Z",
            "signed": signed_entry(4242411234, REQUESTS[2]),
        },
    )
    applier.load()
    assert _ports(applier.current) == {"ap4242411234_1": ("ap4242411234_1", 21234)}
