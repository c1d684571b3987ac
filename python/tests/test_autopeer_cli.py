"""`ibgp-tunnel dn42 autopeer list|show` read the apply unit's state (peers/ and
status/) and print it, as text or --json; an unknown ASN is a clean error."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run

from ibgp_tunnel.autopeer import state as st

ASN = 4242420999


def applied_state(root: Path) -> st.StateDir:
    state = st.StateDir(root)
    state.create()
    request = {"asn": ASN, "public_key": "k" * 43 + "=", "neighbor": "fe80::999:1"}
    st.write_peer(
        state,
        "ap4242420999",
        {
            "asn": ASN,
            "request": request,
            "proof": {"maintainer": "TEST-AUTOPEER-MNT", "auth": "ssh ssh-ed25519 AAAA"},
            "interface": "ap4242420999",
            "applied": "2026-12-07T00:00:00+00:00",
        },
    )
    peer = {"name": "ap4242420999", "session": "Established", "listen_port": 20999}
    st.write_status(state, ASN, {"state": "applied", "message": "", "peers": [peer]})
    return state


def test_list_and_show(tmp_path: Path) -> None:
    state = applied_state(tmp_path / "state")
    listed = run("dn42", "autopeer", "list", "--json", "--state-dir", state.root)
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["asn"], row["session"]) == ("ap4242420999", ASN, "Established")
    assert row["maintainer"] == "TEST-AUTOPEER-MNT"
    text = run("dn42", "autopeer", "list", "--state-dir", state.root)
    assert "ap4242420999" in text.stdout and "Established" in text.stdout
    shown = run("dn42", "autopeer", "show", str(ASN), "--json", "--state-dir", state.root)
    data = json.loads(shown.stdout)
    assert data["status"]["state"] == "applied" and data["peers"][0]["asn"] == ASN


def test_show_unknown_and_empty(tmp_path: Path) -> None:
    state = st.StateDir(tmp_path / "state")
    state.create()
    assert "no autopeerings" in run("dn42", "autopeer", "list", "--state-dir", state.root).stdout
    unknown = run("dn42", "autopeer", "show", "4242420001", "--state-dir", state.root)
    assert unknown.exit_code != 0 and "AS4242420001 has no autopeering" in unknown.output


def test_a_planted_peer_file_is_not_read(tmp_path: Path) -> None:
    state = applied_state(tmp_path / "state")
    (state.peers / "x; rm -rf.json").write_text("{}")
    (state.peers / "ap1.json").symlink_to(tmp_path / "elsewhere.json")
    assert list(st.read_peers(state)) == ["ap4242420999"]
