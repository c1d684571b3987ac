"""What `keys` may change in a plan, compared as bytes, and plans to try it on."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "hosts" / "plan.toml"
PUBLIC_KEY_LINE = re.compile(rb'[ \t]*public_key = "[A-Za-z0-9+/]{43}="(\r?\n)?')
DN42_KEY_LINE = re.compile(rb'[ \t]*dn42_public_key = "[A-Za-z0-9+/]{43}="(\r?\n)?')


def added_lines(before: bytes, after: bytes) -> list[tuple[int, bytes]]:
    """The lines ``after`` adds to ``before`` (index in ``after``, line with its ending);
    fails if anything else differs, a line ending or a blank line included."""
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    added = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), (
            f"{tag} of lines {i1 + 1}-{i2} of the original:\n"
            + "".join(
                line.decode(errors="replace")
                for line in difflib.diff_bytes(difflib.unified_diff, old, new)
            )
        )
        if tag == "insert":
            added += [(j, new[j]) for j in range(j1, j2)]
    return added


def assert_only_public_keys_added(before: bytes, after: bytes, count: int) -> list[bytes]:
    """Exactly ``count`` ``public_key = "..."`` lines were added, each right after a
    ``router_id`` line, ended as that line is; nothing else changed but a host's
    ``dn42_public_key`` line right after its new public_key. Returns the public_key lines."""
    lines = after.splitlines(keepends=True)
    added = []
    for index, line in added_lines(before, after):
        if DN42_KEY_LINE.fullmatch(line):
            previous = lines[index - 1]
            assert PUBLIC_KEY_LINE.fullmatch(previous), (previous, line)
            assert line.endswith(previous[len(previous.rstrip(b"\r\n")) :]), (previous, line)
        else:
            added.append((index, line))
    assert len(added) == count, added
    for index, line in added:
        assert PUBLIC_KEY_LINE.fullmatch(line), line
        previous = lines[index - 1]
        assert previous.lstrip().startswith(b"router_id"), (previous, line)
        ending = previous[len(previous.rstrip(b"\r\n")) :]
        assert line.endswith(ending), (previous, line)
    return [line for _, line in added]


def unkeyed(plan: bytes) -> bytes:
    """The plan without the hosts' own public_key and dn42_public_key lines (a DN42
    peer's public_key stays)."""
    kept, table = [], b""
    for line in plan.splitlines(keepends=True):
        if line.lstrip().startswith(b"["):
            table = line.strip()
        is_host_table = re.fullmatch(rb"\[hosts\.[\w-]+\]", table) is not None
        own_key = line.lstrip().startswith((b"public_key", b"dn42_public_key"))
        if not (is_host_table and own_key):
            kept.append(line)
    return b"".join(kept)


def ibgp_only(plan: bytes) -> bytes:
    """The plan unkeyed and without DN42 peer tables: iBGP keys only, still valid."""
    kept, in_peer = [], False
    for line in unkeyed(plan).splitlines(keepends=True):
        if line.lstrip().startswith(b"["):
            in_peer = re.match(rb"\s*\[hosts\.[\w-]+\.dn42_peers\.", line) is not None
        if not in_peer:
            kept.append(line)
    return b"".join(kept)


def crlf(plan: bytes) -> bytes:
    return plan.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# Comments before and after tables, several blank lines between them, inline
# tables (one holding a peer's own public_key), an indented table, a quoted
# header with a comment, and comments and blank lines after the last table.
# A valid plan: `keys` refuses one that `check` rejects.
TRICKY = b"""# A plan edited by hand.
asn = 4242420038


# The VPS.
[hosts.dmz]   # the reflector
role = "reflector"
router_id = "172.23.101.1"   # its loopback
endpoint = "203.0.113.10"
announce = { ipv4 = ["104.16.0.0/13"], ipv6 = [] }
dn42_peers = { peer1 = { asn = 4242421080, neighbor = "fe80::1080", link_local = "fe80::38/64", public_key = "GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU=" } }

# Comments that belong to the next table...

# ...over two paragraphs.
  [hosts."pve"]
  role = "client"
  router_id = "172.23.101.2"

[links.pve]
reflector = "dmz"
client = "pve"
ipv4 = "10.255.255.0/30"
ipv6 = "fdb7:1dec:4d21:ff::/64"
reflector_ipv4 = "10.255.255.2"
client_ipv4 = "10.255.255.1"
reflector_ipv6 = "fdb7:1dec:4d21:ff::1"
client_ipv6 = "fdb7:1dec:4d21:ff::2"

[links.nas]
reflector = "dmz"
client = "nas"
interface = "wg-nas"
port = 51822
ipv4 = "10.255.255.4/30"
ipv6 = "fdb7:1dec:4d21:fe::/64"
reflector_ipv4 = "10.255.255.6"
client_ipv4 = "10.255.255.5"
reflector_ipv6 = "fdb7:1dec:4d21:fe::1"
client_ipv6 = "fdb7:1dec:4d21:fe::2"

[hosts.nas]
role = "client"
router_id = "172.23.101.3"
# Trailing comments after the last table,

# with blank lines between and after them.


"""  # noqa: E501 (a TOML inline table cannot be split)
