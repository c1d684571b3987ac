"""THIN STAND-IN (apply part) for the core part's autopeer/render.py, written only
to run the apply unit's lab test before the core part's lands; the lead keeps
the core part's. Contract (24-design.md): render_autopeers(spec_file, requests)
-> Rendered via core.evaluate_core over the core's `autopeer` entry; problems ->
AutopeerRefused naming the field."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.core import evaluate_core

_EXPRESSION = """
{ coreFile, specFile, requestsFile }:
(import coreFile).autopeer
  (builtins.fromJSON (builtins.readFile specFile))
  (builtins.fromJSON (builtins.readFile requestsFile))
"""


@dataclass(frozen=True)
class Rendered:
    peers: dict[str, dict[str, Any]]
    bird: str
    wireguard: dict[str, dict[str, Any]]
    nft: dict[str, list[Any]]


def render_autopeers(spec_file: Path, requests: Sequence[Mapping[str, Any]]) -> Rendered:
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-autopeer-") as directory:
        path = Path(directory) / "requests.json"
        path.write_text(json.dumps([dict(r) for r in requests]), encoding="utf-8")
        found = evaluate_core(
            _EXPRESSION,
            "the Nix core could not render the autopeers",
            specFile=str(spec_file),
            requestsFile=str(path),
        )
    if found["problems"]:
        first = found["problems"][0]
        parts = str(first["path"]).split(".")
        field = parts[2] if len(parts) > 2 else "request"
        raise AutopeerRefused(f"{field}: {first['message']}", field)
    return Rendered(found["peers"], found["bird"], found["wireguard"], found["nft"])
