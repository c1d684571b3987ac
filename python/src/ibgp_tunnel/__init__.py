"""ibgp-tunnel: the workstation helper for an iBGP-over-WireGuard network.

The plan (hosts/plan.toml) is the single source of truth; this package checks it,
exports its JSON Schema, writes keys into sops files and asks the Nix core
(modules/lib) what a host will run.
"""

__version__ = "0.1.0"
