"""The autopeers in the host's firewall: elements of the named sets the core
declares in its nftables table when autopeer is enabled (`autopeer_ifaces`,
`autopeer_ports`), used wherever the static DN42 interfaces and ports are.
Only elements change at runtime, never a rule."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from ibgp_tunnel.autopeer.run import ApplyError, run
from ibgp_tunnel.autopeer.wireguard import check_name

IFACES_SET = "autopeer_ifaces"
PORTS_SET = "autopeer_ports"
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def _table(table: str) -> str:
    if not _TABLE.match(table):
        raise ApplyError(f"{table!r} is not an nftables table name")
    return table


def elements(table: str, name: str) -> set[str]:
    """The set's elements as text (interface names; ports as numbers)."""
    done = run(["nft", "-j", "list", "set", "inet", _table(table), name])
    found: set[str] = set()
    for item in json.loads(done.stdout).get("nftables", []):
        for element in item.get("set", {}).get("elem", []):
            found.add(str(element))
    return found


def _literal(name: str, value: str) -> str:
    if name == PORTS_SET:
        port = int(value)
        if not 1 <= port <= 65535:
            raise ApplyError(f"{value!r} is not a port")
        return str(port)
    return f'"{check_name(value)}"'


def sync(table: str, name: str, wanted: Iterable[str]) -> None:
    """Make the set hold exactly `wanted`: one `nft -f` transaction (all or none)."""
    want = {str(v) for v in wanted}
    have = elements(table, name)
    lines = []
    extra = sorted(have - want)
    missing = sorted(want - have)
    if extra:
        values = ", ".join(_literal(name, v) for v in extra)
        lines.append(f"delete element inet {table} {name} {{ {values} }}")
    if missing:
        values = ", ".join(_literal(name, v) for v in missing)
        lines.append(f"add element inet {table} {name} {{ {values} }}")
    if lines:
        run(["nft", "-f", "-"], input="\n".join(lines) + "\n")


def sync_all(table: str, interfaces: Iterable[str], ports: Iterable[int]) -> None:
    sync(table, IFACES_SET, interfaces)
    sync(table, PORTS_SET, (str(p) for p in ports))
