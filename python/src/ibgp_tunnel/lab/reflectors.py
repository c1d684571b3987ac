"""What a client of two or more reflectors should route where (issue #13), derived
from the plan alone, and what its kernel does: prefix -> tunnel interface.

A client takes each prefix from the reflector of highest preference (the link's
`preference`, BGP local preference, 100 when left out) among those that are up
and offer it; a prefix no live reflector offers is gone."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ibgp_tunnel.lab import netns
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.topology import Topology, expected_client_routes, matches_any, set_patterns

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


def as_kernel_prints(prefix: str) -> str:
    net = ipaddress.ip_network(prefix, strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def offered_by(plan: Mapping[str, Any], topo: Topology, client: str, reflector: str) -> set[str]:
    """What `client` imports over its link to `reflector` alone, as `ip route` prints it,
    kept by the client's kernel_export_sets."""
    alone = copy.deepcopy(dict(plan))
    alone["links"] = {
        name: link
        for name, link in plan.get("links", {}).items()
        if link["client"] != client or link["reflector"] == reflector
    }
    learned = expected_client_routes(alone, topo, client)
    kernel_sets = plan["hosts"][client].get("kernel_export_sets", [])
    return {
        as_kernel_prints(prefix)
        for family, prefixes in learned.items()
        for prefix in prefixes
        if matches_any(prefix, set_patterns(plan, kernel_sets, family))
    }


def expected_paths(
    plan: Mapping[str, Any], topo: Topology, client: str, down: Iterable[str] = ()
) -> dict[str, str]:
    """prefix -> the tunnel interface `client` should route it through while the
    reflectors in `down` are gone."""
    gone = set(down)
    result: dict[str, str] = {}
    # Least preferred first, so the preferred reflector's entries win.
    for link in reversed(client_links(plan, client)):
        if link.reflector in gone:
            continue
        for prefix in offered_by(plan, topo, client, link.reflector):
            result[prefix] = link.interface
    return result


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
