"""Which prefixes a host's kernel must never hold, asked of the core: default routes
(`ip route` prints one as "default", never as 0.0.0.0/0) and anything outside its
kernel_export_sets. Shared by the lab tests and bench/chaos.py (which asks for every
sample, so `Leaks` remembers each prefix's answer)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ibgp_tunnel.core import evaluate_core

# The core's matcher over the host's kernel_export_sets (routes.nix): what BIRD's
# kernel filter lets through, whatever the DN42 stand-ins announce during a fault.
_OUTSIDE_EXPRESSION = """
{ coreFile, plan, host, prefixes }:
let
  core = import coreFile;
  p = builtins.fromJSON plan;
  names = p.hosts.${host}.kernel_export_sets or [ ];
  family = x: if builtins.match ".*:.*" x != null then "ipv6" else "ipv4";
in
builtins.filter
  (x: x == "default" || !(core.routes.matchesAny (core.routes.setPatterns p (family x) names) x))
  (builtins.fromJSON prefixes)
"""


def outside_sets(plan: Mapping[str, Any], host: str, prefixes: set[str]) -> set[str]:
    """The prefixes of `prefixes` that `host`'s kernel must never hold. Not the route
    model's expectations: a fault may add DN42 routes the plan cannot know, and
    those the sets keep are no leak."""
    if not prefixes:
        return set()
    found = evaluate_core(
        _OUTSIDE_EXPRESSION,
        "the core's matcher failed",
        plan=json.dumps(plan),
        host=host,
        prefixes=json.dumps(sorted(prefixes)),
    )
    return set(found)


class Leaks:
    """`outside_sets` for many samples: each (host, prefix) asked of the core once."""

    def __init__(self, plan: Mapping[str, Any]) -> None:
        self.plan = plan
        self.known: dict[tuple[str, str], bool] = {}

    def outside(self, host: str, prefixes: set[str]) -> set[str]:
        new = {p for p in prefixes if (host, p) not in self.known}
        if new:
            bad = outside_sets(self.plan, host, new)
            self.known |= {(host, p): p in bad for p in new}
        return {p for p in prefixes if self.known[(host, p)]}
