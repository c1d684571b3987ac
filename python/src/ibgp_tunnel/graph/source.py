"""The plan's picture data from the Nix core, in one `nix-instantiate`.

Nothing about the plan is derived again here: the host specs (hostFromPlan)
give each end's interface, addresses and port, the rendered WireGuard
interfaces the DN42 tunnels' ports, the route model (spec/routes.nix) the BGP
sessions, plan/links.nix which links join two reflectors. The plan is checked
first (`ibgp-tunnel check`'s two layers) and the core reads the very data that
was checked, as JSON, not the file again.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ibgp_tunnel import planfile
from ibgp_tunnel.check import check_data
from ibgp_tunnel.core import evaluate_core
from ibgp_tunnel.errors import PlanError
from ibgp_tunnel.findings import errors
from ibgp_tunnel.graph.model import Dn42Peer, Host, Link, LinkEnd, PlanGraph

_EXPRESSION = """
{ coreFile, planJson }:
let
  core = import coreFile;
  plan = builtins.fromJSON (builtins.readFile planJson);
  host =
    name:
    let
      spec = core.hostFromPlan plan name;
      model = core.routes.hostModel plan { } name;
    in
    {
      inherit (spec) role routerId asn announce;
      links = builtins.mapAttrs (_: l: {
        inherit (l) interface listenPort ips;
        endpoint = l.peer.endpoint;
      }) spec.links;
      dn42Peers = builtins.mapAttrs (_: p: { inherit (p) asn neighbor; }) (spec.dn42Peers or { });
      # DN42 tunnels' ports as rendered; only hosts with DN42 peers pay for a render.
      ports =
        if (spec.dn42Peers or { }) == { } then
          { }
        else
          builtins.mapAttrs (_: w: w.listenPort or null) ((core.render spec).wireguard or { });
      inherit (model) sessions interfaces;
    };
in
{
  hosts = builtins.mapAttrs (name: _: host name) (plan.hosts or { });
  links = builtins.mapAttrs (_: l: {
    inherit (l) reflector client;
    betweenReflectors = core.planLinks.betweenReflectors plan l;
  }) (plan.links or { });
}
"""


def load(plan_path: Path) -> PlanGraph:
    """The picture's data for the plan at `plan_path`. InputError if the file is
    unusable, PlanError (with every finding) if it does not pass `check`."""
    data = planfile.load(plan_path)
    found = check_data(data)
    if errors(found):
        raise PlanError(f"{plan_path} does not pass `ibgp-tunnel check`; fix it first", found)
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-graph-") as directory:
        plan_json = Path(directory) / "plan.json"
        plan_json.write_text(json.dumps(data), encoding="utf-8")
        answer = evaluate_core(
            _EXPRESSION, "the Nix core could not describe the plan", planJson=str(plan_json)
        )
    return from_core(int(data["asn"]), answer)


def _session(sessions: Sequence[Mapping[str, Any]], **match: Any) -> str | None:
    for session in sessions:
        if all(session.get(key) == value for key, value in match.items()):
            return str(session["name"])
    return None


def _end(hosts: Mapping[str, Any], host: str, link: str) -> LinkEnd:
    mine = hosts[host]["links"][link]
    session = _session(hosts[host]["sessions"], kind="ibgp", interface=mine["interface"])
    return LinkEnd(host, str(mine["interface"]), tuple(mine["ips"]), session)


def _subnets(addresses: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_interface(a).network) for a in addresses)


def from_core(asn: int, answer: Mapping[str, Any]) -> PlanGraph:
    """The core's answer (see _EXPRESSION) as a PlanGraph, sorted by name."""
    hosts = answer["hosts"]
    nodes = tuple(
        Host(
            name=name,
            role=str(h["role"]),
            router_id=str(h["routerId"]),
            announce=tuple(h["announce"].get("ipv4", []) + h["announce"].get("ipv6", [])),
        )
        for name, h in sorted(hosts.items())
    )
    links = []
    for name, ends in sorted(answer["links"].items()):
        listener = _end(hosts, ends["reflector"], name)
        dialer = _end(hosts, ends["client"], name)
        dialing = hosts[ends["client"]]["links"][name]
        links.append(
            Link(
                name=name,
                listener=listener,
                dialer=dialer,
                port=dialing["listenPort"],
                subnets=_subnets(listener.addresses),
                between_reflectors=bool(ends["betweenReflectors"]),
                endpoint=dialing["endpoint"],
            )
        )
    peers = []
    for reflector, h in sorted(hosts.items()):
        interfaces = {i["peer"]: i["name"] for i in h["interfaces"] if i["kind"] != "link"}
        for name, peer in sorted(h["dn42Peers"].items()):
            interface = interfaces.get(name)
            peers.append(
                Dn42Peer(
                    reflector=reflector,
                    name=name,
                    asn=int(peer["asn"]),
                    neighbor=str(peer["neighbor"]),
                    interface=interface,
                    port=h["ports"].get(interface) if interface else None,
                    session=_session(h["sessions"], kind="dn42", dn42Peer=name),
                )
            )
    return PlanGraph(asn, nodes, tuple(links), tuple(peers))
