"""Helpers for the lab integration tests: prerequisites, probes and polling.

Conditions are waited for by polling against a deadline, never by fixed
sleeps: timings belong in benchmarks, not in tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from ibgp_tunnel.lab import location, netns
from ibgp_tunnel.lab.leaks import outside_sets as outside_sets
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.topology import Topology

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PLAN = REPO / "hosts" / "plan.toml"
# The example with ROA files instead of its RPKI over RTR (test_dn42_rtr.py keeps them twins).
EXAMPLE_ROA_FILES_PLAN = REPO / "python" / "tests" / "plans" / "example-roa-files.toml"
THREE_CLIENTS_PLAN = Path(__file__).resolve().parent / "plans" / "three-clients.toml"
TOOLS = (
    "ip",
    "nft",
    "wireguard-go",
    "wg",
    "unshare",
    "ping",
    "tracepath",
    "nix-instantiate",
)

T = TypeVar("T")
S = TypeVar("S")

# The tests' own lab: its own state directory and namespace names, so a lab the
# user has up (default /run/ibgp-tunnel-lab, ibgpt-*) is neither refused nor touched.
# Two test runs at once (two worktrees, say) each name their own with these variables.
TEST_LAB_DIR = os.environ.get("IBGP_TUNNEL_TEST_LAB_DIR") or "/run/ibgp-tunnel-test-lab"
TEST_PREFIX = location.validate_prefix(
    os.environ.get("IBGP_TUNNEL_TEST_LAB_PREFIX") or "ibgtt-", "IBGP_TUNNEL_TEST_LAB_PREFIX"
)
# The stand-in for a user's lab in test_lab_lifecycle.
USER_LAB_DIR = TEST_LAB_DIR + "-user"
USER_PREFIX = TEST_PREFIX[:-1] + "u-"
os.environ[location.LAB_DIR_ENV] = TEST_LAB_DIR
os.environ[location.PREFIX_ENV] = TEST_PREFIX
# BIRD 3 (what NixOS runs) unless IBGP_TUNNEL_BIRD_DIR names another BIRD.
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"
if not os.environ.get(location.BIRD_DIR_ENV) and (BIRD3_DIR / "bird").exists():
    os.environ[location.BIRD_DIR_ENV] = str(BIRD3_DIR)


@dataclass
class Lab:
    """A running lab as the tests see it: its state, plan, rendered artifacts, topology."""

    st: LabState
    plan: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]
    topo: Topology

    @property
    def lab_dir(self) -> Path:
        return Path(self.st.lab_dir)

    def ns(self, node: str) -> str:
        return self.st.nodes[node]["netns"]

    def lan(self, client: str) -> Any:
        return next(lan for lan in self.topo.lan_clients if lan.router == client)


def skip_reason() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, nftables, TUN)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    missing += [
        tool for tool in ("bird", "birdc") if shutil.which(location.bird_tool(tool)) is None
    ]
    if missing:
        return f"the lab needs {', '.join(missing)} (apt-get install bird2 wireguard-go ...)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun: wireguard-go cannot create its interface"
    return None


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `check` until it returns something truthy, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {result!r})")
        time.sleep(interval)


def in_node(
    st: LabState, node: str, argv: list[str], timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    record = st.nodes[node]
    return subprocess.run(
        netns.ns_argv(record["netns"], argv, Path(record["run_dir"])),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def birdc(st: LabState, node: str, *command: str) -> str:
    return subprocess.run(
        [location.bird_tool("birdc"), "-s", st.nodes[node]["bird_socket"], *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout


def ping(st: LabState, node: str, address: str, count: int = 1) -> bool:
    proc = in_node(st, node, ["ping", "-n", "-c", str(count), "-W", "1", address])
    return proc.returncode == 0


def tracepath_hops(st: LabState, node: str, address: str) -> dict[int, set[str]]:
    """Hop number -> addresses seen. `-l 1000` stays under the tunnel MTU, so no
    extra PMTU lines muddle the hops."""
    out = in_node(st, node, ["tracepath", "-n", "-l", "1000", "-m", "8", address]).stdout
    hops: dict[int, set[str]] = {}
    for m in re.finditer(r"^\s*(\d+):\s+(\S+)", out, re.MULTILINE):
        if m[2] != "[LOCALHOST]" and m[2] != "no":
            hops.setdefault(int(m[1]), set()).add(m[2])
    return hops


def bgp_networks(st: LabState, node: str, protocol: str, table: str) -> set[str]:
    """Networks in `table` whose best route came from `protocol`."""
    out = birdc(st, node, "show", "route", "table", table, "protocol", protocol)
    return {
        line.split()[0]
        for line in out.splitlines()
        if line and not line[0].isspace() and "/" in line.split()[0]
    }


def kernel_bird_routes(st: LabState, node: str, family: str) -> dict[str, str]:
    """prefix -> full `ip route` line of the routes BIRD installed."""
    # Not `show proto bird`: ip then leaves "proto bird" out of the lines.
    out = subprocess.run(
        ["ip", "-n", st.nodes[node]["netns"], family, "route", "show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split()[0]: line for line in out.splitlines() if " proto bird " in line}


_SERVER = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(15)
print("ready", flush=True)
conn, peer = s.accept()
print(peer[0], flush=True)
conn.close()
"""

_CLIENT = """
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
"""


def peer_address_seen(
    st: LabState, server: str, address: str, client: str, port: int = 18080
) -> str:
    """Connect from `client` to `address:port` served in `server`; return the source
    address the server saw (what NAT made of the client's address)."""
    record = st.nodes[server]
    proc = subprocess.Popen(
        netns.ns_argv(record["netns"], [sys.executable, "-c", _SERVER, address, str(port)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        done = in_node(st, client, [sys.executable, "-c", _CLIENT, address, str(port)])
        assert done.returncode == 0, f"connect {address}:{port} failed: {done.stderr}"
        out, _ = proc.communicate(timeout=10)
        return out.strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def conntrack_entries(st: LabState, node: str) -> list[str]:
    proc = in_node(st, node, ["cat", "/proc/net/nf_conntrack"])
    return proc.stdout.splitlines()


_DAEMON = re.compile(r"(^|[ /])(bird|wireguard-go)( |$)")


def clear_test_lab() -> None:
    """Remove a test lab an interrupted run left behind (only the tests' own)."""
    from ibgp_tunnel.lab.down import down

    assert location.lab_dir() == Path(TEST_LAB_DIR), "the tests must run in their own lab"
    down()


# The tests' labs: their own, and the stand-in for a user's in test_lab_lifecycle.
OUR_PREFIXES = (TEST_PREFIX, USER_PREFIX)


def _ours(name: str) -> bool:
    return name.startswith(OUR_PREFIXES)


def _other_labs_netns() -> set[int]:
    """Inodes of the namespaces other labs have up (a user's, another helper's), which
    may come and go while a test runs and are none of the test's business."""
    inodes = set()
    for path in Path("/run/netns").glob("*"):
        if not _ours(path.name):
            try:
                inodes.add(path.stat().st_ino)
            except OSError:
                continue
    return inodes


def _net_inode(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def machine_snapshot() -> dict[str, object]:
    """What the lab must leave as it found it: namespaces, daemons, /run, mounts,
    links and the nftables ruleset of the root namespace. Other labs that are up
    (other state directories, other namespace prefixes) are left out: they may start
    or stop meanwhile, and the tests never touch them."""

    def run(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout

    others = _other_labs_netns()
    # A zombie has exited; reaping it is its parent's (here PID 1's) business. By
    # command line, not name: a BIRD run through its own loader is named ld-linux-….
    # A daemon in another lab's namespace is that lab's; a leaked one of ours lives in
    # one of ours, or in a namespace that has lost its name.
    daemons = sorted(
        line
        for line in run("ps", "-eo", "pid=,stat=,args=").splitlines()
        if _DAEMON.search(line)
        and not line.split()[1].startswith("Z")
        and _net_inode(line.split()[0]) not in others
    )
    mounts = sorted(
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith("/run")
        and not (line.split()[4].startswith("/run/netns/") and not _ours(line.split()[4][11:]))
    )
    test_dirs = (Path(TEST_LAB_DIR).name, Path(USER_LAB_DIR).name)
    return {
        "netns": sorted(n for n in run("ip", "netns", "list").split() if _ours(n)),
        "daemons": daemons,
        "run": sorted(
            p.name
            for p in Path("/run").iterdir()
            if not p.name.startswith(("ibgp-tunnel-", *test_dirs)) or p.name in test_dirs
        ),
        "mounts": mounts,
        "links": sorted(
            line.split(":")[1].strip() for line in run("ip", "-o", "link").splitlines()
        ),
        "nft": run("nft", "list", "ruleset"),
    }


def kernel_prefixes(st: LabState, node: str) -> set[str]:
    """Every prefix BIRD installed in the node's kernel, IPv4 and IPv6."""
    return set(kernel_bird_routes(st, node, "-4")) | set(kernel_bird_routes(st, node, "-6"))


class Watch(Generic[S]):
    """Samples `sample(st, node)` for some nodes in a thread while a fault runs, so a
    test can say what they held *throughout*, not just at the end."""

    def __init__(
        self,
        st: LabState,
        nodes: tuple[str, ...],
        sample: Callable[[LabState, str], S],
        interval: float = 0.05,
    ) -> None:
        self.st = st
        self.nodes = nodes
        self.sample = sample
        self.interval = interval
        self.samples: dict[str, list[S]] = {node: [] for node in nodes}
        # Seconds since the watch began, one per sample.
        self.times: dict[str, list[float]] = {node: [] for node in nodes}
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for node in self.nodes:
                    self.samples[node].append(self.sample(self.st, node))
                    self.times[node].append(time.monotonic() - self.start)
                self._stop.wait(self.interval)
        except BaseException as exc:  # reported by __exit__, not lost in the thread
            self._error = exc

    def __enter__(self) -> Self:
        # The first sample before anything happens: a fault right after `with` may
        # show in the kernel before the thread's first turn.
        for node in self.nodes:
            self.samples[node].append(self.sample(self.st, node))
            self.times[node].append(time.monotonic() - self.start)
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._error is not None:
            raise AssertionError(f"sampling the kernel failed: {self._error}")
        if exc_type is not None:
            return
        # One more, now: the thread's last sample may predate what the test just
        # waited for, and a test asserts on the last sample as the end state.
        for node in self.nodes:
            self.samples[node].append(self.sample(self.st, node))
            self.times[node].append(time.monotonic() - self.start)


class KernelWatch(Watch[set[str]]):
    """The BIRD routes in some nodes' kernels, sampled throughout a fault."""

    def __init__(self, st: LabState, nodes: tuple[str, ...], interval: float = 0.05) -> None:
        super().__init__(st, nodes, kernel_prefixes, interval)

    def seen(self, node: str) -> set[str]:
        """Every prefix the node's kernel held at some sample."""
        return set().union(*self.samples[node]) if self.samples[node] else set()

    def missing(self, node: str, expected: set[str]) -> list[set[str]]:
        """For each sample lacking some of `expected`, what it lacked."""
        return [expected - sample for sample in self.samples[node] if not expected <= sample]


def run_doctor(
    host: str, lab_dir: str, prefix: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`ibgp-tunnel doctor --lab HOST --json` against the lab in `lab_dir`, as a user
    runs it (its own process)."""
    env = {**os.environ, location.LAB_DIR_ENV: lab_dir}
    if prefix is not None:
        env[location.PREFIX_ENV] = prefix
    return subprocess.run(
        [sys.executable, "-m", "ibgp_tunnel.cli", "doctor", "--lab", host, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block, and put back what was there (or
    nothing) after it, so a lab of a test's own never leaks into the next test."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def with_dn42_import_limit(plan_text: str, limit: int, peer: str = "dmz.dn42_peers.peer1") -> str:
    """The plan with a DN42 peer's own import limit (its import_limit; the
    sessions' [tuning] import_limit does not reach a peer that has its own)."""
    header = f"[hosts.{peer}]\n"
    assert header in plan_text, f"the plan has no {header.strip()}"
    return plan_text.replace(header, f"{header}import_limit = {limit}\n", 1)


@contextlib.contextmanager
def lab_up(
    plan_path: Path, lab_dir: str, prefix: str, *, timeout: float = 90, **env: str
) -> Iterator[Lab]:
    """A lab of a test's own (its directory and namespace prefix, beside the other
    lab tests'), up on the plan with the example's test secrets, and down again
    after the block whatever happened; extra environment variables for its life."""
    from ibgp_tunnel import planfile
    from ibgp_tunnel.lab.artifacts import saved_artifacts
    from ibgp_tunnel.lab.down import down
    from ibgp_tunnel.lab.topology import build_topology
    from ibgp_tunnel.lab.up import find_secrets_dir, up

    with environment(
        **{
            location.LAB_DIR_ENV: lab_dir,
            location.PREFIX_ENV: prefix,
            "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "test-age-key.txt"),
            **env,
        }
    ):
        down()
        try:
            plan = planfile.load(plan_path)
            secrets = find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
            st = up(plan_path, timeout=timeout, secrets_dir=secrets)
            topo = build_topology(plan, prefix)
            yield Lab(st, plan, saved_artifacts(Path(lab_dir)), topo)
        finally:
            down()
