"""Two-reflector failover benchmark (issue #13), in the namespace lab.

Run as root from the repository: `python bench/two_reflectors.py [--reps 5] [--json]`.
It brings python/tests/plans/two-reflectors.toml up (two VPSes, each with a DN42
peer; home prefers vps1, office vps2) in a lab of its own, on BIRD 3 from
scripts/setup unless --bird-dir names another, and measures from home's LAN, which
pings an address behind both reflectors (the route-via-VPS probe in `inet`) every
10 ms:

  * for each failure of vps1 (BIRD killed, its tunnels blocked, its namespace cut
    off): the time until home's kernel routes the probe through vps2 (read with
    `ip route`, no BIRD involved), the longest gap between ping replies, and pings
    lost;
  * for home's tunnel to vps2 alone blocked (both reflectors up, linked to each
    other): the time until home routes a prefix only vps2's DN42 peer announces
    through vps1 (and on over the reflectors' tunnel), and pings to it lost;
  * for `systemctl restart bird` (graceful: `birdc graceful restart`, `bird -R`) of
    either reflector: pings lost from both LANs (target 0);
  * for the same on the client office: pings lost from home's LAN to office's.

`--setting bfd-graceful` or `--setting llgr` replaces the failover lines of the
sessions with an alternative path (`bfd on`: routes dropped at BFD down) with `bfd
graceful` and a 5 s restart time (the single-reflector setting), or with long-lived
stale routes (`bfd graceful`, graceful restart time 0, LLGR: kept, ranked below every
fresh route), to show what each would do. Nothing leaves the lab's namespaces.

Pings are counted by ICMP sequence number (lab/pings.py): every lost ping sits in a
gap, and a window ends only after the lab is settled again (every session
Established, every kernel on its expected paths, no graceful restart running, BFD
Up, each kernel protocol in step with its kernel: lab/status.py) plus a margin; a
window that ends inside an outage is an error, not a sample. `--lab-dir` and
`--prefix` give the bench a lab of its own beside another helper's.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import faults, isolate, location, netns, pings
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.pinger import Pinger
from ibgp_tunnel.lab.reflectors import expected_paths, kernel_paths
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import sessions_established
from ibgp_tunnel.lab.topology import Topology, build_topology
from ibgp_tunnel.lab.up import node_dir, reconfigure_bird, up

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "python" / "tests" / "plans" / "two-reflectors.toml"
BENCH_LAB_DIR = "/run/ibgp-tunnel-bench-2r-lab"
BENCH_PREFIX = "ibgb2-"
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"
CLIENTS = ("home", "office")
SETTLE_TIMEOUT = 120.0
# After everything is settled, the window stays open this long, so a loss that
# starts late (a kernel written after the sessions came back) is still inside it.
MARGIN = 1.0
PROBE_PREFIX = "104.16.0.0/13"


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """The lab did not reach a state the benchmark needs."""


def wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise BenchError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.01)
    return time.monotonic() - start


class Lab:
    def __init__(self, st: LabState, plan: dict[str, Any], topo: Topology) -> None:
        self.st, self.plan, self.topo = st, plan, topo
        # The core's route model, as `up` rendered it.
        self.artifacts = saved_artifacts(Path(st.lab_dir))
        self.probe = topo.probes["vps1"][0]

    def whole(self) -> bool:
        return all(
            kernel_paths(self.st, c) == expected_paths(self.plan, self.artifacts, c)
            for c in CLIENTS
        )

    def wait_whole(self) -> None:
        wait(self.whole, SETTLE_TIMEOUT, "every route back on its preferred tunnel")
        wait(lambda: sessions_established(self.st)[0], SETTLE_TIMEOUT, "every session up")
        for c in CLIENTS:
            wait(lambda c=c: self.ping(c), SETTLE_TIMEOUT, f"lan-{c} reaches the probe")

    def ping(self, client: str, target: str | None = None) -> bool:
        argv = ["ping", "-n", "-c", "1", "-W", "1", target or self.probe]
        proc = netns.run(netns.ns_argv(self.st.nodes[f"lan-{client}"]["netns"], argv), check=False)
        return proc.returncode == 0


def failover(
    lab: Lab,
    fail: Callable[[], None],
    repair: Callable[[], None],
    *,
    target: str | None = None,
    prefix: str = PROBE_PREFIX,
    to: str = "wg-home2",
) -> dict[str, float]:
    """home's LAN pings `target` (the route-via-VPS probe) while `fail` acts: the time
    until home's kernel routes `prefix` through `to`, the longest gap, pings lost."""
    lab.wait_whole()
    pinger = Pinger(lab.st, "lan-home", target or lab.probe)
    time.sleep(0.5)
    fail()
    try:
        switched = wait(
            lambda: kernel_paths(lab.st, "home").get(prefix) == to,
            60,
            f"home routes {prefix} through {to}",
        )
        wait(lambda: lab.ping("home", target), SETTLE_TIMEOUT, "home reaches the target again")
        time.sleep(1.5)
    finally:
        acc = pinger.stop()
        repair()
    return {"route_switch_s": switched, **measured(acc)}


def measured(acc: pings.Account) -> dict[str, float]:
    """Pings lost and the longest gap, from sequence numbers; refused when the window
    ended inside an outage (the bench's fault, not a number)."""
    if acc.open_end:
        raise BenchError(f"the window ended inside an outage: {acc.gaps[-1]}")
    return {"pings_lost": acc.lost, "longest_gap_s": acc.longest_gap_s, "gaps": len(acc.gaps)}


def client_link_cut(lab: Lab) -> dict[str, float]:
    """home's tunnel to vps2 blocked, both reflectors up and linked: home pings an
    address only vps2's DN42 peer announces, which it routes through vps2 directly
    until then and through vps1 and on over the reflectors' own tunnel after."""
    lab.wait_whole()
    peer = next(p for p in lab.topo.dn42_peers if p.reflector == "vps2")
    prefix = peer.announce_ipv4[0]
    if kernel_paths(lab.st, "home").get(prefix) != "wg-home2":
        raise BenchError(f"home does not route {prefix} through vps2 to begin with")
    return failover(
        lab,
        lambda: faults.block_tunnel(lab.st, "home", "wg-home2"),
        lambda: faults.unblock_tunnel(lab.st, "home"),
        target=str(ipaddress.ip_network(prefix).network_address + 1),
        prefix=prefix,
        to="wg-home1",
    )


def graceful_restart(lab: Lab, host: str) -> dict[str, float]:
    lab.wait_whole()
    pingers = {c: Pinger(lab.st, f"lan-{c}", lab.probe) for c in CLIENTS}
    time.sleep(0.5)
    faults.restart_bird(lab.st, host)
    try:
        lab.wait_whole()
        time.sleep(MARGIN)
    finally:
        results = {c: p.stop() for c, p in pingers.items()}
    out: dict[str, float] = {}
    for c, acc in results.items():
        out |= {f"{c}_{key}": value for key, value in measured(acc).items()}
    return out


def client_restart(lab: Lab, host: str, other: str) -> dict[str, float]:
    """`systemctl restart bird` on a client: pings from the other client's LAN to its LAN."""
    lab.wait_whole()
    target = next(lan.ipv4 for lan in lab.topo.lan_clients if lan.router == host)
    pinger = Pinger(lab.st, f"lan-{other}", target)
    time.sleep(0.5)
    faults.restart_bird(lab.st, host)
    try:
        lab.wait_whole()
        time.sleep(MARGIN)
    finally:
        acc = pinger.stop()
    return measured(acc)


# The lines render/reflectors.nix gives a session with an alternative path, and what
# the comparison settings put there instead.
_OURS = "  bfd on;\n  graceful restart on;\n  graceful restart time 5;\n"
SETTINGS = {
    # The single-reflector setting: kept, and still preferred, for the restart time.
    "bfd-graceful": "  bfd graceful;\n  graceful restart on;\n  graceful restart time 5;\n",
    # Tried instead of ours: kept long-lived stale at once, ranked below fresh routes.
    "llgr": (
        "  bfd graceful;\n  graceful restart on;\n  graceful restart time 0;\n"
        "  long lived graceful restart on;\n  long lived stale time 15;\n"
    ),
}


def use_setting(lab: Lab, setting: str) -> None:
    for host in ("vps1", "vps2", *CLIENTS):
        conf = (node_dir(Path(lab.st.lab_dir), host) / "bird.conf").read_text()
        if _OURS not in conf:
            raise BenchError(f"{host}'s bird.conf has no session with the expected lines")
        reconfigure_bird(Path(lab.st.lab_dir), host, conf.replace(_OURS, SETTINGS[setting]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument("--bird-dir", type=Path, default=None)
    parser.add_argument(
        "--setting",
        choices=["ours", *SETTINGS],
        default="ours",
        help="sessions with an alternative path as rendered (ours: `bfd on`), or for "
        "comparison with `bfd graceful` and a 5 s restart time (the single-reflector "
        "setting) or with long-lived stale routes (`bfd graceful`, graceful restart time "
        "0, LLGR for 15 s)",
    )
    parser.add_argument("--only", nargs="*", help="run these cases only (kill, block, ...)")
    parser.add_argument("--lab-dir", default=BENCH_LAB_DIR, help="the bench lab's state directory")
    parser.add_argument("--prefix", default=BENCH_PREFIX, help="the bench lab's namespace prefix")
    args = parser.parse_args()
    bird = location.use_bench_lab(args.lab_dir, args.prefix, args.bird_dir, BIRD3_DIR)
    down()
    samples: dict[str, list[float]] = {}
    try:
        say(f"bringing the two-reflector lab up ({bird})")
        st = up(PLAN, timeout=SETTLE_TIMEOUT)
        plan = planfile.load(PLAN)
        lab = Lab(st, plan, build_topology(plan, args.prefix))
        if args.setting != "ours":
            use_setting(lab, args.setting)
        cases: dict[str, Callable[[], dict[str, float]]] = {
            "kill": lambda: failover(
                lab,
                lambda: faults.kill_bird(st, "vps1"),
                lambda: faults.start_bird(st, "vps1"),
            ),
            "block": lambda: failover(
                lab,
                lambda: faults.block_tunnel(st, "vps1"),
                lambda: faults.unblock_tunnel(st, "vps1"),
            ),
            "cut_off": lambda: failover(
                lab, lambda: isolate.cut_off(st, "vps1"), lambda: isolate.reconnect(st, "vps1")
            ),
            "client_link": lambda: client_link_cut(lab),
            "restart_vps1": lambda: graceful_restart(lab, "vps1"),
            "restart_vps2": lambda: graceful_restart(lab, "vps2"),
            "restart_office": lambda: client_restart(lab, "office", "home"),
        }
        if args.only:
            cases = {name: case for name, case in cases.items() if name in args.only}
        for rep in range(args.reps):
            for name, case in cases.items():
                result = case()
                say(f"{rep + 1}/{args.reps} {name}: {result}")
                for key, value in result.items():
                    samples.setdefault(f"{name}.{key}", []).append(value)
        lab.wait_whole()
    finally:
        down()
    if args.json:
        print(json.dumps({"bird": bird, "setting": args.setting, "samples": samples}))
    else:
        print(f"{bird} ({args.setting}), {args.reps} reps")
        print("| metric | median | max |")
        print("|---|---|---|")
        for key, values in samples.items():
            print(f"| {key} | {statistics.median(values):.3g} | {max(values):.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
