"""A reflector with N DN42 peers in the namespace lab: it comes up, holds every session,
and what each peer costs in memory (issue 22, item 7).

    sudo .venv/bin/python bench/dn42_lab_scale.py [--peers 50] [--hold 60] [--bird-dir DIR]
        [--json] [--save bench/results/dn42-lab-scale-bird-X.json]

It brings up the plan of `ibgp_tunnel.lab.dn42many` twice in its own lab (default
/run/ibgp-tunnel-bench-dn42, namespaces `ibgtm-*`; never a lab the environment names):
first with 0 DN42 peers (the baseline), then with N. Each peer is a namespace of its
own with its own wireguard-go, BIRD, ASN and six announced prefixes (two of each
family valid, one of each outside DN42's sets); the reflector runs exactly what the
core rendered (one wireguard-go per tunnel, PSKs, ROA files, import limits,
communities). With N peers it

- times `lab up` (rendered, namespaces built, every session Established and every
  kernel route in place: the lab's own wait);
- checks every one of the N sessions Established on the reflector, each peer's two
  valid routes per family imported from it (and not the invalid one), our own
  prefix on every peer;
- samples every --interval s for --hold s that every session stays Established
  with the same "Since" (no flap) and every daemon is alive;
- measures memory: the reflector BIRD's RSS and its own `show memory` total, the RSS
  of each of the reflector's wireguard-go (one per tunnel) and the peers' (for
  scale), the reflector's nftables ruleset (lines), and the reflector BIRD's CPU
  seconds over the hold; per peer = (N peers - 0 peers) / N. wireguard-go's
RSS counts its Go runtime; `private` (smaps_rollup) is what it alone holds.

BIRD 3 from scripts/setup unless --bird-dir or $IBGP_TUNNEL_BIRD_DIR names another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ibgp_tunnel.errors import IbgpTunnelError
from ibgp_tunnel.lab import daemons, dn42many, location, netns
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import bgp_sessions, birdc, parse_protocols
from ibgp_tunnel.lab.up import up

REPO = Path(__file__).resolve().parents[1]
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"
BENCH_LAB_DIR = "/run/ibgp-tunnel-bench-dn42"
BENCH_PREFIX = "ibgtm-"
REFLECTOR = "vps"
TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


# --- reading processes ----------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"process {pid} has no VmRSS (a zombie?)")


def private_kib(pid: int) -> int:
    """Memory only `pid` holds (Private_Clean + Private_Dirty of smaps_rollup, KiB)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def machine_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise BenchError(f"/proc/meminfo has no {field}")


def cpu_seconds(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def daemon_pids(st: LabState, prefix: str) -> dict[str, int]:
    return {d.name: d.pid for d in st.daemons if d.name.startswith(prefix)}


_UNITS = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024 * 1024}


def bird_memory_kib(socket: str) -> float:
    """The Total line of `birdc show memory` (BIRD's own accounting, effective), KiB."""
    out = birdc(socket, "show", "memory")
    match = re.search(r"^Total:\s+([\d.]+)\s*([kMG]?B)", out, re.MULTILINE)
    if match is None:
        raise BenchError(f"no Total in `show memory`:\n{out}")
    return round(float(match[1]) * _UNITS[match[2]], 1)


def nft_lines(ns: str) -> int:
    done = netns.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"])
    return len(done.stdout.splitlines())


def memory(st: LabState) -> dict[str, Any]:
    node = st.nodes[REFLECTOR]
    bird = daemon_pids(st, f"{REFLECTOR}/bird")[f"{REFLECTOR}/bird"]
    tunnels = daemon_pids(st, f"{REFLECTOR}/wireguard-go dn42-")
    peer_wg = {n: p for n, p in daemon_pids(st, "dn42-").items() if "wireguard-go" in n}
    peer_bird = {n: p for n, p in daemon_pids(st, "dn42-").items() if n.endswith("/bird")}

    def spread(pids: dict[str, int]) -> dict[str, Any]:
        values = [rss_kib(p) for p in pids.values()]
        if not values:
            return {"count": 0}
        private = [private_kib(p) for p in pids.values()]
        return {
            "count": len(values),
            "private_median_kib": statistics.median(private),
            "median_kib": statistics.median(values),
            "min_kib": min(values),
            "max_kib": max(values),
            "total_kib": sum(values),
        }

    return {
        "reflector_bird_rss_kib": rss_kib(bird),
        "reflector_bird_show_memory_kib": bird_memory_kib(node["bird_socket"]),
        "reflector_wireguard_go_dn42": spread(tunnels),
        "peer_wireguard_go": spread(peer_wg),
        "peer_bird": spread(peer_bird),
        "reflector_nft_ruleset_lines": nft_lines(node["netns"]),
        # Machine-wide (other jobs move it too): the kernel's slab, where the
        # namespaces, TUN devices, sockets and nftables live.
        "machine_slab_kib": machine_kib("Slab"),
    }


# --- checking the lab -----------------------------------------------------------


def dn42_rows(st: LabState) -> dict[str, tuple[str, str]]:
    """Reflector's DN42 sessions: name -> (its `show protocols` line, Info)."""
    out = birdc(st.nodes[REFLECTOR]["bird_socket"], "show", "protocols")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("dn42_")}
    return {
        p.name: (lines[p.name], p.info)
        for p in parse_protocols(out)
        if p.proto == "BGP" and p.name.startswith("dn42_")
    }


def established_at(protocol: str, st: LabState, wall: float) -> float:
    """Seconds from `wall` (time.time()) to the protocol's Since (BIRD prints the
    time of day, local time, with milliseconds)."""
    line = dn42_rows(st)[protocol][0]
    since = line.split()[4]
    day = time.strftime("%Y-%m-%d", time.localtime(wall))
    moment = time.mktime(time.strptime(f"{day} {since.split('.')[0]}", "%Y-%m-%d %H:%M:%S"))
    fraction = float("0." + since.split(".")[1]) if "." in since else 0.0
    return moment + fraction - wall


def networks(socket: str, protocol: str, table: str) -> set[str]:
    out = birdc(socket, "show", "route", "table", table, "protocol", protocol)
    return {
        line.split()[0]
        for line in out.splitlines()
        if line and not line[0].isspace() and "/" in line.split()[0]
    }


def check_routes(st: LabState, peers: int) -> list[str]:
    """What is wrong with the routes: each peer's two valid prefixes per family imported
    from it (172.21.<80+i>.0/24, 172.22.<80+i>.0/26; fd42:<4200+i>::/48 and :1::/64)
    and nothing else; our own space on every peer."""
    problems = []
    socket = st.nodes[REFLECTOR]["bird_socket"]
    for index in range(peers):
        name = dn42many.peer_name(index + 1)
        want4 = {f"172.21.{80 + index}.0/24", f"172.22.{80 + index}.0/26"}
        want6 = {f"fd42:{4200 + index}::/48", f"fd42:{4200 + index}:1::/64"}
        got4 = networks(socket, f"dn42_{name}", "master4")
        got6 = networks(socket, f"dn42_{name}", "master6")
        if got4 != want4 or got6 != want6:
            problems.append(f"{name}: imported {sorted(got4 | got6)}")
        peer_socket = st.nodes[f"dn42-{name}"]["bird_socket"]
        if networks(peer_socket, f"to_{REFLECTOR}", "master4") != {dn42many.OWN_V4}:
            problems.append(f"{name} lacks our {dn42many.OWN_V4}")
    return problems


def same_session(before: str, now: str) -> bool:
    """Whether two `show protocols` lines show one session that never went down: the
    same state and info, and the same Since give or take BIRD's own rounding (BIRD 2
    prints it from its monotonic clock's offset to wall time, which moves by a
    millisecond when the clock is slewed: seen in a run here)."""
    a, b = before.split(), now.split()
    if len(a) < 5 or len(b) < 5 or a[:4] != b[:4] or a[5:] != b[5:]:
        return False
    return abs(_seconds_of_day(a[4]) - _seconds_of_day(b[4])) < 0.5


def _seconds_of_day(since: str) -> float:
    hours, minutes, seconds = since.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def hold(st: LabState, seconds: float, interval: float, peers: int) -> dict[str, Any]:
    """Sample the sessions until `seconds` have passed: every sample must show all
    `peers` sessions Established with the Since of the first sample."""
    first = dn42_rows(st)
    bird = daemon_pids(st, f"{REFLECTOR}/bird")[f"{REFLECTOR}/bird"]
    cpu_before = cpu_seconds(bird)
    samples, bad = 0, []
    deadline = time.monotonic() + seconds
    while True:
        rows = dn42_rows(st)
        samples += 1
        down_now = [n for n, (_, info) in rows.items() if not info.startswith("Established")]
        flapped = {
            n: [first.get(n, ("", ""))[0], line]
            for n, (line, _) in rows.items()
            if not same_session(first.get(n, ("", ""))[0], line)
        }
        dead = [d.name for d in st.daemons if not daemons.alive(d)]  # PID and start time
        if len(rows) != peers or down_now or flapped or dead:
            bad.append(
                {"t": round(seconds - (deadline - time.monotonic()), 1), "down": down_now}
                | {"flapped": flapped, "dead": dead, "sessions": len(rows)}
            )
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return {
        "seconds": seconds,
        "samples": samples,
        "bad_samples": bad,
        "reflector_bird_cpu_s": round(cpu_seconds(bird) - cpu_before, 3),
    }


# --- one size ---------------------------------------------------------------------


def run_size(peers: int, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    plan = dn42many.write_plan(
        directory / f"plan-{peers}.toml", peers, most=dn42many.LAB_MOST_PEERS
    )
    down()
    started, wall = time.monotonic(), time.time()
    steps: list[tuple[float, str]] = []
    st = up(
        plan,
        timeout=args.timeout,
        progress=lambda message: steps.append((time.monotonic() - started, message)),
    )
    result: dict[str, Any] = {"peers": peers, "up_s": round(time.monotonic() - started, 2)}
    # The lab's last step before it waits: every daemon started.
    starting = [t for t, message in steps if "BIRD" in message]
    result["daemons_started_s"] = round(max(starting), 2) if starting else None
    try:
        sessions = bgp_sessions(st.nodes[REFLECTOR]["bird_socket"])
        since = [established_at(p.name, st, wall) for p in sessions if p.name.startswith("dn42_")]
        result["last_dn42_established_s"] = round(max(since), 2) if since else None
        dn42 = [p for p in sessions if p.name.startswith("dn42_")]
        result["established"] = sum(p.info.startswith("Established") for p in dn42)
        if result["established"] != peers:
            raise BenchError(f"{result['established']} of {peers} DN42 sessions Established")
        result["route_problems"] = check_routes(st, peers)
        result["hold"] = hold(st, args.hold, args.interval, peers) if peers else None
        result["memory"] = memory(st)
    finally:
        down()
    return result


def per_peer(base: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    peers = full["peers"]
    b, f = base["memory"], full["memory"]
    tunnels = f["reflector_wireguard_go_dn42"]
    return {
        "reflector_bird_rss_kib": round(
            (f["reflector_bird_rss_kib"] - b["reflector_bird_rss_kib"]) / peers, 1
        ),
        "reflector_bird_show_memory_kib": round(
            (f["reflector_bird_show_memory_kib"] - b["reflector_bird_show_memory_kib"]) / peers,
            1,
        ),
        "reflector_wireguard_go_rss_kib": tunnels["median_kib"],
        "reflector_wireguard_go_private_kib": tunnels["private_median_kib"],
        # Every peer is a namespace here, the reflector's tunnel and the peer's own
        # end: an upper bound of what one peer adds to a real reflector's kernel.
        "machine_slab_kib": round((f["machine_slab_kib"] - b["machine_slab_kib"]) / peers, 1),
        "reflector_nft_ruleset_lines": round(
            (f["reflector_nft_ruleset_lines"] - b["reflector_nft_ruleset_lines"]) / peers, 1
        ),
    }


def bird_version() -> str:
    done = subprocess.run(
        [location.bird_tool("bird"), "--version"], capture_output=True, text=True, check=False
    )
    return (done.stdout + done.stderr).strip().split()[-1]


def report(saved: dict[str, Any]) -> str:
    base, full, each = saved["baseline"], saved["result"], saved["per_peer"]
    fm, bm = full["memory"], base["memory"]
    held = full["hold"]
    rows: list[tuple[str, ...]] = [
        ("DN42 peers", "0", str(full["peers"]), ""),
        ("lab up → all Established, routes in kernels", f"{base['up_s']} s", f"{full['up_s']} s"),
        (
            "lab up → every daemon started",
            f"{base['daemons_started_s']} s",
            f"{full['daemons_started_s']} s",
        ),
        ("lab up → last DN42 session Established", "", f"{full['last_dn42_established_s']} s"),
        ("sessions Established", "", f"{full['established']} / {full['peers']}", ""),
        ("route problems", "", str(len(full["route_problems"])), ""),
        (
            f"hold {held['seconds']:.0f} s ({held['samples']} samples): bad samples",
            "",
            str(len(held["bad_samples"])),
            "",
        ),
        ("reflector BIRD CPU over the hold", "", f"{held['reflector_bird_cpu_s']} s", ""),
        (
            "reflector BIRD RSS",
            f"{bm['reflector_bird_rss_kib']} KiB",
            f"{fm['reflector_bird_rss_kib']} KiB",
            f"{each['reflector_bird_rss_kib']} KiB",
        ),
        (
            "reflector BIRD `show memory` total",
            f"{bm['reflector_bird_show_memory_kib']} KiB",
            f"{fm['reflector_bird_show_memory_kib']} KiB",
            f"{each['reflector_bird_show_memory_kib']} KiB",
        ),
        (
            "reflector wireguard-go RSS (one per tunnel; median, min-max)",
            "",
            f"{fm['reflector_wireguard_go_dn42']['median_kib']} KiB "
            f"({fm['reflector_wireguard_go_dn42']['min_kib']}-"
            f"{fm['reflector_wireguard_go_dn42']['max_kib']})",
            f"{each['reflector_wireguard_go_rss_kib']} KiB",
        ),
        (
            "reflector wireguard-go private memory (median)",
            "",
            f"{fm['reflector_wireguard_go_dn42']['private_median_kib']} KiB",
            f"{each['reflector_wireguard_go_private_kib']} KiB",
        ),
        (
            "kernel slab, whole machine (upper bound, noisy)",
            f"{bm['machine_slab_kib']} KiB",
            f"{fm['machine_slab_kib']} KiB",
            f"{each['machine_slab_kib']} KiB",
        ),
        (
            "reflector nftables ruleset",
            f"{bm['reflector_nft_ruleset_lines']} lines",
            f"{fm['reflector_nft_ruleset_lines']} lines",
            f"{each['reflector_nft_ruleset_lines']} lines",
        ),
    ]
    lines = [
        f"| BIRD {saved['bird']} | 0 peers | {full['peers']} peers | per peer |",
        "|---|--:|--:|--:|",
    ]
    lines += ["| " + " | ".join([*row, "", ""][:4]) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to watch the sessions")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=600.0, help="for `lab up`")
    parser.add_argument("--bird-dir", type=Path, help="directory with bird and birdc")
    parser.add_argument("--lab-dir", default=BENCH_LAB_DIR, help="the bench's own lab")
    parser.add_argument("--prefix", default=BENCH_PREFIX, help="its namespace prefix")
    parser.add_argument("--json", action="store_true", help="print the samples as JSON")
    parser.add_argument("--save", type=Path, help="also write the samples (JSON) here")
    parser.add_argument("--report", type=Path, help="print the table of a saved run")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if os.geteuid() != 0:
        print("error: the lab needs root; run it with sudo", file=sys.stderr)
        return 2
    if not 1 <= args.peers <= dn42many.LAB_MOST_PEERS:
        print(f"error: --peers is 1 to {dn42many.LAB_MOST_PEERS}", file=sys.stderr)
        return 2
    os.environ[location.LAB_DIR_ENV] = str(Path(args.lab_dir).resolve())
    os.environ[location.PREFIX_ENV] = location.validate_prefix(args.prefix, "--prefix")
    if args.bird_dir:
        os.environ[location.BIRD_DIR_ENV] = str(args.bird_dir.resolve())
    elif not os.environ.get(location.BIRD_DIR_ENV) and (BIRD3_DIR / "bird").exists():
        os.environ[location.BIRD_DIR_ENV] = str(BIRD3_DIR)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dn42-lab-scale-") as name:
        try:
            base = run_size(0, Path(name), args)
            full = run_size(args.peers, Path(name), args)
        except (BenchError, IbgpTunnelError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    saved = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "bird": bird_version(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "baseline": base,
        "result": full,
        "per_peer": per_peer(base, full),
    }
    if args.save:
        args.save.write_text(json.dumps(saved, indent=2) + "\n")
    print(json.dumps(saved, indent=2) if args.json else report(saved))
    failed = full["route_problems"] or full["hold"]["bad_samples"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
