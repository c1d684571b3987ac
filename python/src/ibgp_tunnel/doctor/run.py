"""`ibgp-tunnel doctor`: pick the target, ask the core what the host should have,
read the live state, run the checks."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from pathlib import Path

from ibgp_tunnel import planfile
from ibgp_tunnel.doctor import autopeer
from ibgp_tunnel.doctor.checks import run_checks
from ibgp_tunnel.doctor.checks.liveness import probe_address
from ibgp_tunnel.doctor.collect import (
    AUTOPEER_KEY,
    LocalTarget,
    NamespaceTarget,
    Output,
    Snapshot,
    Target,
    collect,
)
from ibgp_tunnel.doctor.core import host_view
from ibgp_tunnel.doctor.expect import Expectations, expectations
from ibgp_tunnel.doctor.live import parse_snapshot
from ibgp_tunnel.doctor.parse_wg import endpoint_address
from ibgp_tunnel.doctor.pmtu_probe import plan_series, run_probes
from ibgp_tunnel.doctor.result import Check
from ibgp_tunnel.errors import InputError


@dataclass(frozen=True)
class Diagnosis:
    host: str
    plan: Path
    target: str
    checks: list[Check]
    snapshot: Snapshot


def plan_expectations(plan: Path, host: str, autopeer_state: Path | None = None) -> Expectations:
    """What `host` should have, as the Nix core renders it (one nix-instantiate);
    with self-service peering on, also the peerings applied in `autopeer_state`
    (default /var/lib/ibgp-tunnel/autopeer), as the core renders them."""
    view = host_view(plan, host)
    exp = expectations(host, view.artifacts, view.spec, view.plan, view.model)
    if not autopeer.enabled(view.spec):
        return exp
    found, tunnels, sessions = autopeer.applied(view.spec, autopeer.state_dir_of(autopeer_state))
    return replace(
        exp,
        tunnels=exp.tunnels + tuple(tunnels),
        sessions=exp.sessions + tuple(sessions),
        autopeer=found,
    )


def guess_host(plan: Path) -> str:
    """The plan host named like this machine, for a doctor run without --host."""
    hosts = planfile.load(plan).get("hosts")
    names = sorted(hosts) if isinstance(hosts, dict) else []
    me = socket.gethostname().split(".")[0]
    if me in names:
        return me
    raise InputError(
        f"this machine is called {me!r}, which is no host of {plan} "
        f"(hosts: {', '.join(names) or 'none'}); say which one it is with --host NAME"
    )


@dataclass(frozen=True)
class LabHost:
    target: NamespaceTarget
    plan: Path
    # host -> public key, when the lab runs keys it generated instead of the plan's
    generated_keys: dict[str, str] | None
    # Self-service peering in the lab: its state directory and its daemons (unit
    # name -> whether its process lives).
    autopeer_state: Path | None = None
    autopeer_daemons: dict[str, bool] | None = None


def lab_host(name: str, lab_dir: Path | None, birdc: str) -> LabHost:
    """The lab host `name`, the plan the lab runs and the keys it runs."""
    from ibgp_tunnel.lab import location, state

    where = lab_dir or location.lab_dir()
    st = state.load(where)
    if st is None:
        raise InputError(f"no lab is up in {where}; bring one up with `ibgp-tunnel lab up`")
    node = st.nodes.get(name)
    if node is None or not node.get("bird_socket") or not node.get("wireguard"):
        hosts = [n for n, data in st.nodes.items() if data.get("wireguard")]
        raise InputError(
            f"the lab in {where} has no plan host {name!r} (plan hosts: {', '.join(hosts)})"
        )
    target = NamespaceTarget(
        name=name,
        netns=str(node["netns"]),
        run_dir=str(node["run_dir"]),
        bird_socket=str(node["bird_socket"]),
        # The lab's own birdc (BIRD 3 or 2, from its --bird-dir) talks to its BIRD.
        birdc_binary=str(Path(st.bird_dir) / "birdc") if st.bird_dir else birdc,
        # lab/up.py writes the node's bird.conf beside its run dir.
        bird_config=str(Path(str(node["run_dir"])).parent / "bird.conf"),
    )
    generated = None
    if any(data.get("keys") == "generated" for data in st.nodes.values()):
        # The plan's secrets did not decrypt here, so the lab made keys of its own.
        from ibgp_tunnel.lab.faults import installed_keys

        generated = installed_keys(st, planfile.load(Path(st.plan))).public_keys
    from ibgp_tunnel.lab import autopeerlab, daemons

    names = {
        f"{name}/autopeer-web": autopeer.WEB_UNIT,
        f"{name}/autopeer-apply": autopeer.APPLY_UNIT,
    }
    alive = {names[d.name]: daemons.alive(d) for d in st.daemons if d.name in names}
    state_dir = autopeerlab.state_dir(where, name).root
    return LabHost(target, Path(st.plan), generated, state_dir, alive)


def liveness_of(exp: Expectations) -> dict[str, str]:
    """Tunnel interface -> the address at its other end that the liveness check pings."""
    return {
        tunnel.interface: address
        for tunnel in exp.tunnels
        if (address := probe_address(exp, tunnel.interface))
    }


def endpoints_of(exp: Expectations) -> list[str]:
    return sorted(
        {endpoint_address(p.endpoint) for t in exp.tunnels for p in t.peers if p.endpoint}
    )


def diagnose(
    plan: Path,
    host: str,
    target: Target,
    public_keys: dict[str, str] | None = None,
    autopeer_state: Path | None = None,
    unit_state: autopeer.UnitProbe | None = None,
) -> Diagnosis:
    """`public_keys`: the keys a lab generated, checked instead of the plan's;
    `autopeer_state` and `unit_state`: where self-service peering keeps its state
    and how its units' states are read (default: the host's, through systemctl)."""
    exp = plan_expectations(plan, host, autopeer_state)
    if public_keys:
        exp = exp.with_public_keys(public_keys, "the lab's generated keys")
    checks, snapshot = examine(exp, target, unit_state)
    return Diagnosis(host, plan, target.describe(), checks, snapshot)


def examine(
    exp: Expectations, target: Target, unit_state: autopeer.UnitProbe | None = None
) -> tuple[list[Check], Snapshot]:
    """Read `target`'s live state and check it against `exp`."""
    snapshot = collect(target, endpoints_of(exp), exp.nft_table.split(), liveness_of(exp))
    if exp.autopeer is not None:
        probe = unit_state or autopeer.systemd_unit_state(target.run)
        state = autopeer.state_dir_of(exp.autopeer.state_dir)
        snapshot.outputs[AUTOPEER_KEY] = Output(
            ("read", str(state.root)), 0, autopeer.runtime(state, probe, snapshot.time), ""
        )
    # A reflector learns its clients' endpoints from their packets: their path matters too.
    live = parse_snapshot(snapshot)
    roamed = sorted(
        {
            endpoint_address(peer.endpoint)
            for wg in (live.wireguard or {}).values()
            for peer in wg.peers
            if peer.endpoint
        }
        - set(snapshot.route_get)
    )
    if roamed:
        for address in roamed:
            snapshot.route_get[address] = target.run(["ip", "-j", "route", "get", address])
    # The probes need the tunnels' live MTUs and endpoints: sent once those are read.
    snapshot.probes = run_probes(target, plan_series(exp, live))
    snapshot.latency = {
        peer: target.birdc(("eval", symbol)) for peer, symbol in sorted(exp.latency_auto.items())
    }
    live = parse_snapshot(snapshot)
    return run_checks(exp, live), snapshot


def diagnose_snapshot(
    plan: Path, host: str, snapshot: Snapshot, autopeer_state: Path | None = None
) -> list[Check]:
    """The checks on saved outputs (`--from-outputs`, and the unit tests)."""
    exp = plan_expectations(plan, host, autopeer_state)
    return run_checks(exp, parse_snapshot(snapshot))


def local_target(
    bird_socket: str | None, birdc: str, bird_config: str | None = None
) -> LocalTarget:
    return LocalTarget(
        bird_socket or LocalTarget.bird_socket, birdc, bird_config or LocalTarget.bird_config
    )
