"""What a client of two or more reflectors should route where (issue #13), derived
from the plan alone, and what its kernel does: prefix -> tunnel interface.

A client takes each prefix from the reflector of highest preference (the link's
`preference`, BGP local preference, 100 when left out) among those that are up
and heard it themselves; failing those, from one that only has it from its twin (a
reflector it is linked to), again by preference; a prefix no live reflector offers
is gone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ibgp_tunnel.lab import netns
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.topology import (
    Topology,
    as_kernel_prints,
    matches_any,
    reflector_offers,
    set_patterns,
)

DEFAULT_PREFERENCE = 100


@dataclass(frozen=True)
class ClientLink:
    name: str
    reflector: str
    interface: str
    preference: int


def client_links(plan: Mapping[str, Any], client: str) -> list[ClientLink]:
    """The client's links, most preferred first."""
    links = [
        ClientLink(
            name,
            str(link["reflector"]),
            str(link.get("interface", "wg-ibgp")),
            int(link.get("preference", DEFAULT_PREFERENCE)),
        )
        for name, link in plan.get("links", {}).items()
        if link["client"] == client
    ]
    return sorted(links, key=lambda link: -link.preference)


def offered_by(
    plan: Mapping[str, Any],
    topo: Topology,
    client: str,
    reflector: str,
    down: Iterable[str] = (),
) -> dict[str, bool]:
    """What `client` imports over its link to `reflector`, as `ip route` prints it,
    kept by the client's import and kernel_export_sets: prefix -> whether the reflector
    heard it directly (else only from a twin), while the reflectors in `down` are gone."""
    host = plan["hosts"][client]
    result: dict[str, bool] = {}
    for family in ("ipv4", "ipv6"):
        own = set(host.get("announce", {}).get(family, []))
        keep = set_patterns(plan, host.get("import_sets", []), family)
        kernel = set_patterns(plan, host.get("kernel_export_sets", []), family)
        for prefix, direct in reflector_offers(plan, topo, reflector, family, down).items():
            if prefix not in own and matches_any(prefix, keep) and matches_any(prefix, kernel):
                result[as_kernel_prints(prefix)] = direct
    return result


def expected_paths(
    plan: Mapping[str, Any], topo: Topology, client: str, down: Iterable[str] = ()
) -> dict[str, str]:
    """prefix -> the tunnel interface `client` should route it through while the
    reflectors in `down` are gone: a route a reflector heard itself before one it only
    had from its twin, then the link's preference (render/reflectors.nix)."""
    gone = set(down)
    best: dict[str, tuple[tuple[bool, int], str]] = {}
    for link in client_links(plan, client):
        if link.reflector in gone:
            continue
        for prefix, direct in offered_by(plan, topo, client, link.reflector, gone).items():
            rank = (direct, link.preference)
            if prefix not in best or rank > best[prefix][0]:
                best[prefix] = (rank, link.interface)
    return {prefix: interface for prefix, (_, interface) in best.items()}


def kernel_paths(st: LabState, node: str) -> dict[str, str]:
    """prefix -> device of every route BIRD installed in `node`'s kernel (both families);
    a multipath route shows as its devices joined by '+'."""
    paths: dict[str, str] = {}
    for family in ("-4", "-6"):
        out = netns.run(["ip", "-n", st.nodes[node]["netns"], family, "route", "show"]).stdout
        current: str | None = None
        for line in out.splitlines():
            words = line.split()
            if not line[:1].isspace():
                current = None
                if " proto bird " not in line:
                    continue
                current = words[0]
                paths[current] = words[words.index("dev") + 1] if "dev" in words else ""
            elif current is not None and "dev" in words:
                device = words[words.index("dev") + 1]
                paths[current] = "+".join(filter(None, (paths[current], device)))
    return paths
