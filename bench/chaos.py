"""Chaos soak (issue #23): random faults one after another on the two-reflector lab.

Run as root from the repository: `python bench/chaos.py --minutes N --seed S [--json]`.
It brings python/tests/plans/two-reflectors.toml up (vps1 and vps2, each with a DN42
peer; clients home and office) in a lab of its own, on BIRD 3 from scripts/setup
unless --bird-dir names another, and until N minutes have passed applies one fault
at a time, each kind in turn in an order the seed shuffles per round, on a host the
seed picks:

  kill      BIRD killed (SIGKILL) on any host, started again after 1-4 s
  graceful  `systemctl restart bird` (graceful: `birdc graceful restart`, `bird -R`)
  block     every tunnel of any host blocked for 1-4 s
  cut       any host's namespace cut off (tunnels, uplink, DN42 peering) for 1-4 s
  reload    `birdc configure` on any host
  roa       a reflector's ROA refresh that drops its DN42 peer's prefixes (the
            routes become invalid), and 1-4 s later the refresh that brings them back
  dn42_flap a DN42 peer's session disabled for 1-4 s

Throughout, a thread samples every host's kernel:
  * no default route and no prefix outside the host's kernel_export_sets;
  * no route into a dead tunnel (a blocked or cut-off host's links) longer than
    BFD's detection time plus one second after the fault.
After each fault's repair:
  * the lab is whole again (every session Established, no graceful restart or
    recovery running, BFD Up, kernels in step with BIRD, every client on its
    preferred paths) within 90 s: the time it took is the fault's recovery;
  * pings (every 10 ms, LAN to LAN both ways and home's LAN to an address behind
    the reflectors) are all back: a window that ends inside an outage, 1 s after
    the lab was whole, is a violation; the lost ones are counted by sequence number;
  * no process more in any of the lab's namespaces than after `up`, every daemon alive.
At the end, the memory of each BIRD and of this process (the helper's lab code) is
flat: the last third of samples at most 1.5 times the first third, plus 8 MB.

Prints a table per fault kind (faults, violations, worst recovery, pings lost)
and every violation; `--json` prints all of it as JSON. Exits 1 on any violation.
`--lab-dir` and `--prefix` give it a lab of its own. Nothing leaves the namespaces.
`--faults KIND:TARGET[:HOLD_S],...` replays those faults in turn instead of the
seed's; `--trace DIR` keeps the evidence of every fault there (bench/chaos_trace.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import daemons, dn42lab, faults, isolate, location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.leaks import Leaks
from ibgp_tunnel.lab.pinger import Pinger
from ibgp_tunnel.lab.pings import PingAccountError
from ibgp_tunnel.lab.reflectors import kernel_paths
from ibgp_tunnel.lab.settle import whole
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.topology import Topology, build_topology
from ibgp_tunnel.lab.up import node_dir, up

from chaos_trace import Trace

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "python" / "tests" / "plans" / "two-reflectors.toml"
LAB_DIR = "/run/ibgp-tunnel-bench-chaos-lab"
PREFIX = "ibgch-"
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"
HOSTS = ("vps1", "vps2", "home", "office")
REFLECTORS = ("vps1", "vps2")
CLIENTS = ("home", "office")
KINDS = ("kill", "graceful", "block", "cut", "reload", "roa", "dn42_flap")
SETTLE_TIMEOUT = 90.0
MARGIN = 1.0
SAMPLE_EVERY = 0.25
MEMORY_FACTOR, MEMORY_SLACK_KB = 1.5, 8192


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


@dataclass
class Record:
    kind: str
    target: str
    hold_s: float
    recovery_s: float | None = None
    pings_lost: dict[str, int] = field(default_factory=dict)
    longest_gap_s: float = 0.0
    violations: list[str] = field(default_factory=list)


def bfd_detection_s(lab_dir: Path) -> float:
    """BFD's detection time as rendered for vps1 (interval times multiplier)."""
    conf = (node_dir(lab_dir, "vps1") / "bird.conf").read_text()
    interval = re.search(r"^\s*interval (\d+) ms;", conf, re.M)
    multiplier = re.search(r"^\s*multiplier (\d+);", conf, re.M)
    if interval is None or multiplier is None:
        raise SystemExit("vps1's bird.conf has no BFD interval and multiplier")
    return int(interval[1]) / 1000 * int(multiplier[1])


class Monitor(threading.Thread):
    """Samples every host's kernel while faults run: leaks and dead tunnels."""

    def __init__(self, st: LabState, leaks: Leaks, limit: float, trace: Trace | None) -> None:
        super().__init__(daemon=True)
        self.st, self.leaks, self.limit, self.trace = st, leaks, limit, trace
        self.lock = threading.Lock()
        self.dead: dict[tuple[str, str], float] = {}  # (host, tunnel) -> since
        self.epoch = 0  # bumped by every mark_dead: a read that spans one judges nothing
        self.found: list[str] = []
        self.seen: set[str] = set()
        self.running = True
        self.paused = threading.Event()  # while set, no `ip -n` runs inside a namespace
        self.idle = threading.Event()
        self.samples = 0

    def mark_dead(self, tunnels: list[tuple[str, str]]) -> None:
        now = time.monotonic()
        with self.lock:
            self.dead = {t: now for t in tunnels}
            self.epoch += 1

    def take(self) -> list[str]:
        with self.lock:
            found, self.found = self.found, []
            self.seen.clear()
            return found

    def _report(self, message: str, key: str | None = None) -> None:
        """Once per fault and `key` (the message, unless given)."""
        with self.lock:
            if (key or message) not in self.seen:
                self.seen.add(key or message)
                self.found.append(message)

    def sample(self) -> None:
        for host in HOSTS:
            # A kernel read takes a while (two `ip` runs, longer under load): its routes
            # count against a dead tunnel only when the fault held for the whole read.
            # One that began before the repair and ended after it sees the routes the
            # repair brought back (bench/chaos.py used to report those as violations).
            with self.lock:
                dead, epoch = dict(self.dead), self.epoch
            began = time.monotonic()
            paths = kernel_paths(self.st, host)
            ended = time.monotonic()
            with self.lock:
                held = self.epoch == epoch
            if self.trace is not None:
                self.trace.sample(host, paths)
            for prefix in sorted(self.leaks.outside(host, set(paths))):
                self._report(f"{host}'s kernel holds {prefix}, outside its kernel_export_sets")
            for (node, tunnel), since in dead.items():
                if not held or node != host or began - since <= self.limit:
                    continue
                into = sorted(p for p, dev in paths.items() if tunnel in dev.split("+"))
                if into:
                    self._report(
                        f"{host} routes {', '.join(into[:4])} into dead {tunnel} "
                        f"more than {self.limit:.2f} s after the fault (read "
                        f"{began - since:.2f}-{ended - since:.2f} s after it)",
                        key=f"{host} {tunnel}",
                    )
        self.samples += 1

    def run(self) -> None:
        while self.running:
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.05)
                continue
            self.idle.clear()
            try:
                self.sample()
            except Exception as exc:  # a sample that fails is reported, never fatal
                self._report(f"sampling failed: {exc}")
            time.sleep(SAMPLE_EVERY)

    def quiet(self) -> None:
        """Stop sampling until `resume`: its `ip -n` runs inside the namespaces, and
        would be counted as a process there."""
        self.paused.set()
        if self.is_alive():
            self.idle.wait(timeout=10)

    def resume(self) -> None:
        self.idle.clear()
        self.paused.clear()


def dead_tunnels(plan: dict[str, Any], host: str) -> list[tuple[str, str]]:
    """(host, tunnel) of both ends of every link of `host`: dead while it is blocked or cut."""
    ends = []
    for link in plan.get("links", {}).values():
        if host in (link["client"], link["reflector"]):
            interface = str(link.get("interface", "wg-ibgp"))
            ends += [(str(link["client"]), interface), (str(link["reflector"]), interface)]
    return ends


def namespace_processes(st: LabState) -> dict[str, int]:
    out = {}
    for name, node in st.nodes.items():
        pids = netns.run(["ip", "netns", "pids", node["netns"]], check=False).stdout.split()
        out[name] = len(pids)
    return out


def rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m[1]) if m else None


class Soak:
    def __init__(
        self,
        st: LabState,
        plan: dict[str, Any],
        topo: Topology,
        seed: int,
        trace: Trace | None = None,
    ) -> None:
        self.st, self.plan, self.topo, self.trace = st, plan, topo, trace
        self.rng = random.Random(seed)
        self.artifacts = saved_artifacts(Path(st.lab_dir))
        self.dn42 = dn42lab.Dn42Lab(Path(st.lab_dir), topo)
        limit = bfd_detection_s(Path(st.lab_dir)) + 1.0
        self.monitor = Monitor(st, Leaks(plan), limit, trace)
        self.baseline = namespace_processes(st)
        self.memory: dict[str, list[int]] = {}
        self.records: list[Record] = []
        self.order: list[str] = []
        self.replay: list[Record] = []
        self.roas: dict[tuple[str, str], str] = {}  # the served ROA files as `up` left them
        lan = {c.router: c.ipv4 for c in topo.lan_clients}
        self.targets = {
            "home->office": ("lan-home", lan["office"]),
            "office->home": ("lan-office", lan["home"]),
            "home->vps": ("lan-home", topo.probes["vps1"][0]),
        }

    # --- choosing -------------------------------------------------------------------

    def next_fault(self) -> Record:
        if self.replay:  # --faults: the given ones in turn, again and again
            r = self.replay[len(self.records) % len(self.replay)]
            return Record(r.kind, r.target, r.hold_s)
        if not self.order:
            self.order = list(KINDS)
            self.rng.shuffle(self.order)
        kind = self.order.pop()
        if kind == "roa":
            target = self.rng.choice(REFLECTORS)
        elif kind == "dn42_flap":
            target = self.rng.choice([p.node for p in self.topo.dn42_peers])
        else:
            target = self.rng.choice(HOSTS)
        hold = round(self.rng.uniform(1.0, 4.0), 2) if kind not in ("graceful", "reload") else 0
        return Record(kind, target, hold)

    # --- acting ---------------------------------------------------------------------

    def _roa(self, reflector: str, valid: bool) -> None:
        peer = next(p for p in self.topo.dn42_peers if p.reflector == reflector)
        socket = Path(self.st.nodes[reflector]["bird_socket"])
        for family, announced in (("ipv4", peer.announce_ipv4), ("ipv6", peer.announce_ipv6)):
            good = self.roas.setdefault(
                (reflector, family), self.dn42.served(reflector, family).read_text()
            )
            text = good
            if not valid:  # the registry no longer lists the peer's prefixes
                text = "".join(
                    line + "\n"
                    for line in good.splitlines()
                    if not any(f"route {prefix} " in line for prefix in announced)
                )
            self.dn42.serve_roa(reflector, family, text)
        done = self.dn42.refresh_roa(reflector, socket)
        if done.returncode != 0:
            raise RuntimeError(f"the ROA refresh on {reflector} failed: {done.stderr.strip()}")

    def note(self, message: str) -> None:
        if self.trace is not None:
            self.trace.event(message)

    def hold(self, r: Record) -> None:
        self.note(f"fault {len(self.records)}: {r.kind} {r.target} done, holding {r.hold_s} s")
        time.sleep(r.hold_s)
        self.note(f"fault {len(self.records)}: repairing {r.kind} {r.target}")

    def apply(self, r: Record) -> None:
        st, t = self.st, r.target
        self.note(f"fault {len(self.records)}: {r.kind} {t} (hold {r.hold_s} s)")
        if r.kind == "kill":
            faults.kill_bird(st, t)
            self.hold(r)
            faults.start_bird(st, t)
        elif r.kind == "graceful":
            faults.restart_bird(st, t)
        elif r.kind in ("block", "cut"):
            (faults.block_tunnel if r.kind == "block" else isolate.cut_off)(st, t)
            self.monitor.mark_dead(dead_tunnels(self.plan, t))
            self.hold(r)
            (faults.unblock_tunnel if r.kind == "block" else isolate.reconnect)(st, t)
            self.monitor.mark_dead([])
        elif r.kind == "reload":
            faults.reload_bird(st, t)
        elif r.kind == "roa":
            self._roa(t, valid=False)
            self.hold(r)
            self._roa(t, valid=True)
        elif r.kind == "dn42_flap":
            faults.set_dn42_session(st, False, t)
            self.hold(r)
            faults.set_dn42_session(st, True, t)
        self.note(f"fault {len(self.records)}: {r.kind} {t} repaired")

    # --- checking -------------------------------------------------------------------

    def wait_whole(self) -> tuple[float | None, list[str]]:
        start = time.monotonic()
        while True:
            ok, waiting = whole(self.st, self.plan, self.artifacts, CLIENTS)
            if ok:
                return time.monotonic() - start, []
            if time.monotonic() - start > SETTLE_TIMEOUT:
                return None, waiting
            time.sleep(0.1)

    def after(self, r: Record) -> None:
        for daemon in self.st.daemons:
            if not daemons.alive(daemon):
                r.violations.append(f"{daemon.name} is not running")
        self.monitor.quiet()
        try:
            now = namespace_processes(self.st)
        finally:
            self.monitor.resume()
        for name, count in now.items():
            if count > self.baseline.get(name, 0):
                r.violations.append(
                    f"{name}: {count} processes, {self.baseline.get(name, 0)} after up"
                )
        for daemon in self.st.daemons:
            if daemon.name.endswith("/bird") and (kb := rss_kb(daemon.pid)):
                self.memory.setdefault(daemon.name, []).append(kb)
        if kb := rss_kb(os.getpid()):
            self.memory.setdefault("helper (bench/chaos.py)", []).append(kb)

    def one(self, r: Record) -> None:
        pingers = {name: Pinger(self.st, src, dst) for name, (src, dst) in self.targets.items()}
        time.sleep(0.3)
        try:
            self.apply(r)
            r.recovery_s, waiting = self.wait_whole()
            self.note(f"fault {len(self.records)}: whole after {r.recovery_s} s")
            if r.recovery_s is None:
                r.violations.append(f"not whole {SETTLE_TIMEOUT:.0f} s after: {'; '.join(waiting)}")
            time.sleep(MARGIN)
        finally:
            accounts = {}
            for name, pinger in pingers.items():
                try:
                    accounts[name] = pinger.stop()
                except PingAccountError as exc:  # the instrument failed: never a pass
                    r.violations.append(f"{name}: {exc}")
            self.note(f"fault {len(self.records)}: pings stopped")
            if self.trace is not None:
                for name, pinger in pingers.items():
                    self.trace.ping(len(self.records), name.replace(">", ""), pinger.output)
        for name, acc in accounts.items():
            r.pings_lost[name] = acc.lost
            r.longest_gap_s = max(r.longest_gap_s, acc.longest_gap_s)
            if acc.open_end:
                r.violations.append(
                    f"{name}: pings still lost {MARGIN:.0f} s after the lab was whole "
                    f"({acc.gaps[-1].lost} since icmp_seq {acc.gaps[-1].first})"
                )
        r.violations += self.monitor.take()
        self.after(r)

    def memory_flat(self) -> list[str]:
        found = []
        for name, kbs in self.memory.items():
            third = len(kbs) // 3
            if third < 2:
                continue
            first, last = statistics.median(kbs[:third]), statistics.median(kbs[-third:])
            if last > first * MEMORY_FACTOR + MEMORY_SLACK_KB:
                found.append(f"{name}: memory grew from {first:.0f} kB to {last:.0f} kB")
        return found

    def run(self, seconds: float) -> list[str]:
        self.monitor.start()
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                r = self.next_fault()
                self.records.append(r)
                self.one(r)
                say(
                    f"{len(self.records)} {r.kind} {r.target} (hold {r.hold_s} s): recovery "
                    f"{r.recovery_s if r.recovery_s is None else round(r.recovery_s, 2)} s, "
                    f"lost {r.pings_lost}"
                    + (f", VIOLATIONS: {r.violations}" if r.violations else "")
                )
                if r.recovery_s is None:
                    say("the lab did not recover: stopping the soak")
                    break
        finally:
            self.monitor.running = False
            self.monitor.join(timeout=10)
        return self.memory_flat()


def parse_faults(text: str) -> list[Record]:
    """--faults 'graceful:vps2,block:vps2:2.69': KIND:TARGET[:HOLD_S], comma-separated."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, target, *hold = item.split(":")
        if kind not in KINDS or len(hold) > 1:
            raise SystemExit(f"--faults: {item!r} is not KIND:TARGET[:HOLD_S], KIND one of {KINDS}")
        out.append(Record(kind, target, float(hold[0]) if hold else 0.0))
    return out


def summary(records: list[Record]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        rs = [r for r in records if r.kind == kind]
        if not rs:
            continue
        recoveries = [r.recovery_s for r in rs if r.recovery_s is not None]
        lost = [sum(r.pings_lost.values()) for r in rs]
        out[kind] = {
            "faults": len(rs),
            "violations": sum(len(r.violations) for r in rs),
            "worst_recovery_s": round(max(recoveries), 2) if recoveries else None,
            "pings_lost": sum(lost),
            "max_pings_lost": max(lost),
            "longest_gap_s": round(max(r.longest_gap_s for r in rs), 3),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--bird-dir", type=Path, default=None)
    parser.add_argument("--lab-dir", default=LAB_DIR, help="the soak lab's state directory")
    parser.add_argument("--prefix", default=PREFIX, help="the soak lab's namespace prefix")
    parser.add_argument(
        "--faults",
        type=parse_faults,
        default=[],
        help="replay these faults in turn instead of the seed's (KIND:TARGET[:HOLD_S],...)",
    )
    parser.add_argument(
        "--trace", type=Path, default=None, help="keep evidence here (bench/chaos_trace.py)"
    )
    args = parser.parse_args()
    bird = location.use_bench_lab(args.lab_dir, args.prefix, args.bird_dir, BIRD3_DIR)
    down()
    trace: Trace | None = None
    try:
        say(f"bringing the two-reflector lab up ({bird}), seed {args.seed}")
        st = up(PLAN, timeout=120)
        plan = planfile.load(PLAN)
        if args.trace is not None:
            trace = Trace(args.trace, st, HOSTS)
            trace.debug_birds()
        soak = Soak(st, plan, build_topology(plan, args.prefix), args.seed, trace)
        soak.replay = args.faults
        settled, waiting = soak.wait_whole()
        if settled is None:
            raise SystemExit(f"the lab never settled after up: {'; '.join(waiting)}")
        soak.baseline = namespace_processes(st)
        memory = soak.run(args.minutes * 60)
    finally:
        if trace is not None:
            trace.keep_logs()
        down()
    records, table = soak.records, summary(soak.records)
    violations = [f"{r.kind} {r.target}: {v}" for r in records for v in r.violations] + memory
    if args.json:
        print(
            json.dumps(
                {
                    "bird": bird,
                    "seed": args.seed,
                    "minutes": args.minutes,
                    "summary": table,
                    "violations": violations,
                    "faults": [asdict(r) for r in records],
                }
            )
        )
    else:
        print(f"{bird}, seed {args.seed}, {args.minutes:g} min, {len(records)} faults")
        print("| fault | faults | violations | worst recovery s | pings lost | max lost | gap s |")
        print("|---|---|---|---|---|---|---|")
        for kind, row in table.items():
            print(
                f"| {kind} | {row['faults']} | {row['violations']} | {row['worst_recovery_s']} "
                f"| {row['pings_lost']} | {row['max_pings_lost']} | {row['longest_gap_s']} |"
            )
        for v in violations:
            print(f"VIOLATION {v}")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
