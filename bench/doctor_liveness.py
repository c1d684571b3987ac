"""How soon doctor names a dead tunnel, and what the liveness probe costs it.

Run as root from the repository: `python bench/doctor_liveness.py [--reps 3] [--json]`.
It brings the example plan up in a lab of its own ($IBGP_TUNNEL_LAB_DIR and
$IBGP_TUNNEL_LAB_PREFIX, else /run/ibgp-tunnel-bench-live and ibgbl-), waits until
doctor finds nothing wrong on the client, then per repetition drops the reflector's
WireGuard port (faults.block_tunnel, the issue's "UDP 51821 dropped on the reflector")
and runs doctor on the client again and again, as a user would, until its first
failing line is `tunnel.alive wg-ibgp`. It reports the seconds from the block to the
end of that doctor run, and how long one doctor run takes on a healthy and on a dead
tunnel. The lab tests (test_doctor_lab.py) check what the line says, without timing it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from ibgp_tunnel.doctor.report import first_failure
from ibgp_tunnel.doctor.run import examine, lab_host, plan_expectations
from ibgp_tunnel.lab import faults, location
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.up import up

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "hosts" / "plan.toml"
REFLECTOR, CLIENT = "dmz", "pve"
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def doctor_once(lab_dir: Path) -> tuple[str | None, float]:
    """The first failing check's id on the client (None: all is well) and the run's seconds."""
    start = time.monotonic()
    target = lab_host(CLIENT, lab_dir, "birdc").target
    checks, _ = examine(plan_expectations(PLAN, CLIENT), target)
    first = first_failure(checks)
    return (first.id if first else None), time.monotonic() - start


def until(lab_dir: Path, wanted: str | None, timeout: float) -> tuple[float, list[float]]:
    """Run doctor until its first failing line is `wanted`; (seconds, each run's seconds)."""
    start = time.monotonic()
    runs: list[float] = []
    while time.monotonic() - start < timeout:
        first, took = doctor_once(lab_dir)
        runs.append(took)
        if first == wanted:
            return time.monotonic() - start, runs
    raise SystemExit(f"doctor on {CLIENT} did not start with {wanted} within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    args = parser.parse_args()
    os.environ.setdefault(location.LAB_DIR_ENV, "/run/ibgp-tunnel-bench-live")
    os.environ.setdefault(location.PREFIX_ENV, "ibgbl-")
    if not os.environ.get(location.BIRD_DIR_ENV) and (BIRD3_DIR / "bird").exists():
        os.environ[location.BIRD_DIR_ENV] = str(BIRD3_DIR)
    lab_dir = Path(os.environ[location.LAB_DIR_ENV])
    keys = str(REPO / "secrets" / "test-age-key.txt")
    os.environ["SOPS_AGE_KEY_FILE"] = keys
    down()
    samples: dict[str, list[float]] = {"named_after": [], "healthy_run": [], "dead_run": []}
    try:
        st = up(PLAN, timeout=120, secrets_dir=REPO / "secrets" / "test")
        for rep in range(args.reps):
            _, healthy = until(lab_dir, None, 180)
            samples["healthy_run"].append(healthy[-1])
            faults.block_tunnel(st, REFLECTOR)
            try:
                named, runs = until(lab_dir, "tunnel.alive wg-ibgp", 60)
            finally:
                faults.unblock_tunnel(st, REFLECTOR)
            samples["named_after"].append(named)
            samples["dead_run"].append(runs[-1])
            say(f"rep {rep + 1}: named {named:.2f} s after the block ({len(runs)} doctor runs)")
    finally:
        down()
    bird = os.environ.get(location.BIRD_DIR_ENV, "")
    if args.json:
        print(json.dumps({"bird_dir": bird, "samples": samples}, indent=1))
        return
    for name, values in samples.items():
        print(f"{name}: median {statistics.median(values):.2f} s, max {max(values):.2f} s")


if __name__ == "__main__":
    main()
