"""DN42's registry (a checkout of its `data/` directory) as ROAs: every `route` and
`route6` object with its origins, as DN42's generators build the ROA files and the
ROA JSON RTR caches serve. The lab feeds its ROA files and its RTR cache from it,
and its DN42 peer announces a share of its prefixes, so filtering is shown on
DN42's real table. Nothing of the registry is copied anywhere but the lab directory."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


def registry_objects(directory: Path) -> Iterator[dict[str, list[str]]]:
    """Each RPSL object of a registry directory: `key: value` lines at column 0
    (continuation lines, indented or `+`, belong to the previous value)."""
    for path in sorted(directory.iterdir()):
        fields: dict[str, list[str]] = {}
        for line in path.read_text(errors="replace").splitlines():
            if line[:1] in ("", " ", "\t", "+") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), []).append(value.strip())
        yield fields


def registry_roas(data: Path, family: str) -> list[Roa]:
    """The family's ROAs of the registry's data directory, one per (object, origin),
    in file order (an origin listed twice is two, as the generators write it)."""
    key = KEYS[family]
    roas = []
    for fields in registry_objects(data / key):
        (prefix,) = fields[key]
        length = int(prefix.split("/")[1])
        given = fields.get("max-length")
        maximum = max(length, int(given[0]) if given else DEFAULT_MAX[family])
        for origin in fields.get("origin", []):
            if re.fullmatch(r"AS[0-9]+", origin):
                roas.append(Roa(prefix, maximum, int(origin[2:])))
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
