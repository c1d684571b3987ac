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
from ibgp_tunnel.lab.topology import Artifacts, as_kernel_prints, model_routes

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


def usable(path: Mapping[str, Any], gone: set[str]) -> bool:
    """Whether a route model path still carries its prefix while the reflectors in
    `gone` are down: its reflector is up, and it heard the prefix itself or from a
    twin that is up."""
    return path["peer"] not in gone and (
        path["direct"] or any(twin not in gone for twin in path["via"])
    )


def expected_paths(
    plan: Mapping[str, Any], artifacts: Artifacts, client: str, down: Iterable[str] = ()
) -> dict[str, str]:
    """prefix (as `ip route` prints it) -> the tunnel interface `client` should route
    it through while the reflectors in `down` are gone, from the core's route model:
    a route a reflector heard itself before one it only had from its twin, then the
    link's preference (render/reflectors.nix); ties go to the plan's first link."""
    gone = set(down)
    order = {link.name: index for index, link in enumerate(client_links(plan, client))}
    best: dict[str, str] = {}
    for family in ("ipv4", "ipv6"):
        for route in model_routes(artifacts, client, family):
            paths = [p for p in route["paths"] if route["kernel"] and usable(p, gone)]
            if paths:
                chosen = max(
                    paths,
                    key=lambda p: (p["direct"], p["preference"] or 0, -order.get(p["link"], 0)),
                )
                best[as_kernel_prints(route["prefix"])] = str(chosen["interface"])
    return best


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
