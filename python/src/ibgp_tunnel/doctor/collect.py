"""Reading a host's live state: the commands doctor runs and their raw output.

Every command only reads (show, list, get); nothing here changes the host. A
`Target` says where the commands run: on this machine, or inside a lab host's
namespace (with its private /run, where wireguard-go's socket lives). The raw
outputs are kept as they are, so they can be saved (`--save-outputs`) and parsed
again in tests.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ibgp_tunnel.doctor.parse_wg import redact_dump
from ibgp_tunnel.doctor.readfile import read_config

TIMEOUT_SECONDS = 20
DEFAULT_BIRD_SOCKET = "/run/bird/bird.ctl"
# Where NixOS's bird.service reads its config (`bird -c /etc/bird/bird.conf`).
DEFAULT_BIRD_CONFIG = "/etc/bird/bird.conf"

# Key -> command line; birdc commands get `-s SOCKET` from the target.
BIRD_COMMANDS: dict[str, tuple[str, ...]] = {
    "bird_status": ("show", "status"),
    "bird_protocols": ("show", "protocols", "all"),
    "bird_route_count": ("show", "route", "count"),
    "bird_bfd": ("show", "bfd", "sessions"),
}
COMMANDS: dict[str, tuple[str, ...]] = {
    "wg": ("wg", "show", "all", "dump"),
    "ip_route4": ("ip", "-j", "-4", "route", "show", "table", "main"),
    "ip_route6": ("ip", "-j", "-6", "route", "show", "table", "main"),
    "ip_addr": ("ip", "-j", "address", "show"),
    "ip_link": ("ip", "-j", "link", "show"),
    "nft": ("nft", "-j", "list", "ruleset"),
    "sysctl": ("sysctl", "-a", "--pattern", r"\.(forwarding|rp_filter|accept_ra)$"),
}
# The WireGuard dump read again once the liveness probes are done: its rx counters
# against the first read's say whether anything came back through each tunnel.
WG_AFTER = "wg_after"
# Drift (checks/drift.py): the config file BIRD runs from ("MTIME READ_AT" beside
# it) and our nftables table as nft prints it.
DRIFT_KEYS = {"bird_config", "bird_config_mtime", "nft_table"}
# Self-service peering's units, spool and last outcomes (doctor/autopeer.py
# `runtime`), a JSON document; only on a host with autopeer on.
AUTOPEER_KEY = "autopeer"
# The names saved outputs may have (they become file names).
KNOWN_KEYS = set(COMMANDS) | set(BIRD_COMMANDS) | DRIFT_KEYS | {WG_AFTER, AUTOPEER_KEY}
# Liveness probes: pings through each tunnel to the host at its other end, all
# tunnels at once, while the other reads run. Ping stops at the first reply (`-c 1`)
# or at `-w` PROBE_SECONDS, sending every PROBE_INTERVAL until then: a live tunnel
# costs one round trip, a dead one PROBE_SECONDS, however many tunnels the host has.
PROBE_INTERVAL = "0.2"  # the shortest interval ping allows a non-root user
PROBE_SECONDS = 2
# A Linux interface name as a probe may name it (what the core validates): never one
# of ping's options, never a path.
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,14}")
# At most this many pings at once (a reflector with hundreds of clients waits a
# little longer rather than forking hundreds of processes).
MAX_PARALLEL_PROBES = 64


def probe_argv(interface: str, address: str) -> tuple[str, ...]:
    """Ping `address` out of `interface` only: bound to the tunnel, so a reply that
    comes another way does not count."""
    return (
        "ping",
        "-n",
        "-q",
        "-c",
        "1",
        "-i",
        PROBE_INTERVAL,
        "-w",
        str(PROBE_SECONDS),
        "-I",
        interface,
        address,
    )


@dataclass(frozen=True)
class Output:
    """One command's result, as it ran."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error(self) -> str:
        """What went wrong, in the command's own words."""
        text = (self.stderr or self.stdout).strip()
        return text.splitlines()[-1] if text else f"exit status {self.returncode}"


class Target(Protocol):
    """Where the reads run."""

    def run(self, argv: Sequence[str]) -> Output: ...

    def birdc(self, command: Sequence[str]) -> Output: ...

    def describe(self) -> str: ...


def run_command(argv: Sequence[str]) -> Output:
    """Run a read-only command; a missing tool or a timeout becomes a failed Output."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        return Output(tuple(argv), 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return Output(tuple(argv), 124, "", f"did not answer within {TIMEOUT_SECONDS} s")
    return Output(tuple(argv), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class LocalTarget:
    """This machine, as root or as a user allowed to read these."""

    bird_socket: str = DEFAULT_BIRD_SOCKET
    birdc_binary: str = "birdc"
    bird_config: str = DEFAULT_BIRD_CONFIG

    def run(self, argv: Sequence[str]) -> Output:
        return run_command(argv)

    def birdc(self, command: Sequence[str]) -> Output:
        return run_command([self.birdc_binary, "-s", self.bird_socket, *command])

    def describe(self) -> str:
        return "this machine"


@dataclass(frozen=True)
class NamespaceTarget:
    """A lab host: its network namespace, its private /run, its BIRD socket."""

    name: str
    netns: str
    run_dir: str
    bird_socket: str
    birdc_binary: str = "birdc"
    # The lab's bird.conf, a plain file like the socket ("": not known).
    bird_config: str = ""

    def run(self, argv: Sequence[str]) -> Output:
        # Same wrapping as `lab exec`: the host's /run is its lab run dir.
        from ibgp_tunnel.lab.netns import ns_argv

        return run_command(ns_argv(self.netns, argv, Path(self.run_dir)))

    def birdc(self, command: Sequence[str]) -> Output:
        # The control socket is a plain file: reachable from the root namespace.
        return run_command([self.birdc_binary, "-s", self.bird_socket, *command])

    def describe(self) -> str:
        return f"lab host {self.name} (namespace {self.netns})"


@dataclass
class Snapshot:
    """Raw outputs of every read, keyed as in COMMANDS and BIRD_COMMANDS; `route_get`
    holds `ip -j route get ADDRESS` per WireGuard endpoint address."""

    outputs: dict[str, Output] = field(default_factory=dict)
    route_get: dict[str, Output] = field(default_factory=dict)
    # When it was read (unix time): handshake ages are measured from here.
    time: float = 0.0
    # Path MTU pings (doctor/pmtu_probe.py) keyed as parse_ping.probe_key; None: not
    # probed (a recording made before doctor probed).
    probes: dict[str, Output] | None = None
    # Tunnel interface -> the liveness probe's ping (between the "wg" and "wg_after"
    # reads). Older recordings have none: their liveness is not measured.
    liveness: dict[str, Output] = field(default_factory=dict)
    # DN42 peer with latency = "auto" -> `birdc eval <its class constant>`: the class
    # BIRD tags that peer's routes with now. Older recordings have none.
    latency: dict[str, Output] = field(default_factory=dict)

    def get(self, key: str) -> Output:
        found = self.outputs.get(key)
        if found is None:
            return Output((), 127, "", f"{key} was not read")
        return found


def read_bird_config(snapshot: Snapshot, path: str) -> None:
    """The file BIRD runs from (read in doctor's own mount namespace, as birdc talks
    to the socket), just before `show status`: the file's age and BIRD's time since
    its last reconfiguration are then measured at nearly the same moment."""
    found = read_config(path)
    argv = ("read", path)
    if found.text is None:
        snapshot.outputs["bird_config"] = Output(argv, 1, "", found.error)
        return
    snapshot.outputs["bird_config"] = Output(argv, 0, found.text, "")
    snapshot.outputs["bird_config_mtime"] = Output(
        ("stat", path), 0, f"{found.mtime} {found.read_at}\n", ""
    )


def _read_wg(target: Target) -> Output:
    output = target.run(COMMANDS["wg"])
    # The dump holds the private key and the PSKs: never keep them.
    return replace(output, stdout=redact_dump(output.stdout))


def collect(
    target: Target,
    endpoints: Sequence[str] = (),
    nft_table: Sequence[str] = (),
    liveness: Mapping[str, str] | None = None,
) -> Snapshot:
    """Run every read on `target`. `endpoints` are addresses whose path (the route
    towards them) matters for the MTU check; `nft_table` (family, name) is our table,
    listed for the drift check; `liveness` maps a tunnel interface to the address at
    its other end, pinged through it between two reads of WireGuard's counters (the
    liveness check)."""
    snapshot = Snapshot(time=time.time())
    liveness = liveness or {}
    workers = max(1, min(len(liveness), MAX_PARALLEL_PROBES))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pings: dict[str, Future[Output]] = {}
        for key, argv in COMMANDS.items():
            if key != "wg":
                snapshot.outputs[key] = target.run(argv)
                continue
            snapshot.outputs[key] = _read_wg(target)
            # The window opens with the first counters; the other reads run inside it.
            pings = {
                interface: pool.submit(target.run, probe_argv(interface, address))
                for interface, address in sorted(liveness.items())
            }
        if len(nft_table) == 2:
            snapshot.outputs["nft_table"] = target.run(("nft", "list", "table", *nft_table))
        config = getattr(target, "bird_config", "")
        if config:
            read_bird_config(snapshot, str(config))
        for key, command in BIRD_COMMANDS.items():
            snapshot.outputs[key] = target.birdc(command)
        for address in endpoints:
            snapshot.route_get[address] = target.run(["ip", "-j", "route", "get", address])
        for interface, ping in pings.items():
            snapshot.liveness[interface] = ping.result()
    if pings:
        snapshot.outputs[WG_AFTER] = _read_wg(target)
    return snapshot
