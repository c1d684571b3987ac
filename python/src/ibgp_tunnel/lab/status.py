"""What the running lab says about itself: BIRD sessions, route counts, handshakes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel.lab import daemons, location, netns
from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.state import LabState


@dataclass(frozen=True)
class Protocol:
    name: str
    proto: str
    table: str
    state: str
    info: str


def parse_protocols(text: str) -> list[Protocol]:
    """Rows of `birdc show protocols`; columns are found from the header, because
    the "Since" column may hold a date and a time."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("Name ")), None)
    if header is None:
        return []
    info_at = lines[header].find("Info")
    rows = []
    for line in lines[header + 1 :]:
        fields = line.split()
        if len(fields) < 4:
            continue
        info = line[info_at:].strip() if 0 <= info_at < len(line) else ""
        rows.append(Protocol(fields[0], fields[1], fields[2], fields[3], info))
    return rows


_COUNT = re.compile(r"(\d+) of (\d+) routes for (\d+) networks in table (\S+)")


def parse_route_counts(text: str) -> dict[str, int]:
    """`birdc show route count` → networks per table."""
    return {m[4]: int(m[3]) for m in _COUNT.finditer(text)}


def birdc(socket: str, *command: str) -> str:
    """`birdc -s SOCKET COMMAND` from the root namespace (the socket is a plain file)."""
    return netns.run([location.bird_tool("birdc"), "-s", socket, *command], timeout=10).stdout


def bgp_sessions(socket: str) -> list[Protocol]:
    return [p for p in parse_protocols(birdc(socket, "show", "protocols")) if p.proto == "BGP"]


def route_counts(socket: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in ("master4", "master6"):
        counts |= parse_route_counts(birdc(socket, "show", "route", "table", table, "count"))
    return counts


def kernel_routes(ns: str, family: str) -> list[str]:
    """Routes BIRD installed in the namespace's kernel, as `ip route` prints them."""
    out = netns.run(["ip", "-n", ns, family, "route", "show", "proto", "bird"]).stdout
    return [line for line in out.splitlines() if line.strip()]


def wireguard_peers(ns: str, run_dir: str) -> list[dict[str, Any]]:
    """Per peer of every tunnel interface: endpoint and seconds since the last handshake."""
    out = netns.ns_run(ns, ["wg", "show", "all", "dump"], run_dir=Path(run_dir), check=False)
    peers = []
    now = time.time()
    for line in out.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 9:
            continue  # interface lines have 5 fields
        handshake = int(fields[5])
        peers.append(
            {
                "interface": fields[0],
                "public_key": fields[1],
                "endpoint": None if fields[3] == "(none)" else fields[3],
                "handshake_age": None if handshake == 0 else round(now - handshake),
                "rx_bytes": int(fields[6]),
                "tx_bytes": int(fields[7]),
            }
        )
    return peers


def node_status(name: str, node: dict[str, Any], state: LabState) -> dict[str, Any]:
    alive = {d.name: daemons.alive(d) for d in state.daemons if d.name.startswith(f"{name}/")}
    result: dict[str, Any] = {
        "name": name,
        "kind": node["kind"],
        "netns": node["netns"],
        "daemons": alive,
    }
    socket = node.get("bird_socket")
    if socket and alive.get(f"{name}/bird"):
        try:
            result["sessions"] = [asdict(p) for p in bgp_sessions(socket)]
            result["routes"] = route_counts(socket)
        except LabError as exc:
            result["error"] = str(exc)
    if node.get("wireguard"):
        result["wireguard"] = wireguard_peers(node["netns"], node["run_dir"])
    if node["kind"] in ("reflector", "client"):
        result["kernel_routes"] = {
            "ipv4": len(kernel_routes(node["netns"], "-4")),
            "ipv6": len(kernel_routes(node["netns"], "-6")),
        }
    return result


def lab_status(state: LabState) -> dict[str, Any]:
    return {
        "plan": state.plan,
        "complete": state.complete,
        "hosts": [node_status(name, node, state) for name, node in state.nodes.items()],
    }


# BGP's LLGR_STALE community (RFC 9494): routes of a lost neighbour kept, ranked last.
LLGR_STALE = "(65535, 6) ~ bgp_community"


def stale_routes(socket: str) -> int:
    """Routes BIRD keeps long-lived stale (links with an alternative path: a neighbour
    that went down and has not refreshed them yet)."""
    total = 0
    for table in ("master4", "master6"):
        out = birdc(socket, "show", "route", "table", table, "where", LLGR_STALE, "count")
        total += sum(int(m[1]) for m in _COUNT.finditer(out))
    return total


def recovering(socket: str) -> bool:
    """Whether a BIRD started with -R is still in graceful restart recovery: it holds
    back its kernel and BGP exports until every neighbour sent End-of-RIB."""
    return "recovery in progress" in birdc(socket, "show", "status")


def protocol_details(text: str) -> dict[str, str]:
    """`birdc show protocols all` -> protocol name -> its indented detail lines."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("Name "):
            continue
        if line[:1].strip():
            current = blocks.setdefault(line.split()[0], [])
        elif current is not None:
            current.append(line.strip())
    return {name: "\n".join(lines) for name, lines in blocks.items()}


_EXPORTED = re.compile(r"Routes:\s+\d+ imported, (?:\d+ filtered, )?(\d+) exported")
_BFD_STATES = ("Up", "Down", "Init", "AdminDown")


def bfd_not_up(text: str) -> list[str]:
    """`birdc show bfd sessions` -> 'address (state)' of every session that is not Up."""
    return [
        f"{fields[0]} ({fields[2]})"
        for fields in (line.split() for line in text.splitlines())
        if len(fields) >= 3 and fields[2] in _BFD_STATES and fields[2] != "Up"
    ]


def bird_routes_in_kernel(ns: str) -> int:
    """Routes BIRD installed in the namespace's kernel: one per prefix (a multipath
    route's nexthop lines are part of it), both families."""
    return sum(
        1 for family in ("-4", "-6") for line in kernel_routes(ns, family) if line[:1].strip()
    )


def lingering(socket: str, ns: str | None) -> list[str]:
    """What a fault can leave behind after every session is Established again, and
    what made later bench cases slower than the first (issue #23): a neighbour's
    graceful restart still running on this side (its routes stale until its
    End-of-RIB), a BFD session not Up (the next BFD down would cost a session), and
    a kernel protocol out of step with the kernel (routes a killed BIRD left, or
    exports not written yet)."""
    found = []
    protocols = parse_protocols(birdc(socket, "show", "protocols"))
    details = protocol_details(birdc(socket, "show", "protocols", "all"))
    for name, text in details.items():
        if name.endswith(COLLECTOR):
            continue
        if "Neighbor graceful restart active" in text:
            found.append(f"{name}: neighbour's graceful restart running (stale routes)")
        if "LL stale timer" in text:
            found.append(f"{name}: long-lived stale timer running")
    bfd = any(p.proto == "BFD" for p in protocols)
    if bfd and (down := bfd_not_up(birdc(socket, "show", "bfd", "sessions"))):
        found.append("BFD not Up: " + ", ".join(down))
    if ns is not None:
        kernel = [p.name for p in protocols if p.proto == "Kernel"]
        exported = sum(int(m[1]) for k in kernel for m in _EXPORTED.finditer(details.get(k, "")))
        if kernel and (installed := bird_routes_in_kernel(ns)) != exported:
            found.append(f"kernel holds {installed} BIRD routes, BIRD exported {exported}")
    return found


# DN42's route collector session (the core's dn42Collector.collectorProtocol): the
# collector is beyond DN42, outside the lab, so nothing waits for it.
COLLECTOR = "dn42collector"


def sessions_established(state: LabState) -> tuple[bool, list[str]]:
    """Whether every BGP session of every BIRD is Established (and every BIRD is past
    graceful restart recovery, so routes flow, and holds no long-lived stale route,
    so every route is fresh; once its sessions are up, nothing `lingering` either),
    and the ones that are not."""
    waiting = []
    for name, node in state.nodes.items():
        socket = node.get("bird_socket")
        if not socket:
            continue
        try:
            sessions = bgp_sessions(socket)
            if recovering(socket):
                waiting.append(f"{name}: graceful restart recovery")
            elif stale := stale_routes(socket):
                waiting.append(f"{name}: {stale} long-lived stale routes")
            elif all(
                p.info.startswith("Established") or p.name.endswith(COLLECTOR) for p in sessions
            ):
                waiting += [f"{name}: {what}" for what in lingering(socket, node.get("netns"))]
        except LabError:
            waiting.append(f"{name}: BIRD not answering yet")
            continue
        waiting += [
            f"{name}/{p.name}: {p.info or p.state}"
            for p in sessions
            if not p.info.startswith("Established") and not p.name.endswith(COLLECTOR)
        ]
    return not waiting, waiting


def kernel_prefixes(ns: str) -> set[str]:
    """Every prefix BIRD has installed in the namespace's kernel, IPv4 and IPv6."""
    return {line.split()[0] for family in ("-4", "-6") for line in kernel_routes(ns, family)}


def kernels_hold(state: LabState, expected: dict[str, set[str]]) -> tuple[bool, list[str]]:
    """Whether every host's kernel holds the routes `expected` gives it, and what each lacks."""
    waiting = []
    for host, prefixes in expected.items():
        missing = prefixes - kernel_prefixes(state.nodes[host]["netns"])
        if missing:
            shown = ", ".join(sorted(missing)[:8]) + (" …" if len(missing) > 8 else "")
            waiting.append(f"{host}'s kernel lacks {len(missing)} route(s): {shown}")
    return not waiting, waiting


def settled(state: LabState, expected: dict[str, set[str]]) -> tuple[bool, list[str]]:
    """Every BGP session Established, every BIRD past recovery, every kernel holding
    its routes: BIRD 3 installs kernel routes a little after the sessions come up."""
    ok, waiting = sessions_established(state)
    if not ok:
        return ok, waiting
    return kernels_hold(state, expected)


def wait_for(
    condition: Callable[[], tuple[bool, list[str]]],
    timeout: float,
    progress: Callable[[str], None],
    what: str,
    interval: float = 0.25,
) -> None:
    """Poll `condition` until it holds or `timeout` passes; report changes via `progress`."""
    deadline = time.monotonic() + timeout
    last: list[str] | None = None
    while True:
        ok, pending = condition()
        if ok:
            return
        if pending != last:
            progress(f"waiting for {what}: " + "; ".join(pending))
            last = pending
        if time.monotonic() > deadline:
            raise LabError(f"{what} not reached within {timeout:.0f} s: " + "; ".join(pending))
        time.sleep(interval)
