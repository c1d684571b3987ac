"""Network namespaces, veth pairs, addresses and commands run inside a namespace.

Plan hosts run their commands in a private mount namespace whose /run is the
host's own lab directory: wireguard-go's control socket path
(/run/wireguard/IFNAME.sock) is the same in every namespace, so two
`wg-ibgp` interfaces would otherwise collide, and plain `wg`/`birdc` inside
`lab exec` find this host's daemons.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ibgp_tunnel.command import run_command
from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.topology import Address, Route

# `mount -n`: do not write /run/mount/utab, which would outlive the lab.
_PRIVATE_RUN = 'mount -n --bind "$0" /run && exec "$@"'


def ns_argv(netns: str, argv: Sequence[str], run_dir: Path | None = None) -> list[str]:
    """The command line running `argv` in `netns` (with `run_dir` as its /run, if given)."""
    wrapper: list[str] = []
    if run_dir is not None:
        wrapper = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            _PRIVATE_RUN,
            str(run_dir),
        ]
    return ["ip", "netns", "exec", netns, *wrapper, *argv]


def run(
    argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise LabError quoting the command and its stderr."""
    return run_command(argv, LabError, input=input, check=check, timeout=timeout)


def ns_run(
    netns: str,
    argv: Sequence[str],
    *,
    run_dir: Path | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    return run(ns_argv(netns, argv, run_dir), input=input, check=check, timeout=timeout)


def list_netns() -> set[str]:
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def add_netns(name: str) -> None:
    run(["ip", "netns", "add", name])


def delete_netns(name: str) -> None:
    if name in list_netns():
        run(["ip", "netns", "delete", name])


def ip_batch(netns: str, commands: Sequence[str]) -> None:
    """Several `ip` commands in one process (`ip -n NS -batch -`): fewer forks, faster up."""
    if commands:
        run(["ip", "-n", netns, "-batch", "-"], input="\n".join(commands) + "\n")


def sysctl(netns: str, values: dict[str, int | str]) -> None:
    if values:
        run(ns_argv(netns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())]))


def address_command(ifname: str, address: Address) -> str:
    """`ip` batch line adding an address; IPv6 without DAD (else unusable for ~2 s)."""
    version = ipaddress.ip_interface(address.cidr).version
    peer = f" peer {address.peer}" if address.peer else ""
    nodad = " nodad" if version == 6 else ""
    return f"address add {address.cidr}{peer} dev {ifname}{nodad}"


def route_command(route: Route) -> str:
    # `-4`/`-6` are not allowed inside a batch: spell the default route per family.
    v6 = ipaddress.ip_address(route.via).version == 6
    dest = ("::/0" if v6 else "0.0.0.0/0") if route.dest == "default" else route.dest
    return f"route replace {dest} via {route.via}"


def add_veth(netns_a: str, name_a: str, netns_b: str, name_b: str) -> None:
    """A veth pair created inside `netns_a` with its peer moved straight into `netns_b`:
    no end ever appears in the root namespace."""
    run(
        [
            "ip",
            "-n",
            netns_a,
            "link",
            "add",
            name_a,
            "type",
            "veth",
            "peer",
            "name",
            name_b,
            "netns",
            netns_b,
        ]
    )


def flush_conntrack(netns_name: str) -> None:
    """Forget every tracked flow in the namespace (see ibgp_tunnel.lab.conntrack)."""
    run(["ip", "netns", "exec", netns_name, sys.executable, "-m", "ibgp_tunnel.lab.conntrack"])
