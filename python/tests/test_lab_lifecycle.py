"""`ibgp-tunnel lab` end to end through the CLI: up twice, status, exec, down twice,
and the machine left exactly as it was found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_PREFIX,
    USER_LAB_DIR,
    USER_PREFIX,
    clear_test_lab,
    machine_snapshot,
    skip_reason,
)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from ibgp_tunnel.cli import app; app()", "lab", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def test_up_status_exec_down_leave_the_machine_as_found() -> None:
    clear_test_lab()
    before = machine_snapshot()
    try:
        first = cli("up", str(EXAMPLE_PLAN))
        assert first.returncode == 0, first.stderr
        assert "Established" in first.stdout
        assert "waiting for BGP sessions" in first.stderr or "Established" in first.stderr

        again = cli("up", str(EXAMPLE_PLAN))  # idempotent: nothing rebuilt
        assert again.returncode == 0, again.stderr
        assert "up already" in again.stderr

        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        hosts = {h["name"]: h for h in data["hosts"]}
        assert {"dmz", "pve", "inet", "dn42", "lan-pve"} <= set(hosts)
        assert all(s["info"] == "Established" for s in hosts["pve"]["sessions"])
        assert hosts["pve"]["wireguard"][0]["handshake_age"] is not None

        # Inside a plan host plain `wg` and `birdc` reach that host's daemons.
        wg = cli("exec", "pve", "--", "wg", "show", "wg-ibgp", "endpoints")
        assert wg.returncode == 0 and "203.0.113.10:51821" in wg.stdout, wg.stderr
        bird = cli("exec", "dmz", "--", "birdc", "show", "protocols")
        assert "ibgp_pve" in bird.stdout
        assert cli("exec", "nowhere", "--", "true").returncode != 0
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert "lab removed" in down.stdout
    second = cli("down")
    assert second.returncode == 0 and "no lab was up" in second.stdout
    assert machine_snapshot() == before


def test_a_lab_the_user_has_up_is_left_alone() -> None:
    """A second lab, started through the CLI's --lab-dir and --prefix, stands in for
    the user's: the tests' lab comes and goes beside it and it keeps running, untouched."""
    user_dir = USER_LAB_DIR
    user = ["--lab-dir", user_dir, "--prefix", USER_PREFIX]
    clear_test_lab()
    try:
        started = cli(*user, "up", str(EXAMPLE_PLAN))
        assert started.returncode == 0, started.stderr
        user_state = Path(user_dir, "state.json").read_text()
        user_status = json.loads(cli(*user, "status", "--json").stdout)
        user_netns = {h["netns"] for h in user_status["hosts"]}

        ours = cli("up", str(EXAMPLE_PLAN))
        assert ours.returncode == 0, ours.stderr
        status = json.loads(cli("status", "--json").stdout)
        our_netns = {h["netns"] for h in status["hosts"]}
        assert not our_netns & user_netns
        assert all(ns.startswith(TEST_PREFIX) for ns in our_netns)
        assert all(ns.startswith(USER_PREFIX) for ns in user_netns)
        assert cli("down").returncode == 0

        assert Path(user_dir, "state.json").read_text() == user_state
        after = json.loads(cli(*user, "status", "--json").stdout)
        assert {h["netns"] for h in after["hosts"]} == user_netns
        assert all(all(h["daemons"].values()) for h in after["hosts"])
        for host in after["hosts"]:
            for session in host.get("sessions", []):
                assert session["info"].startswith("Established"), (host["name"], session)
    finally:
        cli("down")
        cli(*user, "down")


def test_without_root_the_lab_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ibgp_tunnel.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for args in (["up"], ["status"], ["down"], ["exec", "dmz", "--", "true"]):
        result = CliRunner().invoke(app, ["lab", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "needs root" in result.output
