"""A host's artifacts (the Nix core's `render` output) as the text each tool reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Artifacts = dict[str, Any]


def as_json(artifacts: Artifacts) -> str:
    return json.dumps(artifacts, indent=2, sort_keys=True) + "\n"


def as_bird(artifacts: Artifacts) -> str:
    """bird.conf, as `bird -p -c` checks it."""
    return artifacts["birdConfig"]


def as_nft(artifacts: Artifacts) -> str:
    """The nftables table, as `nft -f` loads it."""
    return artifacts["nftables"]["ruleset"]


def as_wg(artifacts: Artifacts) -> str:
    """One `wg setconf`-style section per interface.

    Keys are files on the host (sops-nix secrets), never text in a config, so the
    PrivateKey and PresharedKey lines are comments naming the file; addresses are
    not wg settings either, so they are comments for `ip address add`.
    """
    sections = [_wg_interface(name, spec) for name, spec in sorted(artifacts["wireguard"].items())]
    return "\n".join(sections)


def _wg_interface(name: str, spec: dict[str, Any]) -> str:
    lines = [
        f"# {name}: wg setconf {name} <this section>, then: wg set {name} private-key "
        f"{spec['privateKeyFile']}",
        f"# addresses (ip address add ... dev {name}): {', '.join(spec['ips'])}",
        *([f"# mtu (ip link set {name} mtu ...): {spec['mtu']}"] if "mtu" in spec else []),
        "[Interface]",
        f"# PrivateKey = <contents of {spec['privateKeyFile']}>",
        f"ListenPort = {spec['listenPort']}",
    ]
    for peer in spec["peers"]:
        lines += ["", *_wg_peer(name, peer)]
    return "\n".join(lines) + "\n"


def _wg_peer(interface: str, peer: dict[str, Any]) -> list[str]:
    lines = [f"# peer {peer['name']}"] if peer.get("name") else []
    lines.append("[Peer]")
    if peer.get("publicKey"):
        lines.append(f"PublicKey = {peer['publicKey']}")
    else:
        lines.append("# PublicKey = <not in the plan yet: run `ibgp-tunnel keys`>")
    if peer.get("presharedKeyFile"):
        lines += [
            f"# PresharedKey = <contents of {peer['presharedKeyFile']}>",
            f"#   wg set {interface} peer <PublicKey> preshared-key {peer['presharedKeyFile']}",
        ]
    if peer.get("endpoint"):
        lines.append(f"Endpoint = {peer['endpoint']}")
    lines.append(f"AllowedIPs = {', '.join(peer['allowedIPs'])}")
    if peer.get("persistentKeepalive"):
        lines.append(f"PersistentKeepalive = {peer['persistentKeepalive']}")
    return lines


FORMATS: dict[str, Callable[[Artifacts], str]] = {
    "json": as_json,
    "bird": as_bird,
    "nft": as_nft,
    "wg": as_wg,
}
