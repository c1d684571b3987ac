"""How long `lab up` of a generated plan (one reflector, N clients, one DN42 peer:
bench/render_scale.py's plan) waits after its last daemon started, and whether
the reflector's BIRD was in graceful-restart recovery meanwhile (issue 23, item 3).

Run as root from the repository:
  sudo .venv/bin/python bench/recovery_scale.py --clients 30 \
      [--runs 3] [--bird-dir .cache/bird/bird2/bin]

Each run brings the plan up in its own lab (--lab-dir, --prefix; never the
environment's lab), samples the reflector's `birdc show status` and its kernel
protocol's export state every 0.25 s, then takes the lab down. It prints per run:
  up          lab up → settled (every session Established, every kernel holding its routes)
  last        last daemon started → settled (what is not the lab's own start-up)
  recovery    samples in which the reflector reported graceful-restart recovery
  kernel DOWN seconds the reflector's kernel4 export state was DOWN after BIRD started
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from render_scale import plan_of  # noqa: E402

SETTLED = "all BGP sessions Established"
LAST_DAEMON = "BIRD for DN42 peer"


def toml_of(table: dict[str, object], prefix: str = "") -> list[str]:
    """The plan as TOML (scalars, lists of strings, nested tables: all it holds)."""
    import json

    lines: list[str] = []
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    lines += [f"{key} = {json.dumps(value)}" for key, value in scalars.items()]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += toml_of(value, f"{prefix}.{key}" if prefix else key)
    return lines


class Sampler(threading.Thread):
    """The reflector BIRD's recovery and kernel export state every 0.25 s."""

    def __init__(self, birdc: Path, socket: Path) -> None:
        super().__init__(daemon=True)
        self.birdc, self.socket = birdc, socket
        self.samples: list[tuple[float, bool, bool]] = []  # time, recovering, export down
        self.stop = threading.Event()

    def ask(self, *command: str) -> str:
        done = subprocess.run(
            [str(self.birdc), "-s", str(self.socket), *command],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout if done.returncode == 0 else ""

    def run(self) -> None:
        while not self.stop.is_set():
            if self.socket.exists():
                status = self.ask("show", "status")
                kernel = self.ask("show", "protocols", "all", "kernel4")
                if status:
                    recovering = "Graceful restart recovery in progress" in status
                    # BIRD 3 prints an export state; BIRD 2 exports once the channel is up.
                    down = "Export state:   DOWN" in kernel or "State:          UP" not in kernel
                    self.samples.append((time.monotonic(), recovering, down))
            time.sleep(0.25)


def one_run(
    plan: Path, lab_dir: str, prefix: str, bird_dir: Path, verbose: bool = False
) -> dict[str, float]:
    env = dict(
        os.environ,
        IBGP_TUNNEL_LAB_DIR=lab_dir,
        IBGP_TUNNEL_LAB_PREFIX=prefix,
        IBGP_TUNNEL_BIRD_DIR=str(bird_dir),
    )
    tool = REPO / ".venv" / "bin" / "ibgp-tunnel"
    socket = Path(lab_dir) / "nodes" / "vps" / "run" / "bird" / "bird.ctl"
    sampler = Sampler(bird_dir / "birdc", socket)
    sampler.start()
    start = time.monotonic()
    last = settled = None
    with subprocess.Popen(
        [str(tool), "lab", "up", str(plan), "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if verbose and not line.startswith(("│", "┃", "┏", "┡", "└")):
                print(f"  {time.monotonic() - start:6.2f} {line.rstrip()}")
            if LAST_DAEMON in line:
                last = time.monotonic()
            if SETTLED in line and settled is None:
                settled = time.monotonic()
    sampler.stop.set()
    sampler.join()
    subprocess.run([str(tool), "lab", "down"], env=env, capture_output=True, check=False)
    if child.returncode != 0 or last is None or settled is None:
        sys.exit(f"lab up failed (exit {child.returncode})")
    samples = sampler.samples
    down = sum(later[0] - sample[0] for sample, later in itertools.pairwise(samples) if sample[2])
    return {
        "up": settled - start,
        "last": settled - last,
        "recovery": float(sum(1 for s in samples if s[1])),
        "kernel_down": down,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bird-dir", type=Path, default=REPO / ".cache/bird/bird3/bin")
    parser.add_argument("--lab-dir", default="/run/ibgp-tunnel-bench-recovery")
    parser.add_argument("--prefix", default="ibgrc-")
    parser.add_argument("--verbose", action="store_true", help="print lab up's progress, timed")
    args = parser.parse_args()
    version = subprocess.run(
        [str(args.bird_dir / "bird"), "--version"], capture_output=True, text=True, check=False
    )
    print(f"{(version.stdout or version.stderr).strip()}, {args.clients} clients")
    with tempfile.TemporaryDirectory(prefix="recovery-scale-") as directory:
        plan = Path(directory) / "plan.toml"
        plan.write_text("\n".join(toml_of(plan_of(args.clients))) + "\n")
        print("| run | up | last daemon → settled | recovery samples | kernel4 export DOWN |")
        print("|--:|--:|--:|--:|--:|")
        for run in range(1, args.runs + 1):
            r = one_run(plan, args.lab_dir, args.prefix, args.bird_dir.resolve(), args.verbose)
            print(
                f"| {run} | {r['up']:.1f} s | {r['last']:.1f} s | {r['recovery']:.0f} "
                f"| {r['kernel_down']:.1f} s |"
            )


if __name__ == "__main__":
    main()
