"""The chaos soak (issue #23) for two minutes: bench/chaos.py with a fixed seed, in its
own lab directory and namespace prefix beside the other lab tests' lab, on the BIRD
the lab tests use (BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another).

It must exit 0 (no invariant violated: no leak, no route into a dead tunnel past
BFD's time plus a second, every session and every ping back after each fault, no
process leak, memory flat), and its summary must show faults of several kinds,
each with a recovery measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from labtools import REPO, TEST_LAB_DIR, TEST_PREFIX, skip_reason

from ibgp_tunnel.lab import location

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

SEED = 2323
MINUTES = 2
LAB_DIR = TEST_LAB_DIR + "-chaos"
PREFIX = TEST_PREFIX[:-1] + "c-"


def test_two_minutes_of_chaos_violate_nothing() -> None:
    argv = [sys.executable, str(REPO / "bench" / "chaos.py")]
    argv += ["--minutes", str(MINUTES), "--seed", str(SEED), "--json"]
    argv += ["--lab-dir", LAB_DIR, "--prefix", PREFIX]
    bird_dir = os.environ.get(location.BIRD_DIR_ENV)
    if bird_dir:
        argv += ["--bird-dir", bird_dir]
    # Two minutes of faults, then the last fault's recovery and `lab down`.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=MINUTES * 60 + 600)
    assert done.stdout.strip(), done.stderr[-3000:]
    result = json.loads(done.stdout)
    # The faults one by one and the summary, for `pytest -rA` (numbers, never asserted).
    print(done.stderr, json.dumps(result["summary"], indent=1))
    assert result["violations"] == [], done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    summary = result["summary"]
    assert len(summary) >= 4, summary
    assert all(row["faults"] > 0 for row in summary.values())
    assert sum(row["faults"] for row in summary.values()) == len(result["faults"])
    assert all(f["recovery_s"] is not None and set(f["pings_lost"]) for f in result["faults"]), (
        result["faults"]
    )
