"""A plan with one reflector, one client and N DN42 peers, each as large DN42 nodes
run them (issue 22, item 7): its own WireGuard tunnel (interface dn42-p<i>, DN42's
port convention), a PSK, the same link-local and DN42 /32 on every tunnel, its own
peer /32, ROA on, import and export sets, link communities.

Used by bench/dn42_scale.py (render and check), bench/dn42_lab_scale.py and
tests/test_lab_dn42_many.py (the lab builds one namespace per peer from it)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import tomlkit

from ibgp_tunnel.lab.errors import LabError

# DN42's port convention (2 + last four digits of the ASN) keeps the ports
# distinct while the ASNs differ in those digits (up to 8,000 peers here); the
# lab's underlay (198.18.<index>.0/31) and the peers' announcements
# (172.21.<80 + index>.0/24) have room for 175 peers.
MOST_PEERS = 8000
LAB_MOST_PEERS = 175
FIRST_PEER_ASN = 4242421100
# Our DN42 space: announced by the reflector, exported to every peer.
OWN_V4, OWN_V6 = "172.23.101.0/27", "fd42:4242:38::/48"


def test_public_key(label: str) -> str:
    """A well-formed WireGuard public key derived from `label` (no private key exists for
    it: the lab generates the keys it runs; render and check only need the shape)."""
    return base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


def peer_name(index: int) -> str:
    return f"p{index}"


def dn42_peer(index: int) -> dict[str, object]:
    """Peer `index` (0-based): ASN, link-local neighbour and /32 distinct per peer."""
    number = index + 1
    return {
        "asn": FIRST_PEER_ASN + number,
        "neighbor": f"fe80::{number + 0x1000:x}",
        "public_key": test_public_key(f"dn42-peer-{number}"),
        "preshared_key": True,
        # One link-local and one DN42 /32 on every tunnel, as DN42 nodes do.
        "link_local": "fe80::38/64",
        "ipv4": "172.23.101.1",
        "peer_ipv4": f"172.20.{number // 256}.{number % 256}",
        "export_sets": ["own"],
        "latency": 1 + number % 9,
        "bandwidth": 24,
    }


def plan_with_dn42_peers(count: int, most: int = MOST_PEERS) -> dict[str, object]:
    """The plan (as planfile.load returns it) with `count` DN42 peers on the reflector;
    the lab passes most=LAB_MOST_PEERS."""
    if not 0 <= count <= most:
        raise LabError(f"a DN42 scale plan has 0 to {most} peers, not {count}")
    peers = {peer_name(i + 1): dn42_peer(i) for i in range(count)}
    return {
        "asn": 4242420038,
        "prefix_sets": {
            "dn42": {
                "ipv4": ["172.20.0.0/14{21,29}", "172.31.0.0/16+", "10.0.0.0/8{15,24}"],
                "ipv6": ["fd00::/8{44,64}"],
            },
            "own": {"ipv4": [OWN_V4], "ipv6": [OWN_V6]},
        },
        "hosts": {
            "vps": {
                "role": "reflector",
                "router_id": "172.23.101.1",
                "public_key": test_public_key("vps"),
                "dn42_public_key": test_public_key("vps-dn42"),
                "endpoint": "203.0.113.10",
                "uplink_interfaces": ["eth0"],
                "import_sets": ["dn42"],
                "kernel_export_sets": ["dn42"],
                "announce": {"ipv4": [OWN_V4], "ipv6": [OWN_V6]},
                "dn42_roa": {"interval": "15min"},
                "dn42_peers": peers,
            },
            "home": {
                "role": "client",
                "router_id": "172.23.101.2",
                "public_key": test_public_key("home"),
                "lan_interfaces": ["lan0"],
                "import_sets": ["dn42"],
                "kernel_export_sets": ["dn42"],
            },
        },
        "links": {
            "home": {
                "reflector": "vps",
                "client": "home",
                "interface": "wg-ibgp",
                "port": 51821,
                "ipv4": "10.255.255.0/30",
                "ipv6": "fdb7:1dec:4d21:ff::/64",
                "reflector_ipv4": "10.255.255.2",
                "client_ipv4": "10.255.255.1",
                "reflector_ipv6": "fdb7:1dec:4d21:ff::1",
                "client_ipv6": "fdb7:1dec:4d21:ff::2",
            }
        },
    }


def write_plan(path: Path, count: int, most: int = MOST_PEERS) -> Path:
    """The plan of `plan_with_dn42_peers` as a TOML file (what `check` and `lab up` read)."""
    path.write_text(tomlkit.dumps(plan_with_dn42_peers(count, most)))
    return path
