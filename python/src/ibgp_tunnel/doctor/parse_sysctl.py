"""`sysctl -a --pattern ...`: `key = value` lines."""

from __future__ import annotations


def parse_sysctl(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def interface_key(family: str, interface: str, name: str) -> str:
    """`net.ipv4.conf.IF.NAME`; sysctl spells a dot inside an interface name as '/'."""
    return f"net.{family}.conf.{interface.replace('.', '/')}.{name}"
