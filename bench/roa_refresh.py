"""ROA refresh benchmark (issue 23, item 4), in the namespace lab.

Run as root from the repository: `python bench/roa_refresh.py [--reps 10] [--json]`.
It brings the example plan on ROA files up (python/tests/plans/example-roa-files.toml:
the reflector dmz with the DN42 peer dn42, the client pve) in a lab of its own, on
BIRD 3 from scripts/setup unless --bird-dir names another. The peer announces a
prefix the ROA file gives to another AS (test_lab_dn42.py's case); each repetition
then

  * serves the file with that entry (`as OTHER_AS`) and refreshes: the route is
    refused (polled until the reflector's master4 lacks it);
  * serves the file with the same prefix `as <peer ASN>` (the entry count does not
    change) and runs the refresh script, as the ROA timer does;
  * polls the reflector (`birdc show route <prefix> table master4`, every 20 ms) and
    the client's kernel until the route is there.

It prints the time from the script's exit (its last command is the reload) to the
import on the reflector and to the route in the client's kernel, per repetition and
as median and maximum. `--script` runs another version of dn42-roa-update.sh (e.g.
the one before the fix: `git show 307bd8a:modules/lib/resources/dn42-roa-update.sh`,
with bird-config-loads.sh copied beside it). `--debug-log FILE` makes the reflector's
BIRD log everything (`debug protocols all`) to FILE. `--client-scan-time 20` puts the
client's kernel scan back to 20 s (as rendered before 87d7680), which shows where
the stall seen in test_lab_dn42.py came from: BIRD 3's kernel protocol leaving a
route out of the kernel until its next scan (docs/upstream/bird3-krt-seen-map/);
`--hold` keeps the route that long before the next repetition withdraws it (a scan
must see it for that to show). `--lab-dir` and `--prefix` give the bench a lab of its
own beside another helper's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import dn42lab, location, netns
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.topology import build_topology
from ibgp_tunnel.lab.up import bird_socket, find_secrets_dir, node_dir, reconfigure_bird, up

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "python" / "tests" / "plans" / "example-roa-files.toml"
EXAMPLE_PLAN = REPO / "hosts" / "plan.toml"
BENCH_LAB_DIR = "/run/ibgp-tunnel-bench-roa-lab"
BENCH_PREFIX = "ibroa-"
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"
REFLECTOR, CLIENT = "dmz", "pve"
HIJACK_V4 = "172.21.99.0/24"
OTHER_AS = 4242429999
DEADLINE = 60.0
POLL = 0.02


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def birdc(lab_dir: Path, node: str, *args: str) -> str:
    argv = [location.bird_tool("birdc"), "-s", str(bird_socket(lab_dir, node)), *args]
    return netns.run(argv, check=False).stdout


def client_kernel_has(st: LabState, prefix: str) -> bool:
    argv = netns.ns_argv(st.nodes[CLIENT]["netns"], ["ip", "-4", "route", "show", prefix])
    return prefix.split("/")[0] in netns.run(argv, check=False).stdout


def wait_for(condition: Callable[[], bool], what: str) -> float:
    """Seconds until `condition` holds (polled every POLL s); fails after DEADLINE."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > DEADLINE:
            raise SystemExit(f"roa_refresh: {what} not within {DEADLINE:.0f} s")
        time.sleep(POLL)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument("--bird-dir", type=Path, default=None)
    parser.add_argument("--script", type=Path, default=None, help="dn42-roa-update.sh to run")
    parser.add_argument("--debug-log", type=Path, default=None, help="the reflector's BIRD log")
    parser.add_argument(
        "--hold",
        type=float,
        default=2.0,
        help="seconds the imported route stays before the next repetition (over a scan)",
    )
    parser.add_argument(
        "--client-scan-time",
        type=int,
        default=None,
        help="the client's kernel protocols scan every N s instead of the rendered 1 s"
        " (20: as rendered before 87d7680)",
    )
    parser.add_argument("--lab-dir", default=BENCH_LAB_DIR, help="the bench lab's state directory")
    parser.add_argument("--prefix", default=BENCH_PREFIX, help="the bench lab's namespace prefix")
    args = parser.parse_args()
    bird = location.use_bench_lab(args.lab_dir, args.prefix, args.bird_dir, BIRD3_DIR)
    os.environ.setdefault("SOPS_AGE_KEY_FILE", str(REPO / "secrets" / "test-age-key.txt"))
    lab_dir = Path(args.lab_dir)
    down()
    samples: list[dict[str, float]] = []
    try:
        say(f"bringing the DN42 ROA-files lab up ({bird})")
        secrets = find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
        st = up(PLAN, timeout=90, secrets_dir=secrets)
        topo = build_topology(planfile.load(PLAN), args.prefix)
        dn42 = dn42lab.Dn42Lab(lab_dir, topo)
        (peer,) = topo.dn42_peers
        socket = bird_socket(lab_dir, REFLECTOR)
        if args.debug_log is not None:
            conf = (node_dir(lab_dir, REFLECTOR) / "bird.conf").read_text()
            head = f'log "{args.debug_log.resolve()}" all;\ndebug protocols all;\n'
            reconfigure_bird(lab_dir, REFLECTOR, head + conf)
        if args.client_scan_time is not None:
            conf = (node_dir(lab_dir, CLIENT) / "bird.conf").read_text()
            assert conf.count("scan time 1;") == 2, "the client's kernel protocols changed"
            scan = f"scan time {args.client_scan_time};"
            reconfigure_bird(lab_dir, CLIENT, conf.replace("scan time 1;", scan))
        good = dn42.served(REFLECTOR, "ipv4").read_text()
        hijack = dn42lab.peer_bird_config(peer).replace(
            "protocol static announce4 {\n  ipv4;\n",
            f"protocol static announce4 {{\n  ipv4;\n  route {HIJACK_V4} unreachable;\n",
        )
        reconfigure_bird(lab_dir, peer.node, hijack)

        def imported() -> bool:
            out = birdc(lab_dir, REFLECTOR, "show", "route", HIJACK_V4, "table", "master4")
            return HIJACK_V4 in out

        def client_bird_has() -> bool:
            out = birdc(lab_dir, CLIENT, "show", "route", HIJACK_V4, "table", "master4")
            return HIJACK_V4 in out

        def refresh(asn: int) -> float:
            dn42.serve_roa(REFLECTOR, "ipv4", good + f"route {HIJACK_V4} max 24 as {asn};\n")
            start = time.monotonic()
            done = dn42.refresh_roa(REFLECTOR, socket, args.script)
            if done.returncode != 0 or "BIRD reconfigured" not in done.stdout:
                raise SystemExit(f"roa_refresh: the refresh failed: {done.stdout}{done.stderr}")
            return time.monotonic() - start

        for rep in range(args.reps):
            refresh(OTHER_AS)
            wait_for(lambda: not imported(), "the route refused")
            wait_for(lambda: not client_kernel_has(st, HIJACK_V4), "the route gone at the client")
            time.sleep(1.0)
            script = refresh(peer.asn)
            to_import = wait_for(imported, "the route imported")
            to_bird = to_import + wait_for(client_bird_has, "the route in the client's BIRD")
            to_client = to_bird + wait_for(
                lambda: client_kernel_has(st, HIJACK_V4), "the route at the client"
            )
            sample = {
                "script_s": script,
                "import_s": to_import,
                "client_bird_s": to_bird,
                "client_s": to_client,
            }
            samples.append(sample)
            time.sleep(args.hold)
            say(
                f"rep {rep + 1}: script {script:.2f} s, then imported after {to_import:.2f} s,"
                f" in the client's BIRD after {to_bird:.2f} s, its kernel after {to_client:.2f} s"
            )
    finally:
        down()
    if args.json:
        print(json.dumps({"bird": bird, "samples": samples}, indent=2))
    labels = (
        ("import_s", "reload -> import"),
        ("client_bird_s", "reload -> client's BIRD"),
        ("client_s", "reload -> client's kernel"),
    )
    for key, label in labels:
        values = [s[key] for s in samples]
        print(
            f"{label}: median {statistics.median(values):.2f} s, max {max(values):.2f} s,"
            f" over 1 s: {sum(v > 1.0 for v in values)} of {len(values)} ({bird})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
