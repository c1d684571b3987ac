"""Failover and restart benchmark: the seed's plain BGP sessions against ours, in the lab.

Run as root from the repository: `python bench/failover.py [--reps 3] [--json]`.
It brings the example plan up in the namespace lab twice, once rendered with the
Nix core's plainTuning (no BFD, no graceful restart, BIRD's default timers) and
once with the plan's own tuning, measures the same things in both and prints a
table of medians (Markdown; --json for every sample). Nothing leaves the lab's
namespaces; pings run from the LAN host to an address of the lab's DN42 peer,
which only the tunnel leads to. It runs in a lab of its own (a lab that is up
stays untouched), on BIRD 3 from scripts/setup unless --bird-dir names another.
A whole run takes about 7 minutes (12 with --full-hold).

Observation is passive where BIRD's timing is the point: kernel routes are read
with `ip route`, and times of BGP state changes come from BIRD's own "Since"
column afterwards. Polling birdc while waiting would wake BIRD 2.0.12's event
loop and hide its occasional 3 s stall, which the numbers should show.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ibgp_tunnel import planfile
from ibgp_tunnel.errors import IbgpTunnelError
from ibgp_tunnel.lab import faults, location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import birdc, parse_protocols, sessions_established
from ibgp_tunnel.lab.topology import build_topology, expected_client_routes
from ibgp_tunnel.lab.up import up

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "hosts" / "plan.toml"
REFLECTOR, CLIENT, LAN = "dmz", "pve", "lan-pve"
VARIANTS = ("plain", "ours")
PING_INTERVAL = 0.05  # 20 pings a second
SETTLE_TIMEOUT = 120.0
# A lab of the bench's own, so a lab the user has up (or the tests') is left alone.
BENCH_LAB_DIR = "/run/ibgp-tunnel-bench-lab"
BENCH_PREFIX = "ibgtb-"
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """The lab did not reach a state the benchmark needs; the message says which."""


# --- observing the lab ----------------------------------------------------------------


def kernel_count(st: LabState, node: str) -> int:
    """Routes BIRD installed in the node's kernel, both families (no BIRD involved)."""
    total = 0
    for family in ("-4", "-6"):
        out = netns.run(
            ["ip", "-n", st.nodes[node]["netns"], family, "route", "show", "proto", "bird"],
            timeout=30,
        ).stdout
        total += out.count("\n")
    return total


def wait(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> float | None:
    """Seconds on the monotonic clock when `condition` first held, or None at `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def since(st: LabState, node: str, protocol: str) -> float:
    """The wall-clock time (epoch seconds) of the protocol's last state change, from
    BIRD's "Since" column (today's HH:MM:SS.mmm)."""
    out = birdc(st.nodes[node]["bird_socket"], "show", "protocols", protocol)
    row = next(line for line in out.splitlines() if line.startswith(f"{protocol} "))
    clock = dt.datetime.strptime(row.split()[4], "%H:%M:%S.%f").time()
    now = dt.datetime.now()
    stamp = dt.datetime.combine(now.date(), clock)
    if stamp > now + dt.timedelta(hours=1):  # the change happened before midnight
        stamp -= dt.timedelta(days=1)
    return stamp.timestamp()


def session_state(st: LabState, node: str, protocol: str) -> str:
    rows = parse_protocols(birdc(st.nodes[node]["bird_socket"], "show", "protocols", protocol))
    return next((r.info for r in rows if r.name == protocol), "")


def bfd_up(st: LabState, node: str) -> bool:
    out = birdc(st.nodes[node]["bird_socket"], "show", "bfd", "sessions")
    return any(" Up " in f" {line} " for line in out.splitlines()[2:])


def ping_works(st: LabState, address: str) -> bool:
    proc = netns.run(
        netns.ns_argv(st.nodes[LAN]["netns"], ["ping", "-n", "-c", "1", "-W", "1", address]),
        check=False,
    )
    return proc.returncode == 0


class Pinger:
    """ping at 20/s from the LAN host, bounded in count and time; stopped with SIGINT."""

    def __init__(self, st: LabState, address: str, max_seconds: float = 120) -> None:
        count = int(max_seconds / PING_INTERVAL)
        argv = ["ping", "-n", "-q", "-i", str(PING_INTERVAL), "-W", "1"]
        argv += ["-c", str(count), "-w", str(int(max_seconds)), address]
        self.proc = subprocess.Popen(
            netns.ns_argv(st.nodes[LAN]["netns"], argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> tuple[int, int]:
        """(transmitted, received)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        if m is None:
            raise BenchError(f"ping printed no summary: {out.strip()}")
        return int(m[1]), int(m[2])


# --- one variant's lab ------------------------------------------------------------------


@dataclass
class Bench:
    variant: str
    st: LabState
    expected: dict[str, int]  # node -> BIRD routes in its kernel when all is well
    dn42_address: str
    samples: dict[str, list[float | None]] = field(default_factory=dict)

    def record(self, metric: str, value: float | None) -> None:
        self.samples.setdefault(metric, []).append(value)
        shown = "none" if value is None else f"{value:.3f}"
        say(f"{self.variant}: {metric}: {shown}")

    def settled(self) -> bool:
        ok, _ = sessions_established(self.st)
        return (
            ok
            and all(kernel_count(self.st, node) == n for node, n in self.expected.items())
            and ping_works(self.st, self.dn42_address)
        )

    def wait_settled(self, what: str) -> None:
        if wait(self.settled, SETTLE_TIMEOUT, interval=0.5) is None:
            counts = {node: kernel_count(self.st, node) for node in self.expected}
            raise BenchError(
                f"{self.variant}: not settled {SETTLE_TIMEOUT:.0f} s after {what}: kernel "
                f"routes {counts}, expected {self.expected}; {sessions_established(self.st)[1]}"
            )


def bring_up(variant: str, plan_path: Path) -> Bench:
    say(f"{variant}: lab up")
    st = up(plan_path, timeout=120, plain_tuning=variant == "plain", progress=say)
    plan = planfile.load(plan_path)
    topo = build_topology(plan)
    client = expected_client_routes(saved_artifacts(Path(st.lab_dir)), CLIENT)
    peer = topo.dn42_peers[0]
    dn42 = set(peer.announce_ipv4) | set(peer.announce_ipv6)
    reflector = len((client["ipv4"] | client["ipv6"]) & dn42)
    address = str(ipaddress.ip_network(peer.announce_ipv4[0]).network_address + 1)
    bench = Bench(variant, st, {CLIENT: len(client["ipv4"]) + len(client["ipv6"])}, address)
    bench.expected[REFLECTOR] = reflector
    bench.wait_settled("lab up")
    return bench


# --- the measurements -----------------------------------------------------------------


def cold_start(bench: Bench, label: str) -> None:
    """The client's BIRD from nothing (as after a reboot, the reflector having seen it
    go): stopped with `birdc down`, its kernel routes gone, then started as its unit
    does (`bird`; ours `bird -R`). Start → Established from BIRD's Since; Established →
    every route in the client's kernel from polling `ip route`."""
    st = bench.st
    faults.stop_bird(st, CLIENT)
    for family in ("-4", "-6"):
        netns.run(
            ["ip", "-n", st.nodes[CLIENT]["netns"], family, "route", "flush", "proto", "bird"]
        )
    if wait(lambda: "Established" not in session_state(st, REFLECTOR, "ibgp_pve"), 30) is None:
        raise BenchError("the reflector did not notice the client's BIRD stop")
    time.sleep(2)  # the reflector settles into its reconnect loop, as during a reboot
    start = time.time()
    faults.start_bird(st, CLIENT)
    done = wait(lambda: kernel_count(st, CLIENT) >= bench.expected[CLIENT], 120)
    routes_at = time.time() - (time.monotonic() - done) if done is not None else None
    established = since(st, CLIENT, "ibgp_dmz")
    bench.record("cold start → Established", established - start)
    # What a user waits for. BIRD's kernel protocol writes no route before its first
    # scan of the kernel table, 1 s after start, so a session that is up sooner (ours)
    # shows a longer "Established → all routes" for the same or an earlier arrival.
    bench.record(
        f"cold start → all routes in kernel ({label})",
        None if routes_at is None else routes_at - start,
    )
    bench.record(
        f"Established → all routes in kernel ({label})",
        None if routes_at is None else routes_at - established,
    )
    bench.wait_settled("cold start")


def tunnel_loss(bench: Bench, cap: float, suffix: str = "") -> None:
    """Drop the tunnel's packets on the reflector (stateless, both ways); time to the
    client noticing, to its kernel losing the routes, and after unblocking to the
    routes being back."""
    st = bench.st
    full = bench.expected[CLIENT]
    gone: float | None = None
    start = time.monotonic()
    faults.block_tunnel(st, REFLECTOR)
    try:
        if bench.variant == "ours":
            # BFD lives in its own thread: polling the CLI cannot speed it up.
            detected = wait(lambda: not bfd_up(st, CLIENT), cap)
        else:
            detected = wait(
                lambda: "Established" not in session_state(st, CLIENT, "ibgp_dmz"),
                cap,
                interval=0.5,
            )
        bench.record(
            "tunnel loss → failure detected" + suffix,
            None if detected is None else detected - start,
        )
        left = max(0.0, cap - (time.monotonic() - start))
        gone = wait(lambda: kernel_count(st, CLIENT) == 0, left)
        bench.record(
            "tunnel loss → routes withdrawn" + suffix, None if gone is None else gone - start
        )
    finally:
        faults.unblock_tunnel(st, REFLECTOR)
    back_start = time.monotonic()
    back = wait(lambda: kernel_count(st, CLIENT) == full, 300)
    # None when they never left (or never came back within 300 s).
    returned = None if gone is None or back is None else back - back_start
    bench.record("tunnel back → routes back" + suffix, returned)
    bench.wait_settled("tunnel back")


def pings_lost(bench: Bench, metric: str, fault: Callable[[], None], window: float) -> None:
    """Ping from the LAN through the tunnel to DN42 at 20/s across a fault on the
    reflector; count what is lost until the routes are back and `window` s passed."""
    st = bench.st
    pinger = Pinger(st, bench.dn42_address)
    try:
        time.sleep(1)
        start = time.monotonic()
        fault()
        wait(lambda: time.monotonic() - start > window, window + 1, interval=0.1)
        if (
            wait(lambda: all(kernel_count(st, n) == c for n, c in bench.expected.items()), 120)
            is None
        ):
            raise BenchError(f"{bench.variant}: routes not back after {metric}")
        time.sleep(2)
    finally:
        sent, received = pinger.stop()
    bench.record(metric, float(sent - received))
    bench.wait_settled(metric)


def plain_stop_start(st: LabState) -> None:
    """`systemctl restart bird` with NixOS's plain unit: `birdc down`, then `bird`."""
    faults.stop_bird(st, REFLECTOR)
    faults.start_bird(st, REFLECTOR, recovery=False)


def run_variant(variant: str, args: argparse.Namespace) -> Bench:
    bench = bring_up(variant, args.plan)
    st = bench.st
    try:
        for _ in range(args.reps):
            cold_start(bench, "small table")
        for _ in range(args.reps):
            tunnel_loss(bench, args.hold_cap)

        def crash() -> None:
            faults.crash_bird(st, REFLECTOR)

        def restart() -> None:
            # systemctl restart bird: our unit, or NixOS's plain one.
            if variant == "ours":
                faults.restart_bird(st, REFLECTOR)
            else:
                plain_stop_start(st)

        def reload() -> None:
            faults.reload_bird(st, REFLECTOR)

        for _ in range(args.reps):
            pings_lost(bench, "pings lost: reflector BIRD crash", crash, 10)
            pings_lost(bench, "pings lost: reflector BIRD stop/start", restart, 10)
            pings_lost(bench, "pings lost: reflector BIRD reload", reload, 4)
        say(f"{variant}: the DN42 peer announces {args.routes} + {args.routes} more routes")
        faults.announce_extra_routes(st, args.routes, args.routes)
        bench.expected[CLIENT] += 2 * args.routes
        bench.expected[REFLECTOR] += 2 * args.routes
        bench.wait_settled("the extra routes")
        for _ in range(args.reps):
            cold_start(bench, f"{args.routes} + {args.routes} routes")
        faults.announce_extra_routes(st, 0, 0)
        bench.expected[CLIENT] -= 2 * args.routes
        bench.expected[REFLECTOR] -= 2 * args.routes
        bench.wait_settled("withdrawing the extra routes")
        if variant == "plain" and args.full_hold:
            say("plain: tunnel loss once more, waiting out the 240 s hold timer")
            tunnel_loss(bench, 300, " (hold timer waited out, 1 run)")
    finally:
        say(f"{variant}: lab down")
        down()
    return bench


# --- the report -------------------------------------------------------------------------

TARGETS = {
    "cold start → Established": (1.0, "≤ 1 s"),
    "tunnel loss → failure detected": (0.5, "≤ 0.5 s"),
    "tunnel back → routes back": (2.0, "≤ 2 s"),
    "pings lost: reflector BIRD crash": (0.0, "0"),
    "pings lost: reflector BIRD stop/start": (0.0, "0"),
    "pings lost: reflector BIRD reload": (0.0, "0"),
}


def fmt(metric: str, values: list[float | None], cap: float) -> str:
    done = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(done) * 2 <= len(values):
        return "n/a (never withdrawn)" if metric.startswith("tunnel back") else f"> {cap:.0f} s"
    median = statistics.median(done)
    note = f" ({len(done)} of {len(values)})" if len(done) != len(values) else ""
    if metric.startswith("pings"):
        return f"{median:.0f} ({median * PING_INTERVAL:.2f} s){note}"
    return f"{median:.2f} s{note}"


Samples = dict[str, dict[str, list[float | None]]]  # variant -> metric -> samples


def verdict(metric: str, samples: Samples) -> str:
    ours = [v for v in samples.get("ours", {}).get(metric, []) if v is not None]
    if not ours:
        return ""
    median = statistics.median(ours)
    if metric in TARGETS:
        limit, _ = TARGETS[metric]
        return "yes" if median <= limit else "no"
    if metric.startswith("Established → all routes") and "+" in metric:
        return "yes" if median <= 3.0 else "no"
    if metric.startswith("cold start → all routes"):
        plain = [v for v in samples.get("plain", {}).get(metric, []) if v is not None]
        # "No slower" within 10 % (a few ms here): equal tables take equal time.
        slower = bool(plain) and median > statistics.median(plain) * 1.1
        return "no" if slower else "yes"
    return ""


def target_text(metric: str) -> str:
    if metric in TARGETS:
        return TARGETS[metric][1]
    if metric.startswith("Established → all routes") and "+" in metric:
        return "≤ 3 s"
    if metric.startswith("cold start → all routes"):
        return "≤ plain (+10 %)"
    return ""


def machine() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0]

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "bird": first_line([location.bird_tool("bird"), "--version"]),
        "wireguard-go": first_line(["wireguard-go", "--version"]),
    }


def table(samples: Samples, cap: float) -> str:
    metrics: list[str] = []
    for per_variant in samples.values():
        metrics += [m for m in per_variant if m not in metrics]
    lines = [
        "| | seed (plain) | ours | target | met |",
        "|---|---|---|---|---|",
    ]
    for metric in metrics:
        cells = [fmt(metric, samples.get(v, {}).get(metric, []), cap) for v in VARIANTS]
        met = verdict(metric, samples)
        lines.append(f"| {metric} | {' | '.join(cells)} | {target_text(metric)} | {met} |")
    return "\n".join(lines)


def report(path: Path, cap: float) -> str:
    """The table and machine facts of a run saved with --json."""
    data = json.loads(path.read_text())
    facts = ", ".join(f"{key}: {value}" for key, value in data["machine"].items())
    return table(data["samples"], float(data.get("hold_cap", cap))) + "\n\n" + facts


def side_by_side(paths: list[Path], cap: float) -> str:
    """One table of several runs saved with --json (one per BIRD, say): plain and ours
    of each run, and whether ours meets each target in each run."""
    runs = [json.loads(path.read_text()) for path in paths]
    names = [run["machine"]["bird"].replace("BIRD version ", "BIRD ") for run in runs]
    metrics: list[str] = []
    for run in runs:
        for per_variant in run["samples"].values():
            metrics += [m for m in per_variant if m not in metrics]
    header = ["", *(f"{name} {v}" for name in names for v in ("plain", "ours")), "target"]
    header += [f"met ({name})" for name in names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in metrics:
        cells = [metric]
        for run in runs:
            run_cap = float(run.get("hold_cap", cap))
            cells += [
                fmt(metric, run["samples"].get(v, {}).get(metric, []), run_cap) for v in VARIANTS
            ]
        cells.append(target_text(metric))
        cells += [verdict(metric, run["samples"]) for run in runs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument("--plan", type=Path, default=PLAN, help="the plan (default: example)")
    parser.add_argument("--routes", type=int, default=10000, help="extra routes per family")
    parser.add_argument(
        "--hold-cap",
        type=float,
        default=30.0,
        help="seconds to wait for a dead tunnel to be noticed before reporting '> cap'",
    )
    parser.add_argument(
        "--full-hold",
        action="store_true",
        help="once more for the plain config, wait out its 240 s hold timer (+5 min)",
    )
    parser.add_argument("--only", choices=VARIANTS, help="run one variant only")
    parser.add_argument(
        "--bird-dir",
        type=Path,
        help="directory with the bird and birdc to run (default: $IBGP_TUNNEL_BIRD_DIR, "
        "else BIRD 3 from scripts/setup in .cache/bird/bird3/bin, else PATH's)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the table of a run saved with --json (of several: side by side)",
    )
    args = parser.parse_args()
    if args.report:
        if len(args.report) == 1:
            print(report(args.report[0], args.hold_cap))
        else:
            print(side_by_side(args.report, args.hold_cap))
        return 0
    if os.geteuid() != 0:
        print("error: the lab needs root; run it with sudo", file=sys.stderr)
        return 2
    os.environ[location.LAB_DIR_ENV] = BENCH_LAB_DIR
    os.environ[location.PREFIX_ENV] = BENCH_PREFIX
    if args.bird_dir:
        os.environ[location.BIRD_DIR_ENV] = str(args.bird_dir.resolve())
    elif not os.environ.get(location.BIRD_DIR_ENV) and (BIRD3_DIR / "bird").exists():
        os.environ[location.BIRD_DIR_ENV] = str(BIRD3_DIR)
    down()  # what an interrupted bench left behind: only the bench's own lab
    # The example's sops files are encrypted to the committed test-only age key.
    os.environ.setdefault("SOPS_AGE_KEY_FILE", str(REPO / "secrets" / "test-age-key.txt"))
    started = time.monotonic()
    benches: dict[str, Bench] = {}
    try:
        for variant in [args.only] if args.only else VARIANTS:
            benches[variant] = run_variant(variant, args)
    except (BenchError, IbgpTunnelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    facts = machine() | {"minutes": f"{(time.monotonic() - started) / 60:.1f}"}
    samples = {variant: bench.samples for variant, bench in benches.items()}
    if args.json or len(benches) != 2:
        saved = {"machine": facts, "hold_cap": args.hold_cap, "samples": samples}
        print(json.dumps(saved, indent=2, ensure_ascii=False))
    else:
        print(table(samples, args.hold_cap))
        print()
        print(", ".join(f"{key}: {value}" for key, value in facts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
