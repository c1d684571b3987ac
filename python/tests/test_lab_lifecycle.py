"""`ibgp-tunnel lab` end to end through the CLI: up twice, status, exec, down twice,
and the machine left exactly as it was found."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from labtools import EXAMPLE_PLAN, REPO, machine_snapshot, skip_reason

from ibgp_tunnel.lab import state

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
    if state.load() is not None:
        pytest.fail("a lab is up already; run `ibgp-tunnel lab down` before the tests")
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


def test_without_root_the_lab_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ibgp_tunnel.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for args in (["up"], ["status"], ["down"], ["exec", "dmz", "--", "true"]):
        result = CliRunner().invoke(app, ["lab", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "needs root" in result.output
