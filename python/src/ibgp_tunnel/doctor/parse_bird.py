"""`birdc` output: status, protocols (with `all` details), route counts, BFD sessions.

BIRD prints a banner ("BIRD 2.0.12 ready.") first; the layouts below hold for
BIRD 2 and BIRD 3. Columns of the protocol and BFD tables are found from their
header lines, since "Since" may hold a date and a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BirdStatus:
    version: str
    up: bool
    recovering: bool  # graceful restart recovery in progress (started with -R)
    recovery_detail: str  # BIRD's own lines about it


@dataclass
class Channel:
    name: str  # ipv4, ipv6
    state: str = ""
    imported: int | None = None
    exported: int | None = None
    import_limit: int | None = None
    import_limit_hit: bool = False
    import_limit_action: str = ""
    receive_limit: int | None = None
    receive_limit_hit: bool = False
    receive_limit_action: str = ""
    # The limit line read last: the "Action:" line below it is that limit's.
    last_limit: str = ""
    next_hop: tuple[str, ...] = ()
    filtered: int | None = None


@dataclass
class Protocol:
    name: str
    proto: str
    table: str
    state: str  # up, start, down, ...
    info: str  # e.g. "Established", "Active  Socket: Connection refused"
    details: dict[str, str] = field(default_factory=dict)  # "BGP state" -> "Established"
    channels: dict[str, Channel] = field(default_factory=dict)

    @property
    def last_error(self) -> str:
        return self.details.get("Last error", "")


_VERSION = re.compile(r"^BIRD (\S+) ready\.", re.MULTILINE)


def bird_version(text: str) -> str:
    found = _VERSION.search(text)
    return found[1] if found else ""


def parse_status(text: str) -> BirdStatus:
    recovery = [
        line.strip()
        for line in text.splitlines()
        if "recovery" in line.lower()
        or "waiting for" in line.lower()
        or "wait timer" in line.lower()
    ]
    return BirdStatus(
        version=bird_version(text),
        up="Daemon is up and running" in text,
        recovering=any("recovery in progress" in line.lower() for line in recovery),
        recovery_detail="; ".join(recovery),
    )


_ROUTES = re.compile(r"(\d+) imported, (?:(\d+) filtered, )?(\d+) exported")
_LIMIT = re.compile(r"(\d+)(\s*\[HIT\])?")


def _channel_line(channel: Channel, key: str, value: str) -> None:
    if key == "State":
        channel.state = value
    elif key == "Routes":
        found = _ROUTES.search(value)
        if found:
            channel.imported = int(found[1])
            channel.filtered = int(found[2]) if found[2] else None
            channel.exported = int(found[3])
    elif key in ("Import limit", "Receive limit", "Export limit"):
        channel.last_limit = key
        found = _LIMIT.match(value)
        if found and key == "Import limit":
            channel.import_limit = int(found[1])
            channel.import_limit_hit = bool(found[2])
        elif found and key == "Receive limit":
            channel.receive_limit = int(found[1])
            channel.receive_limit_hit = bool(found[2])
    elif key == "Action" and channel.last_limit == "Import limit":
        channel.import_limit_action = channel.import_limit_action or value
    elif key == "Action" and channel.last_limit == "Receive limit":
        channel.receive_limit_action = channel.receive_limit_action or value
    elif key == "BGP Next hop":
        channel.next_hop = tuple(value.split())


def parse_protocols(text: str) -> dict[str, Protocol]:
    """Protocols by name from `show protocols` or `show protocols all`."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("Name ")), None)
    if header is None:
        return {}
    info_at = lines[header].find("Info")
    protocols: dict[str, Protocol] = {}
    current: Protocol | None = None
    channel: Channel | None = None
    for line in lines[header + 1 :]:
        if not line.strip():
            continue
        if not line[0].isspace():
            fields = line.split()
            if len(fields) < 4:
                current = None
                continue
            info = line[info_at:].strip() if 0 <= info_at < len(line) else ""
            current = Protocol(fields[0], fields[1], fields[2], fields[3], info)
            protocols[current.name] = current
            channel = None
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("Channel "):
            channel = Channel(stripped.split()[1])
            current.channels[channel.name] = channel
            continue
        key, sep, value = stripped.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if channel is not None:
            _channel_line(channel, key, value)
        elif key not in current.details:
            current.details[key] = value
    return protocols


_COUNT = re.compile(r"(\d+) of (\d+) routes for (\d+) networks in table (\S+)")


def parse_route_count(text: str) -> dict[str, tuple[int, int]]:
    """Table -> (best routes, all routes), from `show route count`."""
    return {m[4]: (int(m[1]), int(m[2])) for m in _COUNT.finditer(text)}


@dataclass(frozen=True)
class BfdSession:
    address: str
    interface: str
    state: str  # Up, Down, Init, AdminDown


def parse_bfd_sessions(text: str) -> list[BfdSession]:
    sessions = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] in ("IP", "BIRD") or fields[0].endswith(":"):
            continue
        if fields[2] in ("Up", "Down", "Init", "AdminDown"):
            sessions.append(BfdSession(fields[0], fields[1], fields[2]))
    return sessions
