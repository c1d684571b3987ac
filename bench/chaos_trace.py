"""Evidence for bench/chaos.py's violations (`--trace DIR`): what each host's kernel,
BIRD and WireGuard did around every fault, on one wall clock.

Written to DIR:
  events.log        faults, repairs, "whole", and every change the sampler saw: a
                    host's kernel routes (prefix -> device), its BGP protocols'
                    state, its BFD sessions, its WireGuard peers' latest handshakes
  fault-N-NAME.ping the raw `ping -D -O` output of each fault's pingers
  NODE-bird.log     each BIRD's own log: the lab's bird.conf files get `log stderr
                    all` and `debug protocols { states, routes, events }` at start
Tracing runs birdc and wg every sample, so it loads the machine a little more than
a plain run; a violation it shows is still one of the system's.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from ibgp_tunnel.lab import netns
from ibgp_tunnel.lab.faults import reload_bird
from ibgp_tunnel.lab.reflectors import kernel_paths
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import birdc, parse_protocols
from ibgp_tunnel.lab.up import node_dir

# BIRD 2 and 3 both take these; microseconds, so the log lines up with the samples.
DEBUG = (
    'log stderr all;\ntimeformat log "%F %T.%6f";\ndebug protocols { states, routes, events };\n'
)


def debug_config(text: str) -> str:
    """bird.conf with logging and protocol debugging switched on after `router id`,
    so it is the default of every protocol defined below it."""
    done, count = re.subn(
        r"^(router id [^;]+;\n)", lambda m: m[1] + DEBUG, text, count=1, flags=re.M
    )
    return done if count else DEBUG + text


class Trace:
    def __init__(self, directory: Path, st: LabState, hosts: tuple[str, ...]) -> None:
        self.dir, self.st, self.hosts = directory, st, hosts
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = (self.dir / "events.log").open("a")
        self.lock = threading.Lock()
        self.last: dict[str, str] = {}

    def event(self, message: str) -> None:
        with self.lock:
            self.file.write(f"{time.time():.3f} {message}\n")
            self.file.flush()

    def debug_birds(self) -> None:
        """Every BIRD of the lab (the DN42 peers' too) logs and debugs from now on."""
        for name, node in self.st.nodes.items():
            if not node.get("bird_socket"):
                continue
            conf = node_dir(Path(self.st.lab_dir), name) / "bird.conf"
            conf.write_text(debug_config(conf.read_text()))
            reload_bird(self.st, name)
        self.event("BIRD debugging on")

    def _changed(self, key: str, value: str) -> None:
        if self.last.get(key) != value:
            self.last[key] = value
            self.event(f"{key}: {value}")

    def sample(self, host: str, paths: dict[str, str]) -> None:
        node = self.st.nodes[host]
        self._changed(f"{host} kernel", " ".join(f"{p}>{d}" for p, d in sorted(paths.items())))
        try:
            protocols = parse_protocols(birdc(node["bird_socket"], "show", "protocols"))
            bgp = " ".join(f"{p.name}={p.info or p.state}" for p in protocols if p.proto == "BGP")
            self._changed(f"{host} bgp", bgp)
            bfd = birdc(node["bird_socket"], "show", "bfd", "sessions")
            rows = [line.split() for line in bfd.splitlines()]
            states = " ".join(f"{r[0]}={r[2]}" for r in rows if len(r) >= 3 and "." in r[0])
            self._changed(f"{host} bfd", states)
        except Exception as exc:  # BIRD restarting: say so, keep sampling
            self._changed(f"{host} bgp", f"birdc failed: {str(exc)[:80]}")
        shakes = netns.ns_run(
            node["netns"],
            ["wg", "show", "all", "latest-handshakes"],
            run_dir=Path(node["run_dir"]),
            check=False,
        ).stdout.split("\n")
        self._changed(
            f"{host} wg",
            " ".join(f"{f[0]}={f[2]}" for f in (s.split("\t") for s in shakes) if len(f) == 3),
        )

    def sample_all(self) -> None:
        for host in self.hosts:
            self.sample(host, kernel_paths(self.st, host))

    def ping(self, index: int, name: str, output: str) -> None:
        (self.dir / f"fault-{index}-{name}.ping").write_text(output)

    def keep_logs(self) -> None:
        """Copy every BIRD's log out of the lab dir before `down` removes it."""
        for name in self.st.nodes:
            log = node_dir(Path(self.st.lab_dir), name) / "bird.log"
            if log.exists():
                shutil.copy(log, self.dir / f"{name}-bird.log")
        self.file.close()
