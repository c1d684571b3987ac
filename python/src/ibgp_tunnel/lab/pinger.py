"""A ping that runs in a lab namespace while a fault happens, for the benches
(bench/two_reflectors.py, bench/chaos.py): every 10 ms, with wall-clock times
(-D) and a line for each ping not answered before the next is sent (-O), so
lab/pings.py can place every lost ping in a gap."""

from __future__ import annotations

import signal
import subprocess

from ibgp_tunnel.lab import netns, pings
from ibgp_tunnel.lab.state import LabState

INTERVAL = 0.01


class Pinger:
    def __init__(self, st: LabState, node: str, address: str, max_seconds: float = 120) -> None:
        self.node, self.address = node, address
        argv = ["ping", "-n", "-D", "-O", "-i", str(INTERVAL), "-W", "1"]
        argv += ["-w", str(int(max_seconds)), address]
        self.proc = subprocess.Popen(
            netns.ns_argv(st.nodes[node]["netns"], argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> pings.Account:
        """Stop it (SIGINT: ping prints its summary) and account for every ping."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        return pings.account(out, INTERVAL)
