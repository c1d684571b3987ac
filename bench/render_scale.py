"""How the Nix core scales with the number of clients of one reflector.

Run from the repository: `python bench/render_scale.py [--clients 250 500 1000 2000]`.
For each size it writes a plan with one reflector and N clients (each with its
own link, interface, port and announced /24, the DN42 sets imported), then
times, each in its own plain `nix-instantiate --eval --strict`:

  render    render (hostFromPlan plan reflector)   what the reflector deploys
  problems  problems (hostFromPlan plan reflector) the module's host assertions
  plan      planProblems plan                      what `check` and the module ask

and prints seconds (median of --reps runs), peak memory (max RSS of the
evaluator) and the evaluator's own counts of Nix function calls and thunks
(NIX_SHOW_STATS; the same on every machine, so they show linearity where
the seconds are noisy), each with its ratio to the smallest size, as
Markdown or --json. The goal (issue 20): every stage linear, 5,000 clients
within 5x the time and calls of 1,000, and 1,000 clients' planProblems +
render within 1 s.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "modules" / "lib"

STAGES = {
    "render": 'c.render (c.hostFromPlan plan "vps")',
    "problems": 'c.problems (c.hostFromPlan plan "vps")',
    "plan": "c.planProblems plan",
}


def plan_of(clients: int) -> dict[str, object]:
    """One reflector, `clients` clients, every name, port and subnet distinct."""

    def key(index: int) -> str:
        return base64.b64encode(index.to_bytes(32, "big")).decode()

    hosts: dict[str, object] = {
        "vps": {
            "role": "reflector",
            "router_id": "172.23.0.1",
            "public_key": key(1),
            "endpoint": "198.18.0.10",
            "uplink_interfaces": ["eth0"],
            "import_sets": ["dn42"],
            "kernel_export_sets": ["dn42"],
            "dn42_peers": {"peer1": {"asn": 4242421080, "neighbor": "172.20.42.1"}},
        }
    }
    links: dict[str, object] = {}
    for i in range(clients):
        name = f"c{i}"
        hosts[name] = {
            "role": "client",
            "router_id": f"172.24.{i // 256}.{i % 256}",
            "public_key": key(i + 2),
            "import_sets": ["dn42"],
            "kernel_export_sets": ["dn42"],
            "announce": {"ipv4": [f"100.{64 + i // 256}.{i % 256}.0/24"]},
        }
        base = 4 * i
        links[name] = {
            "reflector": "vps",
            "client": name,
            "interface": f"wg{i}",
            "port": 20000 + i,
            "ipv4": f"10.{base // 65536}.{base // 256 % 256}.{base % 256}/30",
            "ipv6": f"fd42:{i // 65536:x}:{i % 65536:x}::/64",
            "reflector_ipv4": f"10.{base // 65536}.{base // 256 % 256}.{base % 256 + 1}",
            "client_ipv4": f"10.{base // 65536}.{base // 256 % 256}.{base % 256 + 2}",
            "reflector_ipv6": f"fd42:{i // 65536:x}:{i % 65536:x}::1",
            "client_ipv6": f"fd42:{i // 65536:x}:{i % 65536:x}::2",
        }
    return {"asn": 4242420038, "hosts": hosts, "links": links}


def _command(plan_json: Path, stage: str, core: Path) -> list[str]:
    expression = (
        "{ core, planJson }: let c = import core; "
        "plan = builtins.fromJSON (builtins.readFile planJson); in "
        f"builtins.deepSeq ({STAGES[stage]}) true"
    )
    core_args = ["--argstr", "core", str(core), "--argstr", "planJson", str(plan_json)]
    return ["nix-instantiate", "--eval", "--strict", "--expr", expression, *core_args]


def measure(plan_json: Path, stage: str, core: Path = CORE) -> tuple[float, int]:
    """Seconds and the evaluator's peak RSS (KiB) for one stage."""
    command = _command(plan_json, stage, core)
    start = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max of all).
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            sys.exit(f"{stage} failed:\n{errors.read().decode(errors='replace')}")
    return seconds, usage.ru_maxrss


def count(plan_json: Path, stage: str, core: Path = CORE) -> dict[str, int]:
    """The evaluator's function calls and thunks for one stage (one more run,
    apart from the timed ones: writing the statistics takes time too)."""
    with tempfile.TemporaryDirectory(prefix="render-scale-stats-") as directory:
        stats = Path(directory) / "stats.json"
        environment = dict(os.environ, NIX_SHOW_STATS="1", NIX_SHOW_STATS_PATH=str(stats))
        result = subprocess.run(
            _command(plan_json, stage, core),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
            check=False,
        )
        if result.returncode != 0:
            sys.exit(f"{stage} failed:\n{result.stderr.decode(errors='replace')}")
        numbers = json.loads(stats.read_text())
    return {"calls": numbers["nrFunctionCalls"], "thunks": numbers["nrThunks"]}


def with_ratios(rows: list[dict[str, object]]) -> None:
    """Each row's seconds, calls and thunks over its stage's at the smallest size."""
    first: dict[object, dict[str, object]] = {}
    for row in rows:
        base = first.setdefault(row["stage"], row)
        for field in ("median_s", "calls", "thunks"):
            value, smallest = row[field], base[field]
            assert isinstance(value, (int, float)) and isinstance(smallest, (int, float))
            row[f"{field}_ratio"] = round(value / smallest, 2) if smallest else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument(
        "--core", type=Path, default=CORE, help="the Nix core to time (default: this checkout's)"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="render-scale-") as directory:
        for clients in sorted(args.clients):
            plan_json = Path(directory) / f"plan-{clients}.json"
            plan_json.write_text(json.dumps(plan_of(clients)))
            for stage in STAGES:
                samples = [measure(plan_json, stage, args.core) for _ in range(args.reps)]
                rows.append(
                    {
                        "clients": clients,
                        "stage": stage,
                        "seconds": [round(s, 3) for s, _ in samples],
                        "median_s": round(statistics.median(s for s, _ in samples), 3),
                        "max_rss_mib": round(max(m for _, m in samples) / 1024),
                        **count(plan_json, stage, args.core),
                    }
                )
    with_ratios(rows)
    if args.json:
        print(json.dumps({"machine": _machine(), "rows": rows}, indent=2))
        return
    print(f"<!-- {_machine()} -->")
    print("| clients | stage | median s | ratio | max RSS MiB | calls | ratio | thunks | ratio |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        print(
            f"| {row['clients']} | {row['stage']} | {row['median_s']} | {row['median_s_ratio']}"
            f" | {row['max_rss_mib']} | {row['calls']:,} | {row['calls_ratio']}"
            f" | {row['thunks']:,} | {row['thunks_ratio']} |"
        )


def _machine() -> str:
    nix = subprocess.run(["nix", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, {nix}"


if __name__ == "__main__":
    main()
