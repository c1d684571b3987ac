"""`ip -j` output: addresses, links (MTU) and routes."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from ibgp_tunnel.errors import InputError

IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Link:
    name: str
    mtu: int
    up: bool
    addresses: tuple[IpInterface, ...]
    # The kernel interface group, as ip prints it ("default", a number, a name):
    # autopeer interfaces are let in by theirs.
    group: str = ""


@dataclass(frozen=True)
class Route:
    dst: str  # "default" or a prefix, as ip prints it
    dev: str | None
    gateway: str | None
    protocol: str | None
    type: str  # unicast, unreachable, blackhole, ...


def load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text) if text.strip() else []
    except ValueError as error:
        raise InputError(f"{what} printed something that is not JSON: {error}") from None


def parse_addresses(text: str) -> dict[str, Link]:
    """Links by name with their MTU, state and addresses, from `ip -j address`."""
    links = {}
    for entry in load_json(text, "ip -j address"):
        name = str(entry.get("ifname", ""))
        addresses = [
            ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            for info in entry.get("addr_info", [])
            if "local" in info and "prefixlen" in info
        ]
        flags = entry.get("flags", [])
        links[name] = Link(
            name=name,
            mtu=int(entry.get("mtu", 0)),
            up="UP" in flags,
            addresses=tuple(addresses),
            group=str(entry.get("group", "")),
        )
    return links


def parse_links(text: str) -> dict[str, int]:
    """MTU by link name, from `ip -j link`."""
    return {
        str(entry.get("ifname", "")): int(entry.get("mtu", 0))
        for entry in load_json(text, "ip -j link")
    }


def parse_routes(text: str) -> list[Route]:
    return [
        Route(
            dst=str(entry.get("dst", "")),
            dev=entry.get("dev"),
            gateway=entry.get("gateway"),
            protocol=str(entry["protocol"]) if "protocol" in entry else None,
            type=str(entry.get("type", "unicast")),
        )
        for entry in load_json(text, "ip -j route")
    ]


def route_device(text: str) -> str | None:
    """The device of `ip -j route get ADDRESS`'s answer."""
    found = load_json(text, "ip -j route get")
    return str(found[0]["dev"]) if found and "dev" in found[0] else None
