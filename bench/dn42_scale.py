"""How the Nix core scales with the number of DN42 peers of one reflector.

Run from the repository: `.venv/bin/python bench/dn42_scale.py [--peers 25 50 100 200]`.
For each size it writes the plan of `ibgp_tunnel.lab.dn42many` (one reflector, one
client, N DN42 peers, each with its own WireGuard tunnel, PSK, link-local, /32 pair,
export set, link communities; ROA files on) and times, each in its own plain
`nix-instantiate --eval --strict` (the stages of bench/render_scale.py):

  plan      planProblems plan                      what `check` and the module ask
  problems  problems (hostFromPlan plan reflector) the module's host assertions
  render    render (hostFromPlan plan reflector)   what the reflector deploys

then `ibgp-tunnel check` of the plan as a TOML file (shape and rules, as a user
runs it) and `bird -p` of the rendered bird.conf (its ROA includes pointed at files with one
ROA per peer prefix, or a DN42 registry's with --registry) on each BIRD of
.cache/bird (BIRD 3 and 2). Prints the median seconds of --reps runs, peak memory
and the evaluator's function calls and thunks (with their ratio to the smallest
size: linear means the ratio follows the peers' ratio), as Markdown or --json.
The goal (issue 22, item 7): 100 peers' planProblems + render within 2 s.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ibgp_tunnel.lab.dn42many import plan_with_dn42_peers, write_plan
from ibgp_tunnel.lab.registry import Roa, registry_roas

from render_scale import STAGES, _command, _machine, count, measure, with_ratios

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "modules" / "lib"
BIRDS = {"bird3": REPO / ".cache/bird/bird3/bin/bird", "bird2": REPO / ".cache/bird/bird2/bin/bird"}
REFLECTOR = "vps"


def rendered_bird_conf(plan_json: Path, core: Path) -> str:
    command = _command(plan_json, "render", core)
    # The same evaluation as the timed one, printing bird.conf instead of `true`.
    command[4] = command[4].replace(
        f"builtins.deepSeq ({STAGES['render']}) true",
        f'(c.render (c.hostFromPlan plan "{REFLECTOR}")).birdConfig',
    )
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
    return str(json.loads(done.stdout))


def roa_line(roa: Roa) -> str:
    """A ROA as BIRD includes it; a registry is data from elsewhere, so its prefix must
    be one (a `route:` such as `1.2.3.0;include "/etc/shadow";/24` would otherwise
    become bird.conf syntax)."""
    try:
        prefix = ipaddress.ip_network(roa.prefix)
    except ValueError:
        sys.exit(f"--registry: route object {roa.prefix!r} is not a prefix; check the snapshot")
    return f"route {prefix} max {int(roa.max_length)} as {int(roa.asn)};"


def roa_files(directory: Path, peers: int, registry: Path | None) -> dict[str, Path]:
    """ROA includes by file name: the peers' own prefixes (as the lab's peers announce
    them), and a registry's route objects when given."""
    lines = {"dn42_roa4.conf": [], "dn42_roa6.conf": []}
    for index in range(peers):
        asn = 4242421101 + index
        lines["dn42_roa4.conf"].append(f"route 172.21.{(80 + index) % 256}.0/24 max 26 as {asn};")
        lines["dn42_roa6.conf"].append(f"route fd42:{4200 + index:x}::/48 max 64 as {asn};")
    if registry is not None:
        for family, name in (("ipv4", "dn42_roa4.conf"), ("ipv6", "dn42_roa6.conf")):
            lines[name] += [roa_line(r) for r in registry_roas(registry, family)]
    paths = {}
    for name, content in lines.items():
        paths[name] = directory / name
        paths[name].write_text("\n".join(content) + "\n")
    return paths


def local_includes(config: str, includes: dict[str, Path]) -> str:
    """bird.conf with its ROA includes (under /var/lib on a host) pointed at `includes`."""
    pattern = r'include "[^"]*/(dn42_roa[46]\.conf)";'
    return re.sub(pattern, lambda m: f'include "{includes[m[1]]}";', config)


def check_cli(plan_toml: Path) -> float:
    """`ibgp-tunnel check` as a user runs it: shape (JSON Schema, pydantic) and rules."""
    command = [str(Path(sys.executable).parent / "ibgp-tunnel"), "check", str(plan_toml)]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"ibgp-tunnel check {plan_toml} failed:\n{done.stdout}{done.stderr}")
    return seconds


def bird_parse(bird: Path, conf: Path) -> float:
    start = time.monotonic()
    done = subprocess.run([str(bird), "-p", "-c", str(conf)], capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{bird} -p {conf} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument("--core", type=Path, default=CORE, help="the Nix core to time")
    parser.add_argument("--registry", type=Path, help="a DN42 registry's data directory (ROAs)")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="dn42-scale-") as name:
        directory = Path(name)
        for peers in sorted(args.peers):
            plan_json = directory / f"plan-{peers}.json"
            plan_json.write_text(json.dumps(plan_with_dn42_peers(peers)))
            for stage in STAGES:
                samples = [measure(plan_json, stage, args.core) for _ in range(args.reps)]
                rows.append(
                    {
                        "peers": peers,
                        "stage": stage,
                        "seconds": [round(s, 3) for s, _ in samples],
                        "median_s": round(statistics.median(s for s, _ in samples), 3),
                        "max_rss_mib": round(max(m for _, m in samples) / 1024),
                        **count(plan_json, stage, args.core),
                    }
                )
            if args.core == CORE:  # the CLI checks with the core it was installed from
                plan_toml = write_plan(directory / f"plan-{peers}.toml", peers)
                samples = [check_cli(plan_toml) for _ in range(args.reps)]
                rows.append(
                    {
                        "peers": peers,
                        "stage": "ibgp-tunnel check",
                        "seconds": [round(s, 3) for s in samples],
                        "median_s": round(statistics.median(samples), 3),
                        "max_rss_mib": None,
                        "calls": 0,
                        "thunks": 0,
                    }
                )
            config = rendered_bird_conf(plan_json, args.core)
            includes = roa_files(directory, peers, args.registry)
            config = local_includes(config, includes)
            conf = directory / f"bird-{peers}.conf"
            conf.write_text(config)
            for bird_name, bird in BIRDS.items():
                if not bird.exists():
                    continue
                samples = [bird_parse(bird, conf) for _ in range(args.reps)]
                rows.append(
                    {
                        "peers": peers,
                        "stage": f"{bird_name} -p",
                        "seconds": [round(s, 3) for s in samples],
                        "median_s": round(statistics.median(samples), 3),
                        "max_rss_mib": None,
                        "calls": 0,
                        "thunks": 0,
                        "bird_conf_lines": config.count("\n"),
                    }
                )
    for row in rows:  # with_ratios keys the smallest size by stage
        row["clients"] = row["peers"]
    with_ratios(rows)
    totals = {
        peers: round(
            sum(
                float(str(r["median_s"]))
                for r in rows
                if r["peers"] == peers and r["stage"] in ("plan", "render")
            ),
            3,
        )
        for peers in sorted(args.peers)
    }
    if args.json:
        print(json.dumps({"machine": _machine(), "rows": rows, "plan+render": totals}, indent=2))
        return
    print(f"<!-- {_machine()} -->")
    print("| peers | stage | median s | ratio | max RSS MiB | calls | ratio | thunks | ratio |")
    print("|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        print(
            f"| {row['peers']} | {row['stage']} | {row['median_s']} | {row['median_s_ratio']}"
            f" | {_cell(row['max_rss_mib'])} | {_cell(row['calls'])} | {_cell(row['calls_ratio'])}"
            f" | {_cell(row['thunks'])} | {_cell(row['thunks_ratio'])} |"
        )
    for peers, total in totals.items():
        print(f"\n{peers} peers: planProblems + render {total} s (goal: 100 peers within 2 s)")


def _cell(value: object) -> str:
    """A number with thousands separators; nothing for what BIRD rows do not have."""
    if not value:
        return ""
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
