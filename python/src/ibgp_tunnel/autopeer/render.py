"""Peering requests -> what the apply unit writes, rendered by the Nix core's
`autopeer` entry (modules/lib/render/autopeer.nix) with the same session and
tunnel functions as the plan's static DN42 peers. The host spec and the
requests travel as files, never spliced into Nix source."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.request import PeeringRequest
from ibgp_tunnel.core import evaluate_core

_AUTOPEER = """
{ coreFile, specFile, requestsFile }:
(import coreFile).autopeer
  (builtins.fromJSON (builtins.readFile specFile))
  (builtins.fromJSON (builtins.readFile requestsFile))
"""


@dataclass(frozen=True)
class Problem:
    """One refusal: which request (its index), which field ("request": the whole one)."""

    index: int
    field: str
    message: str


@dataclass(frozen=True)
class Rendered:
    """The accepted requests as DN42 peers: by peer name (ap<asn>...), the BIRD
    include's text, networking.wireguard.interfaces-shaped tunnels, and the
    elements of the nft sets; problems of the refused ones."""

    peers: dict[str, dict[str, Any]]
    bird: str
    wireguard: dict[str, dict[str, Any]]
    nft_interfaces: list[str]
    nft_ports: list[int]
    problems: list[Problem]


@dataclass(frozen=True)
class Assigned:
    """What an applied request was given (its peer name, its WireGuard port):
    the core keeps both while they still fit, so removing one peering never
    moves another to another port or interface. Only the apply unit's records
    carry these, never a stranger's request."""

    name: str
    # As the record holds it: the core checks it (a planted "22" is refused).
    listen_port: object = None

    def keys(self) -> dict[str, Any]:
        given: dict[str, Any] = {"name": self.name}
        if self.listen_port is not None:
            given["listen_port"] = self.listen_port
        return given


def render_autopeers(
    spec_file: Path,
    requests: Sequence[PeeringRequest],
    *,
    refuse: bool = True,
    assigned: Sequence[Assigned | None] = (),
) -> Rendered:
    """Render `requests` against the host spec in `spec_file` (JSON). With
    `refuse` (the default) any problem raises AutopeerRefused naming the field;
    without it the problems come back beside what was accepted. `assigned[i]`
    is what request i was given when it was applied (None, or missing: new)."""
    given = list(assigned) + [None] * (len(requests) - len(assigned))
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-autopeer-") as directory:
        requests_file = Path(directory) / "requests.json"
        requests_file.write_text(
            json.dumps(
                [
                    r.plan_keys() | (a.keys() if a is not None else {})
                    for r, a in zip(requests, given, strict=False)
                ],
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        data = evaluate_core(
            _AUTOPEER,
            "the Nix core could not render the peering requests",
            specFile=str(spec_file),
            requestsFile=str(requests_file),
        )
    rendered = Rendered(
        peers=data["peers"],
        bird=data["bird"],
        wireguard=data["wireguard"],
        nft_interfaces=list(data["nft"]["interfaces"]),
        nft_ports=[int(p) for p in data["nft"]["ports"]],
        problems=[_problem(p) for p in data["problems"]],
    )
    if refuse and rendered.problems:
        first = rendered.problems[0]
        which = f"request {first.index}: " if len(requests) > 1 else ""
        raise AutopeerRefused(f"{which}{first.field}: {first.message}", first.field)
    return rendered


def _problem(found: dict[str, str]) -> Problem:
    # The core's path: peers.<index>[.<key>].
    parts = found["path"].split(".")
    return Problem(
        index=int(parts[1]),
        field=parts[2] if len(parts) > 2 else "request",
        message=found["message"],
    )
