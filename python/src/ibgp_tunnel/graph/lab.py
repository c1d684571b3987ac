"""Doctor's results for every plan host of the running lab, for `graph --lab`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ibgp_tunnel.doctor.result import Check
from ibgp_tunnel.doctor.run import diagnose, lab_host
from ibgp_tunnel.errors import InputError


def lab_plan_and_hosts(lab_dir: Path | None) -> tuple[Path, list[str]]:
    """The plan the lab runs and its plan hosts (the namespaces running BIRD and WireGuard)."""
    from ibgp_tunnel.lab import location, state

    where = lab_dir or location.lab_dir()
    st = state.load(where)
    if st is None:
        raise InputError(f"no lab is up in {where}; bring one up with `ibgp-tunnel lab up`")
    hosts = sorted(
        name for name, node in st.nodes.items() if node.get("wireguard") and node.get("bird_socket")
    )
    return Path(st.plan), hosts


def lab_results(
    lab_dir: Path | None, birdc: str, plan: Path | None, plan_hosts: Iterable[str]
) -> dict[str, list[Check]]:
    """host -> doctor's checks for each of `plan_hosts` the lab runs, diagnosed in its
    namespace (doctor only reads); the lab's stand-ins (DN42 peer, LAN clients) are
    no plan hosts and are left alone."""
    lab_plan, hosts = lab_plan_and_hosts(lab_dir)
    wanted = set(plan_hosts)
    found = {}
    for name in (h for h in hosts if h in wanted):
        host = lab_host(name, lab_dir, birdc)
        found[name] = diagnose(plan or lab_plan, name, host.target, host.generated_keys).checks
    return found
