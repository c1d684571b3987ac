"""DN42's registry (a checkout of its `data/` directory) as ROAs: every `route` and
`route6` object with its origins, as DN42's generators build the ROA files and the
ROA JSON RTR caches serve. The lab feeds its ROA files and its RTR cache from it,
and its DN42 peer announces a share of its prefixes, so filtering is shown on
DN42's real table. Nothing of the registry is copied anywhere but the lab directory."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The one RPSL reader (symlinks, size and NUL bytes refused there); re-exported
# for the tests and benches that read objects through the lab.
from ibgp_tunnel.autopeer.registry import registry_objects

__all__ = ["Roa", "bird_roa_file", "object_roas", "registry_objects", "registry_roas", "roa_json"]

# filter.txt's upper bounds for DN42's own ranges (172.20.0.0/14, fd00::/8): the
# max length a generator gives an object without max-length (the snapshot holds
# no filter.txt), never below the object's own prefix length.
DEFAULT_MAX = {"ipv4": 29, "ipv6": 64}
KEYS = {"ipv4": "route", "ipv6": "route6"}


@dataclass(frozen=True)
class Roa:
    prefix: str
    max_length: int
    asn: int

    @property
    def family(self) -> str:
        return "ipv4" if ipaddress.ip_network(self.prefix).version == 4 else "ipv6"


def object_roas(fields: dict[str, list[str]], family: str) -> list[Roa] | str:
    """One route/route6 object's ROAs, or why it is skipped. The registry is data
    anyone with a maintainer can write: only a prefix of the object's family, a max
    length within it and `AS<digits>` origins reach a BIRD file or the JSON."""
    key = KEYS[family]
    values = fields.get(key, [])
    if len(values) != 1:
        return f"{len(values)} `{key}:` lines, not one"
    try:
        network = ipaddress.ip_network(values[0], strict=True)
    except ValueError:
        return f"`{key}: {values[0][:60]}` is not a network in CIDR form"
    if ("ipv4" if network.version == 4 else "ipv6") != family:
        return f"`{key}: {network}` is not {family}"
    given = fields.get("max-length")
    if given and not re.fullmatch(r"[0-9]{1,3}", given[0]):
        return f"`max-length: {given[0][:20]}` is not a number"
    maximum = max(network.prefixlen, int(given[0]) if given else DEFAULT_MAX[family])
    if maximum > network.max_prefixlen:
        return f"max-length {maximum} is longer than an {family} prefix"
    origins = [
        origin
        for origin in fields.get("origin", [])
        if re.fullmatch(r"AS[0-9]{1,10}", origin) and int(origin[2:]) < 2**32
    ]
    return [Roa(str(network), maximum, int(origin[2:])) for origin in origins]


def registry_roas(data: Path, family: str) -> list[Roa]:
    """The family's ROAs of the registry's data directory, one per (object, origin),
    in file order (an origin listed twice is two, as the generators write it);
    objects object_roas refuses are left out."""
    roas: list[Roa] = []
    for fields in registry_objects(data / KEYS[family]):
        found = object_roas(fields, family)
        if not isinstance(found, str):
            roas += found
    return roas


def bird_roa_file(roas: Iterable[Roa], title: str) -> str:
    """A BIRD 2+ ROA include as DN42 publishes it: a `#` header, then
    `route <prefix> max <len> as <asn>;` per ROA."""
    lines = ["#", f"# {title}", "#"]
    lines += [f"route {r.prefix} max {r.max_length} as {r.asn};" for r in roas]
    return "\n".join(lines) + "\n"


def roa_json(roas: Iterable[Roa]) -> str:
    """DN42's ROA JSON (dn42_roa_46.json's shape, what RTR caches read)."""
    entries = [{"prefix": r.prefix, "maxLength": r.max_length, "asn": f"AS{r.asn}"} for r in roas]
    return json.dumps({"metadata": {"counts": len(entries)}, "roas": entries}, indent=1) + "\n"
