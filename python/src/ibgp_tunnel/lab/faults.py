"""Faults for a running lab: cut the tunnel, restart or crash daemons, make the
DN42 peer misbehave.

Every function acts on the lab its state describes and keeps the state file
true: a restarted daemon replaces its old record in place, so `lab down` still
stops exactly what runs. Nothing here waits for the network to settle; callers
(tests, bench/) poll for what they expect.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.keys import public_key_of
from ibgp_tunnel.lab import daemons, dn42lab, firewall, location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.labkeys import LabKeys, read_installed_secret
from ibgp_tunnel.lab.peer import dn42_peer_bird_config, peer_protocol
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.status import birdc
from ibgp_tunnel.lab.topology import INET, Dn42Peer, build_topology
from ibgp_tunnel.lab.up import (
    apply_nft,
    launch_bird,
    node_dir,
    start_wireguard,
    unit_recovery,
)

# A table of its own, so the host firewall the lab copies from NixOS stays untouched.
FAULT_TABLE = "ibgpt-fault"
# The inet router's copy of its routes with a lowered MTU, looked up before main.
PATH_TABLE = 4242
PATH_RULE_PREF = 1000


# --- lookups ------------------------------------------------------------------------


def _node(st: LabState, host: str) -> dict[str, Any]:
    node = st.nodes.get(host)
    if node is None:
        raise LabError(f"no lab host {host!r}; the lab has: {', '.join(st.nodes)}")
    return node


def _daemon(st: LabState, name: str) -> tuple[int, daemons.Daemon]:
    for index, daemon in enumerate(st.daemons):
        if daemon.name == name:
            return index, daemon
    raise LabError(f"the lab runs no {name}")


def _replace_daemon(st: LabState, index: int, daemon: daemons.Daemon) -> None:
    # In place: `down` stops daemons in reverse start order (BIRD before its tunnel).
    st.daemons[index] = daemon
    st.save()


def _interfaces(st: LabState, host: str, interface: str | None) -> list[str]:
    interfaces = list(_node(st, host).get("wireguard", []))
    if not interfaces:
        raise LabError(f"{host} runs no WireGuard tunnel")
    if interface is None:
        return interfaces
    if interface not in interfaces:
        raise LabError(f"{host} has no tunnel {interface!r}; it has: {', '.join(interfaces)}")
    return [interface]


def graceful_restart(st: LabState, host: str) -> bool:
    """Whether `host`'s BIRD runs with graceful restart (and so restarts with -R)."""
    return bool(_node(st, host).get("graceful_restart", False))


# --- the tunnel ---------------------------------------------------------------------


def _ports(st: LabState, host: str, interface: str | None) -> str:
    """`host`'s WireGuard listen ports (of `interface`, else of every tunnel), as an
    nft set's elements."""
    artifacts = saved_artifacts(Path(st.lab_dir))[host]
    ports = sorted(
        {
            int(artifacts["wireguard"][name]["listenPort"])
            for name in _interfaces(st, host, interface)
        }
    )
    return ", ".join(str(port) for port in ports)


def block_tunnel(st: LabState, host: str, interface: str | None = None) -> None:
    """Drop `host`'s WireGuard packets both ways, like a provider's stateless filter:
    in the raw hook, before conntrack, so no tracked flow lets replies through."""
    listed = _ports(st, host, interface)
    body = (
        f"table inet {FAULT_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        f"    udp dport {{ {listed} }} drop\n"
        "  }\n"
        "  chain output {\n"
        "    type filter hook output priority raw; policy accept;\n"
        f"    udp sport {{ {listed} }} drop\n"
        "  }\n"
        "}\n"
    )
    _load_fault_table(st, host, body)


def block_provider(st: LabState, host: str, interface: str | None = None) -> None:
    """Drop `host`'s WireGuard packets both ways on the way, not at either end: in the
    `inet` namespace every tunnel crosses, as a provider's or cloud firewall in front
    of `host` would. Both hosts' own firewalls stay as they are."""
    body = (
        f"table inet {FAULT_TABLE} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority raw; policy accept;\n"
        f"    udp dport {{ {_ports(st, host, interface)} }} drop\n"
        f"    udp sport {{ {_ports(st, host, interface)} }} drop\n"
        "  }\n"
        "}\n"
    )
    _load_fault_table(st, INET, body)


def unblock_provider(st: LabState) -> None:
    """Undo `block_provider` (a no-op when nothing is blocked)."""
    _load_fault_table(st, INET, "")


def unblock_tunnel(st: LabState, host: str) -> None:
    """Undo `block_tunnel` (a no-op when nothing is blocked)."""
    _load_fault_table(st, host, "")


def _load_fault_table(st: LabState, host: str, body: str) -> None:
    node = _node(st, host)
    script = firewall.replace_table("inet", FAULT_TABLE, body)
    where = node_dir(Path(st.lab_dir), host)
    where.mkdir(parents=True, exist_ok=True)
    apply_nft(node["netns"], script, where / "fault.nft")


# --- the path between the hosts -----------------------------------------------------


def _inet_netns(st: LabState) -> str:
    return build_topology(planfile.load(Path(st.plan)), st.netns_prefix).nodes[INET].netns


def shrink_path_mtu(st: LabState, mtu: int, *, drop_icmp: bool = True) -> None:
    """Make the path between the hosts (the lab's inet router) carry packets of at most
    `mtu` bytes, as a PPPoE or DS-Lite leg on the way does, while every host's own
    links keep their MTU. With `drop_icmp`, the router's ICMP "fragmentation needed"
    and ICMPv6 "packet too big" are dropped, as a filtering middlebox drops them: a
    path MTU black hole. Route MTUs, not link MTUs: a veth silently drops what
    exceeds its MTU on receipt, where a router would answer with ICMP."""
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 576 <= mtu <= 65535:
        raise LabError(f"path MTU {mtu!r} is not a number of bytes from 576 to 65535")
    restore_path_mtu(st)
    ns = _inet_netns(st)
    for family in ("-4", "-6"):
        listed = netns.run(["ip", "-n", ns, "-j", family, "route", "show", "table", "main"])
        lines = []
        for route in json.loads(listed.stdout or "[]"):
            dst, dev = str(route.get("dst", "")), route.get("dev")
            if route.get("type", "unicast") != "unicast" or not dev or dst.startswith("fe80"):
                continue
            via = f" via {route['gateway']}" if route.get("gateway") else ""
            lines.append(f"route add {dst}{via} dev {dev} table {PATH_TABLE} mtu {mtu}")
        lines.append(f"rule add pref {PATH_RULE_PREF} lookup {PATH_TABLE}")
        netns.run(["ip", "-n", ns, family, "-batch", "-"], input="\n".join(lines) + "\n")
    if drop_icmp:
        drops = (
            "    icmp type destination-unreachable icmp code frag-needed drop\n"
            "    icmpv6 type packet-too-big drop\n"
        )
        body = (
            f"table inet {FAULT_TABLE} {{\n"
            "  chain output {\n"
            "    type filter hook output priority raw; policy accept;\n"
            f"{drops}"
            "  }\n"
            "  chain forward {\n"
            "    type filter hook forward priority raw; policy accept;\n"
            f"{drops}"
            "  }\n"
            "}\n"
        )
        script = firewall.replace_table("inet", FAULT_TABLE, body)
        apply_nft(ns, script, node_dir(Path(st.lab_dir), INET) / "fault.nft")


def restore_path_mtu(st: LabState) -> None:
    """Undo `shrink_path_mtu` (a no-op when the path is whole), and make the hosts
    forget the path MTUs they learnt meanwhile."""
    ns = _inet_netns(st)
    for family in ("-4", "-6"):
        for _ in range(8):  # one rule per shrink; more only if someone added them
            rule = ["ip", "-n", ns, family, "rule", "del", "pref", str(PATH_RULE_PREF)]
            if netns.run(rule, check=False).returncode != 0:
                break
        netns.run(["ip", "-n", ns, family, "route", "flush", "table", str(PATH_TABLE)], check=False)
    script = firewall.replace_table("inet", FAULT_TABLE, "")
    apply_nft(ns, script, node_dir(Path(st.lab_dir), INET) / "fault.nft")
    # What the hosts learnt from ICMP while the path was small (10 minutes, else).
    for node in st.nodes.values():
        for family in ("-4", "-6"):
            flush = ["ip", "-n", str(node["netns"]), family, "route", "flush", "cache"]
            netns.run(flush, check=False)


def installed_keys(st: LabState, plan: Mapping[str, Any]) -> LabKeys:
    """The keys `up` installed into the plan hosts' run dirs, read back, so a restarted
    daemon gets the very keys its peers expect (sops is not asked again)."""
    artifacts = saved_artifacts(Path(st.lab_dir))
    private: dict[str, str] = {}
    psks: dict[str, str] = {}
    tunnels = _dn42_tunnels(st)
    for host in plan.get("hosts", {}):
        run_dir = Path(_node(st, host)["run_dir"])
        rendered = artifacts[host]
        for name, spec in rendered["wireguard"].items():
            if (host, name) in tunnels:
                continue  # a DN42 tunnel: its own keys (lab/dn42lab.py)
            private[host] = read_installed_secret(run_dir, spec["privateKeyFile"])
            for peer in spec.get("peers", []):
                if peer.get("presharedKeyFile"):
                    link = _link_between(plan, host, peer["name"])
                    psks[link] = read_installed_secret(run_dir, peer["presharedKeyFile"])
    public = {host: public_key_of(key) for host, key in private.items()}
    sources = {host: str(_node(st, host).get("keys", "installed")) for host in private}
    return LabKeys(private, public, psks, sources)


def _dn42_tunnels(st: LabState) -> set[tuple[str, str]]:
    """(reflector, interface) of every DN42 tunnel the lab runs from the rendered config."""
    topo = build_topology(planfile.load(Path(st.plan)), st.netns_prefix)
    return {(p.reflector, p.tunnel.interface) for p in topo.dn42_peers if p.tunnel is not None}


def _link_between(plan: Mapping[str, Any], host: str, other: str) -> str:
    for name, link in plan.get("links", {}).items():
        if {link["reflector"], link["client"]} == {host, other}:
            return str(name)
    raise LabError(f"no link between {host} and {other} in the plan")


def restart_wireguard(st: LabState, host: str, interface: str | None = None) -> None:
    """Stop `host`'s wireguard-go (its interface, and every route over it, vanishes)
    and start it again with the rendered configuration: a fresh daemon that knows
    no roamed endpoint and no session, as after a reboot."""
    plan = planfile.load(Path(st.plan))
    artifacts = saved_artifacts(Path(st.lab_dir))[host]
    keys = installed_keys(st, plan)
    node = _node(st, host)
    lab_dir = Path(st.lab_dir)
    tunnels = _dn42_tunnels(st)
    for name in _interfaces(st, host, interface):
        index, old = _daemon(st, f"{host}/wireguard-go {name}")
        daemons.stop(old)
        spec = artifacts["wireguard"][name]
        if (host, name) in tunnels:
            topo = build_topology(plan, st.netns_prefix)
            dn42 = dn42lab.running(lab_dir, topo, saved_artifacts(lab_dir))
            log = node_dir(lab_dir, host) / f"wireguard-go-{name}.log"
            rundir = Path(node["run_dir"])
            new = dn42.start_reflector_tunnel(host, node["netns"], name, spec, rundir, log)
        else:
            new = start_wireguard(lab_dir, host, node["netns"], name, spec, plan, keys)
        _replace_daemon(st, index, new)


# --- BIRD ---------------------------------------------------------------------------


def _wait_exit(daemon: daemons.Daemon, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while daemons.alive(daemon):
        if time.monotonic() > deadline:
            raise LabError(f"{daemon.name} still runs {timeout:.0f} s after {what}")
        time.sleep(0.01)


def kill_bird(st: LabState, host: str) -> None:
    """SIGKILL `host`'s BIRD, as a crash: no Cease to neighbours, and the routes it
    installed stay in the kernel."""
    _, daemon = _daemon(st, f"{host}/bird")
    if daemons.alive(daemon):
        os.kill(daemon.pid, signal.SIGKILL)
    _wait_exit(daemon, 5, "SIGKILL")


def stop_bird(st: LabState, host: str, timeout: float = 30) -> None:
    """`birdc down`, NixOS's plain ExecStop: Cease to every neighbour, kernel routes removed."""
    _, daemon = _daemon(st, f"{host}/bird")
    birdc(_node(st, host)["bird_socket"], "down")
    _wait_exit(daemon, timeout, "birdc down")


def graceful_stop(st: LabState, host: str, timeout: float = 30) -> None:
    """`birdc graceful restart`, our ExecStop with graceful restart on: BIRD exits
    without Cease and leaves its kernel routes, so neighbours keep forwarding."""
    _, daemon = _daemon(st, f"{host}/bird")
    birdc(_node(st, host)["bird_socket"], "graceful", "restart")
    _wait_exit(daemon, timeout, "birdc graceful restart")


def start_bird(st: LabState, host: str, *, recovery: bool | None = None) -> None:
    """Start `host`'s BIRD again on its bird.conf; with -R as the NixOS unit would
    (graceful restart on and BIRD's routes in the kernel: `unit_recovery`), unless
    `recovery` says otherwise."""
    index, old = _daemon(st, f"{host}/bird")
    if daemons.alive(old):
        raise LabError(f"{old.name} (pid {old.pid}) still runs; stop it first")
    ns = _node(st, host)["netns"]
    if recovery is None:
        recovery = unit_recovery(ns, graceful_restart(st, host))
    new = launch_bird(Path(st.lab_dir), host, ns, recovery=recovery)
    _replace_daemon(st, index, new)


def crash_bird(st: LabState, host: str) -> None:
    """kill -9 and start again, as systemd's Restart= would after a crash."""
    kill_bird(st, host)
    start_bird(st, host)


def restart_bird(st: LabState, host: str) -> None:
    """`systemctl restart bird`: with graceful restart on, our unit (`birdc graceful
    restart`, then `bird -R`); else the plain unit (`birdc down`, then `bird`)."""
    if graceful_restart(st, host):
        graceful_stop(st, host)
    else:
        stop_bird(st, host)
    start_bird(st, host)


def reload_bird(st: LabState, host: str) -> None:
    """`birdc configure` on the running config, as a NixOS switch reloads BIRD."""
    out = birdc(_node(st, host)["bird_socket"], "configure")
    if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
        raise LabError(f"birdc configure on {host} did not reconfigure: {out.strip()}")


# --- the DN42 peer ------------------------------------------------------------------


def dn42_peer(st: LabState, node: str = "dn42") -> Dn42Peer:
    topo = build_topology(planfile.load(Path(st.plan)))
    for peer in topo.dn42_peers:
        if peer.node == node:
            return peer
    known = ", ".join(p.node for p in topo.dn42_peers) or "none"
    raise LabError(f"no DN42 peer runs on {node!r}; the lab's DN42 peers: {known}")


def set_dn42_session(st: LabState, enabled: bool, node: str = "dn42") -> None:
    """Take the DN42 peer's session to its reflector down (`birdc disable`) or up."""
    peer = dn42_peer(st, node)
    out = birdc(
        _node(st, node)["bird_socket"], "enable" if enabled else "disable", peer_protocol(peer)
    )
    if "enabled" not in out and "disabled" not in out:
        raise LabError(f"birdc on {node} did not switch {peer_protocol(peer)}: {out.strip()}")


def announce_extra_routes(st: LabState, ipv4: int, ipv6: int, node: str = "dn42") -> None:
    """Make the DN42 peer announce `ipv4` more IPv4 /24s and `ipv6` more IPv6 /48s
    (0, 0: only its usual routes), by rewriting its bird.conf and `birdc configure`."""
    peer = dn42_peer(st, node)
    conf = node_dir(Path(st.lab_dir), node) / "bird.conf"
    if peer.tunnel is not None:
        text = dn42lab.peer_bird_config(peer, extra_ipv4=ipv4, extra_ipv6=ipv6)
    else:
        text = dn42_peer_bird_config(peer, extra_ipv4=ipv4, extra_ipv6=ipv6)
    conf.write_text(text)
    netns.run([location.bird_tool("bird"), "-p", "-c", str(conf)])
    reload_bird(st, node)
