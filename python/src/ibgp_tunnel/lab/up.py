"""`lab up`: build the topology, apply the rendered artifacts, wait for BGP."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import (
    autopeerlab,
    daemons,
    dn42lab,
    dn42latency,
    firewall,
    labdir,
    location,
    netns,
    state,
)
from ibgp_tunnel.lab.artifacts import render_plan, save_artifacts
from ibgp_tunnel.lab.down import RUN_NETNS, down
from ibgp_tunnel.lab.errors import LabError, MissingToolError, NotRootError
from ibgp_tunnel.lab.labkeys import LabKeys, install_secret, lab_keys
from ibgp_tunnel.lab.peer import dn42_peer_bird_config
from ibgp_tunnel.lab.status import settled, wait_for
from ibgp_tunnel.lab.topology import (
    Address,
    Dn42Peer,
    Node,
    Topology,
    build_topology,
    expected_kernel_routes,
)
from ibgp_tunnel.paths import defaults

Progress = Callable[[str], None]
TOOLS = ("ip", "nft", "wireguard-go", "wg", "unshare", "sysctl")


def _quiet(_: str) -> None:
    pass


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError(
            "the lab needs root (network namespaces, nftables, TUN devices): run it with sudo"
        )


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if location.bird_dir() is None:  # else bird_dir() has checked its bird and birdc
        missing += [tool for tool in ("bird", "birdc") if shutil.which(tool) is None]
    if missing:
        raise MissingToolError(
            f"missing: {', '.join(missing)}. On Debian: apt-get install iproute2 nftables "
            "bird2 wireguard-go wireguard-tools util-linux procps"
        )


# --- per-node pieces (also used by the tests to break and repair a running lab) -------


def node_dir(lab_dir: Path, name: str) -> Path:
    return lab_dir / "nodes" / name


def run_dir(lab_dir: Path, name: str) -> Path:
    """Bound over /run for the node's commands: holds wireguard/ and bird/ sockets."""
    return node_dir(lab_dir, name) / "run"


def apply_nft(ns: str, script: str, path: Path) -> None:
    path.write_text(script)
    netns.run(netns.ns_argv(ns, ["nft", "-f", str(path)]))


def host_firewall_script(artifacts: Mapping[str, Any], **overrides: Any) -> str:
    """The NixOS firewall copy plus the rendered table; `overrides` replace
    FirewallInputs fields (a pitfall test drops the forward rules, say)."""
    inputs = firewall.inputs_from_artifacts(artifacts)
    if overrides:
        inputs = firewall.FirewallInputs(**{**inputs.__dict__, **overrides})
    nft = artifacts["nftables"]
    return firewall.host_ruleset(inputs, nft["ruleset"], nft["table"])


def firewall_script_for(artifacts: Mapping[str, Any], **overrides: Any) -> str:
    """The ruleset the lab loads on a plan host (see `host_firewall_script`)."""
    return host_firewall_script(artifacts, **overrides)


def bird_socket(lab_dir: Path, name: str) -> Path:
    """The node's BIRD control socket, in its run dir: `lab exec NODE -- birdc` (private
    /run) finds it at BIRD's default path /run/bird/bird.ctl."""
    return run_dir(lab_dir, name) / "bird" / "bird.ctl"


def start_bird(
    lab_dir: Path, name: str, ns: str, config: str, *, recovery: bool = False
) -> daemons.Daemon:
    """Write and parse the node's bird.conf, then start BIRD on it (see `launch_bird`)."""
    conf = node_dir(lab_dir, name) / "bird.conf"
    conf.write_text(dn42lab.lab_includes(lab_dir, name, config))
    # Parse first: a config error then reads as one, not as a daemon that died.
    netns.run([location.bird_tool("bird"), "-p", "-c", str(conf)])
    return launch_bird(lab_dir, name, ns, recovery=recovery)


def kernel_holds_bird_routes(ns: str) -> bool:
    """Whether the namespace's kernel holds routes a BIRD wrote (`proto bird`, any
    table): what a restarted BIRD has to recover. When `ip` cannot tell: yes."""
    for family in ("-4", "-6"):
        done = netns.run(
            ["ip", "-n", ns, family, "route", "show", "table", "all", "proto", "bird"], check=False
        )
        if done.returncode != 0 or done.stdout.strip():
            return True
    return False


def unit_recovery(ns: str, graceful_restart: bool) -> bool:
    """Whether the NixOS unit would start BIRD with -R: graceful restart on and
    routes a previous BIRD left in the kernel (modules/ibgp-tunnel/bird-start.nix).
    With nothing to recover, -R would hold every kernel route until each
    neighbour, a down one too, sent End-of-RIB or `graceful restart wait` ran out."""
    return graceful_restart and kernel_holds_bird_routes(ns)


def launch_bird(lab_dir: Path, name: str, ns: str, *, recovery: bool = False) -> daemons.Daemon:
    """BIRD in the foreground on the node's existing bird.conf; `recovery` adds -R
    (graceful restart recovery; `unit_recovery` says when the NixOS unit does)."""
    directory = node_dir(lab_dir, name)
    socket = bird_socket(lab_dir, name)
    socket.parent.mkdir(parents=True, exist_ok=True)
    # A killed BIRD leaves its socket behind; waiting for the new one must not see it.
    socket.unlink(missing_ok=True)
    argv = [
        location.bird_tool("bird"),
        "-f",
        "-c",
        str(directory / "bird.conf"),
        "-s",
        str(socket),
        "-P",
        str(socket.parent / "bird.pid"),
    ]
    if recovery:
        argv.append("-R")
    daemon = daemons.start(f"{name}/bird", netns.ns_argv(ns, argv), directory / "bird.log")
    try:
        _wait_path(socket, daemon)
    except LabError:
        daemons.stop(daemon)  # not in the state file yet
        raise
    return daemon


def reconfigure_bird(lab_dir: Path, name: str, config: str) -> None:
    """Replace a running BIRD's config (`birdc configure`), as a NixOS switch does."""
    conf = node_dir(lab_dir, name) / "bird.conf"
    conf.write_text(dn42lab.lab_includes(lab_dir, name, config))
    netns.run([location.bird_tool("bird"), "-p", "-c", str(conf)])
    out = netns.run(
        [location.bird_tool("birdc"), "-s", str(bird_socket(lab_dir, name)), "configure"]
    ).stdout
    if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
        raise LabError(f"birdc configure on {name} did not reconfigure: {out.strip()}")


def _wait_path(path: Path, daemon: daemons.Daemon, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not daemons.alive(daemon):
            raise LabError(f"{daemon.name} exited at start:\n{daemons.log_tail(daemon)}")
        if time.monotonic() > deadline:
            raise LabError(f"{daemon.name} did not create {path} within {timeout:.0f} s")
        time.sleep(0.02)


def _peer_link(plan: Mapping[str, Any], host: str, peer: str) -> str:
    for name, link in plan.get("links", {}).items():
        if {link["reflector"], link["client"]} == {host, peer}:
            return str(name)
    raise LabError(f"no link between {host} and {peer} in the plan")


def wg_set_argv(
    interface: str,
    spec: Mapping[str, Any],
    plan: Mapping[str, Any],
    host: str,
    keys: LabKeys,
    rundir: Path,
) -> list[str]:
    """`wg set` for one rendered interface; the lab's keys are installed at the rendered
    key paths inside the host's private /run, and peers get the lab's public keys."""
    private = install_secret(rundir, spec["privateKeyFile"], keys.private_keys[host])
    argv = ["wg", "set", interface, "private-key", private]
    if spec.get("listenPort") is not None:
        argv += ["listen-port", str(spec["listenPort"])]
    for peer in spec.get("peers", []):
        other = peer["name"]
        argv += ["peer", keys.public_keys[other]]
        if peer.get("presharedKeyFile"):
            psk = keys.psks[_peer_link(plan, host, other)]
            argv += ["preshared-key", install_secret(rundir, peer["presharedKeyFile"], psk)]
        if peer.get("endpoint"):
            argv += ["endpoint", str(peer["endpoint"])]
        argv += ["allowed-ips", ",".join(peer.get("allowedIPs", []))]
        if peer.get("persistentKeepalive"):
            argv += ["persistent-keepalive", str(peer["persistentKeepalive"])]
    return argv


def _mtu_words(spec: Mapping[str, Any]) -> str:
    """` mtu N` for a link whose plan sets its MTU (the core checked N); else nothing."""
    mtu = spec.get("mtu")
    if mtu is None:
        return ""
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 1280 <= mtu <= 9000:
        raise LabError(f"the rendered MTU {mtu!r} is not a number from 1280 to 9000")
    return f" mtu {mtu}"


def start_wireguard(
    lab_dir: Path,
    name: str,
    ns: str,
    interface: str,
    spec: Mapping[str, Any],
    plan: Mapping[str, Any],
    keys: LabKeys,
) -> daemons.Daemon:
    """wireguard-go in the foreground; then address, keys and peers, link up (this order)."""
    rundir = run_dir(lab_dir, name)
    argv = netns.ns_argv(ns, ["wireguard-go", "-f", interface], rundir)
    daemon = daemons.start(
        f"{name}/wireguard-go {interface}",
        argv,
        node_dir(lab_dir, name) / f"wireguard-go-{interface}.log",
    )
    try:
        _wait_path(rundir / "wireguard" / f"{interface}.sock", daemon)
        netns.ip_batch(
            ns, [netns.address_command(interface, Address(ip)) for ip in spec.get("ips", [])]
        )
        netns.ns_run(ns, wg_set_argv(interface, spec, plan, name, keys, rundir), run_dir=rundir)
        netns.ip_batch(ns, [f"link set {interface}{_mtu_words(spec)} up"])
    except LabError:
        # Not yet in the state file: stop it here, or `down` would never know of it.
        daemons.stop(daemon)
        raise
    return daemon


# --- the whole lab ----------------------------------------------------------------


def graceful_restart_on(plan: Mapping[str, Any], plain_tuning: bool = False) -> bool:
    """Whether the rendered sessions use graceful restart: the plan's [tuning] over
    defaults.toml, as hostFromPlan merges them (the plain tuning never does)."""
    if plain_tuning:
        return False
    tuning = defaults()["tuning"] | plan.get("tuning", {})
    return bool(tuning["graceful_restart"])


def _node_record(lab_dir: Path, node: Node, bird: bool, wireguard: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": node.kind,
        "netns": node.netns,
        "run_dir": str(run_dir(lab_dir, node.name)),
        "wireguard": wireguard,
    }
    if bird:
        record["bird_socket"] = str(bird_socket(lab_dir, node.name))
    return record


def _create_namespaces(st: state.LabState, topo: Topology, lab_dir: Path) -> None:
    taken = netns.list_netns() & {n.netns for n in topo.nodes.values()}
    if taken:
        raise LabError(
            f"namespaces {sorted(taken)} exist but are not this lab's; remove them "
            "(ip netns delete NAME) after checking nothing uses them"
        )
    for node in topo.nodes.values():
        netns.add_netns(node.netns)
        st.netns.append(node.netns)
        st.save()
        node_dir(lab_dir, node.name).mkdir(parents=True, exist_ok=True, mode=0o700)
        run_dir(lab_dir, node.name).mkdir(exist_ok=True)


def _configure_links(topo: Topology, artifacts: Mapping[str, Mapping[str, Any]]) -> None:
    for node in topo.nodes.values():
        values: dict[str, int | str] = {
            # New interfaces skip DAD: IPv6 addresses are usable at once.
            "net.ipv6.conf.all.accept_dad": 0,
            "net.ipv6.conf.default.accept_dad": 0,
        }
        if node.forwarding:
            values |= {"net.ipv4.conf.all.forwarding": 1, "net.ipv6.conf.all.forwarding": 1}
        netns.sysctl(node.netns, values)
        netns.ip_batch(
            node.netns,
            ["link set lo up"] + [f"address add {cidr} dev lo" for cidr in node.loopback],
        )
    for veth in topo.veths:
        a, b = topo.nodes[veth.a_node], topo.nodes[veth.b_node]
        netns.add_veth(a.netns, veth.a.name, b.netns, veth.b.name)
        for ns, iface in ((a.netns, veth.a), (b.netns, veth.b)):
            netns.ip_batch(
                ns,
                [netns.address_command(iface.name, addr) for addr in iface.addresses]
                + [f"link set {iface.name} up"],
            )
    for node in topo.nodes.values():
        # After the interfaces exist: the core's sysctls include per-interface
        # keys (accept_ra on the uplinks).
        rendered = artifacts.get(node.name, {}).get("sysctl", {})
        if rendered:
            netns.sysctl(node.netns, dict(rendered))
        netns.ip_batch(node.netns, [netns.route_command(r) for r in node.routes])


def _start_dn42_peer(st: state.LabState, lab_dir: Path, topo: Topology, peer: Dn42Peer) -> None:
    node = topo.nodes[peer.node]
    st.daemons.append(start_bird(lab_dir, node.name, node.netns, dn42_peer_bird_config(peer)))
    st.nodes[node.name] = _node_record(lab_dir, node, bird=True, wireguard=[])
    st.save()


def _start_dn42_tunnel_peer(
    st: state.LabState,
    lab_dir: Path,
    topo: Topology,
    peer: Dn42Peer,
    dn42: dn42lab.Dn42Lab,
    reflector_artifacts: Mapping[str, Any],
) -> None:
    node = topo.nodes[peer.node]
    rundir = run_dir(lab_dir, node.name)
    log = node_dir(lab_dir, node.name) / f"wireguard-go-{dn42lab.PEER_INTERFACE}.log"
    st.daemons.append(dn42.start_peer_tunnel(peer, node.netns, reflector_artifacts, rundir, log))
    st.save()
    st.daemons.append(start_bird(lab_dir, node.name, node.netns, dn42lab.peer_bird_config(peer)))
    st.nodes[node.name] = _node_record(lab_dir, node, bird=True, wireguard=[dn42lab.PEER_INTERFACE])
    st.save()


def find_secrets_dir(plan_path: Path, plan: Mapping[str, Any]) -> Path:
    """Where the plan's sops files are: secrets/ beside the plan's directory (the
    layout `ibgp-tunnel keys` writes), or secrets/test/ (the example's test keys)."""
    root = plan_path.parent.parent / "secrets"
    hosts = list(plan.get("hosts", {}))
    for candidate in (root, root / "test"):
        if any((candidate / f"{host}.yaml").is_file() for host in hosts):
            return candidate
    return root


def up(
    plan_path: Path,
    *,
    progress: Progress = _quiet,
    timeout: float = 60.0,
    lab_dir: Path | None = None,
    secrets_dir: Path | None = None,
    plain_tuning: bool = False,
) -> state.LabState:
    """Bring the plan's lab up (or leave an identical healthy one alone) and wait until
    it has settled: every BGP session Established and every host's kernel holding the
    routes the plan gives it (on timeout, the error says what is missing).
    `plain_tuning` runs the seed's plain sessions (no BFD, no graceful restart, BIRD's
    default timers) instead of the plan's tuning."""
    require_root()
    require_tools()
    lab_dir = lab_dir or location.lab_dir()
    plan_path = plan_path.resolve()
    tuning = "plain" if plain_tuning else "plan"
    prefix = location.netns_prefix()
    directory = location.bird_dir()
    bird_dir = None if directory is None else str(directory)
    existing = state.load(lab_dir)
    if existing is not None:
        if existing.bird_dir != bird_dir:
            raise LabError(
                f"a lab running the BIRD from {existing.bird_dir or 'PATH'} is up in {lab_dir}; "
                "run `ibgp-tunnel lab down` first"
            )
        if existing.netns_prefix != prefix:
            raise LabError(
                f"the lab in {lab_dir} names its namespaces {existing.netns_prefix}*, not "
                f"{prefix}*; run `ibgp-tunnel lab down` first, or give another lab directory"
            )
        if existing.plan != str(plan_path):
            raise LabError(f"a lab for {existing.plan} is up; run `ibgp-tunnel lab down` first")
        if existing.tuning != tuning:
            raise LabError(
                f"a lab of this plan with {existing.tuning} tuning is up; "
                "run `ibgp-tunnel lab down` first"
            )
        if existing.complete and healthy(existing):
            progress("the lab is up already")
            return existing
        progress("an earlier lab is incomplete: removing it first")
        down(lab_dir, progress=progress)
    elif labdir.marker_of(lab_dir) is not None:
        progress("an earlier lab stopped at its first step: removing it first")
        down(lab_dir, progress=progress)

    plan = planfile.load(plan_path)
    progress(f"rendering {plan_path}")
    artifacts = render_plan(plan_path, plan, plain_tuning=plain_tuning)
    topo = build_topology(plan, prefix)
    recovery = graceful_restart_on(plan, plain_tuning)

    # A fresh directory of its own (mode 0700, with the marker `down` checks).
    marker = labdir.create(lab_dir, prefix)
    st = state.LabState(
        plan=str(plan_path),
        lab_dir=str(lab_dir),
        tuning=tuning,
        netns_prefix=prefix,
        bird_dir=bird_dir,
        lab_id=marker.id,
    )
    if not RUN_NETNS.exists():
        st.created_paths.append(str(RUN_NETNS))
    st.save()
    # DN42 tunnels the module runs: their keys, and the ROA files bird.conf includes.
    secrets_dir = secrets_dir or find_secrets_dir(plan_path, plan)
    dn42 = dn42lab.Dn42Lab(lab_dir, topo, secrets_dir, registry=location.dn42_registry())
    dn42.prepare(artifacts)
    dn42latency.prepare(lab_dir, artifacts)
    save_artifacts(lab_dir, artifacts)

    progress(f"creating {len(topo.nodes)} namespaces")
    _create_namespaces(st, topo, lab_dir)
    _configure_links(topo, artifacts)

    keys = lab_keys(plan, secrets_dir)
    progress("keys: " + ", ".join(f"{h} {src}" for h, src in keys.sources.items()))
    for host in topo.plan_hosts:
        node = topo.nodes[host]
        progress(f"{host}: firewall, WireGuard, BIRD")
        script = firewall_script_for(artifacts[host])
        apply_nft(node.netns, script, node_dir(lab_dir, host) / "nftables.nft")
        interfaces = list(artifacts[host]["wireguard"])
        st.nodes[host] = _node_record(lab_dir, node, bird=True, wireguard=interfaces)
        st.nodes[host]["keys"] = keys.sources[host]
        st.nodes[host]["graceful_restart"] = recovery
        for interface, spec in artifacts[host]["wireguard"].items():
            if dn42.runs(host, interface):
                log = node_dir(lab_dir, host) / f"wireguard-go-{interface}.log"
                rundir = run_dir(lab_dir, host)
                daemon = dn42.start_reflector_tunnel(host, node.netns, interface, spec, rundir, log)
            else:
                daemon = start_wireguard(lab_dir, host, node.netns, interface, spec, plan, keys)
            st.daemons.append(daemon)
            st.save()
        if artifacts[host].get("dn42Rtr"):
            # As the NixOS units: the local RTR cache before BIRD.
            log = node_dir(lab_dir, host) / "stayrtr.log"
            rtr = artifacts[host]["dn42Rtr"]
            st.daemons.append(dn42.start_rtr_cache(host, node.netns, rtr, log))
            st.save()
        autopeer = autopeerlab.enabled(plan, host)
        if autopeer:
            # Its state (the include bird.conf names exists before BIRD starts),
            # the DN42 key its tunnels use, the spec the apply unit renders with.
            autopeerlab.prepare(lab_dir, host, plan_path, dn42, run_dir(lab_dir, host))
        # As the NixOS unit: with graceful restart on, BIRD starts with -R when
        # there is something to recover (never in fresh namespaces).
        bird = start_bird(
            lab_dir,
            host,
            node.netns,
            artifacts[host]["birdConfig"],
            recovery=unit_recovery(node.netns, recovery),
        )
        st.daemons.append(bird)
        st.save()
        if autopeer:
            table = str(artifacts[host]["nftables"]["table"])
            st.daemons.append(autopeerlab.start_apply(lab_dir, host, node.netns, table))
            st.save()
            web = autopeerlab.start_web(lab_dir, host, node.netns, plan["hosts"][host]["autopeer"])
            if web is not None:
                st.daemons.append(web)
                st.save()
    for peer in topo.dn42_peers:
        progress(f"{peer.node}: BIRD for DN42 peer {peer.name}")
        if peer.tunnel is not None:
            _start_dn42_tunnel_peer(st, lab_dir, topo, peer, dn42, artifacts[peer.reflector])
        else:
            _start_dn42_peer(st, lab_dir, topo, peer)
    for name, node in topo.nodes.items():
        st.nodes.setdefault(name, _node_record(lab_dir, node, bird=False, wireguard=[]))
    st.save()

    expected = {host: expected_kernel_routes(artifacts, host) for host in topo.plan_hosts}
    wait_for(lambda: settled(st, expected), timeout, progress, "BGP sessions and kernel routes")
    st.complete = True
    st.save()
    progress("all BGP sessions Established, every kernel holds its routes")
    for warning in st.warnings:
        progress(f"warning: {warning}")
    return st


def healthy(st: state.LabState) -> bool:
    present = netns.list_netns()
    return all(ns in present for ns in st.netns) and all(daemons.alive(d) for d in st.daemons)
