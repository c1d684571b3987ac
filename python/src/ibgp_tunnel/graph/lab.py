"""Doctor's results for every plan host of the running lab, for `graph --lab`."""

from __future__ import annotations

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


def lab_results(lab_dir: Path | None, birdc: str, plan: Path | None) -> dict[str, list[Check]]:
    """host -> doctor's checks, each lab host diagnosed in its namespace (only reads)."""
    lab_plan, hosts = lab_plan_and_hosts(lab_dir)
    found = {}
    for name in hosts:
        host = lab_host(name, lab_dir, birdc)
        found[name] = diagnose(plan or lab_plan, name, host.target, host.generated_keys).checks
    return found
