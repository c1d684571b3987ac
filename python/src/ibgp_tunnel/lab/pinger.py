"""A ping that runs in a lab namespace while a fault happens, for the benches
(bench/two_reflectors.py, bench/chaos.py): every 10 ms, with wall-clock times
(-D) and a line for each ping not answered before the next is sent (-O), so
lab/pings.py can place every lost ping in a gap.

Bounded by a count (-c), not a deadline (-w): with -w, iputils ping exits at the
first ICMP error it gets back ("Destination Net Unreachable" from a router that
lost its route mid-fault), and every ping after that is never sent, so a window
reads as an outage that never ended (bench/chaos.py, issue #23). A ping that
ended before `stop` is refused, never counted."""

from __future__ import annotations

import signal
import subprocess

from ibgp_tunnel.lab import netns, pings
from ibgp_tunnel.lab.state import LabState

INTERVAL = 0.01


class Pinger:
    def __init__(self, st: LabState, node: str, address: str, max_seconds: float = 120) -> None:
        self.node, self.address = node, address
        self.output = ""  # ping's own output, once stopped (bench/chaos.py --trace keeps it)
        argv = ["ping", "-n", "-D", "-O", "-i", str(INTERVAL), "-W", "1"]
        argv += ["-c", str(int(max_seconds / INTERVAL)), address]
        self.proc = subprocess.Popen(
            netns.ns_argv(st.nodes[node]["netns"], argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> pings.Account:
        """Stop it (SIGINT: ping prints its summary) and account for every ping."""
        ended = self.proc.poll()
        if ended is None:
            self.proc.send_signal(signal.SIGINT)
        self.output, _ = self.proc.communicate(timeout=30)
        if ended is not None:
            raise pings.PingAccountError(
                f"ping {self.address} in {self.node} ended by itself (exit {ended}) before "
                f"the window did: {self.output.strip()[-300:]!r}"
            )
        return pings.account(self.output, INTERVAL)
