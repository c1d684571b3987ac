"""The plan's picture as DOT text (graphviz), a pure function of the data.

Every value a plan or a doctor result holds passes `quoted` on its way into the
DOT text, so a name, a prefix or a check summary stays inside its quoted
string whatever it contains: backslashes and quotes are escaped (DOT's lexer
and graphviz's label escapes \\N, \\n, ...), `&` is written `&amp;` (graphviz
decodes HTML entities in labels), and control characters, which have no place
in a label, become U+FFFD. Node and element ids are built by `ident`
(%-encoded), so they need no escaping at all. The plan's validation already
restricts names; this does not rely on it.

Layout: DN42 peers on top, reflectors below them, clients at the bottom. A
solid line is a WireGuard tunnel, a dashed one the BGP session over it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from ibgp_tunnel.graph.model import Dn42Peer, Host, Link, PlanGraph
from ibgp_tunnel.graph.state import (
    COLOURS,
    UNSEEN,
    Results,
    Seen,
    State,
    combined,
    end_state,
    host_state,
    session_state,
)

FONT = "Helvetica"
NEUTRAL = "#37474f"
ROLE_FILL = {"reflector": "#e3f2fd", "client": "#f1f8e9"}
PEER_FILL = "#fff8e1"
MAX_PREFIXES = 12  # more are summed up as "... and N more"
MAX_TOOLTIP_CHECKS = 6
_ID_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
# C0/C1 controls, DEL, lone surrogates (JSON allows them, UTF-8 does not) and the
# bidirectional overrides that make a label read differently from what it holds.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def text(value: str) -> str:
    """`value` as the body of a DOT quoted string that graphviz shows as written."""
    safe = _UNSAFE.sub("\ufffd", value)
    return safe.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def quoted(value: str) -> str:
    return f'"{text(value)}"'


def lines(*rows: str) -> str:
    """A multi-line label: each row escaped, then joined by graphviz's \\n."""
    return '"' + "\\n".join(text(row) for row in rows) + '"'


def _attributes(**attrs: str) -> str:
    """`[key=value, ...]`; values are already quoted/escaped DOT strings."""
    return "[" + ", ".join(f"{key}={value}" for key, value in attrs.items()) + "]"


def ident(value: str) -> str:
    """`value` as a part of a node or element id: letters, digits, `_.-` kept, every
    other byte %XX, so ids need no escaping in DOT or SVG, `:` only ever separates
    parts, and two values never share an id. Plan names come out unchanged."""
    return "".join(
        chr(byte) if chr(byte) in _ID_CHARS else f"%{byte:02X}"
        for byte in value.encode("utf-8", "surrogatepass")
    )


def host_id(name: str) -> str:
    return f"host:{ident(name)}"


def peer_id(peer: Dn42Peer) -> str:
    return f"dn42:{ident(peer.reflector)}:{ident(peer.name)}"


def _prefix_rows(prefixes: Sequence[str]) -> list[str]:
    if not prefixes:
        return ["announces nothing"]
    shown = list(prefixes[:MAX_PREFIXES])
    if len(prefixes) > MAX_PREFIXES:
        shown.append(f"... and {len(prefixes) - MAX_PREFIXES} more")
    return ["announces:", *shown]


def _tooltip(title: str, seen: Seen) -> str:
    if seen.state is State.UNKNOWN:
        return lines(f"{title}: unknown (no doctor result)")
    rows = [f"{title}: {seen.state.value}"]
    rows += [f"{c.id}: {c.summary}" for c in seen.because[:MAX_TOOLTIP_CHECKS]]
    if len(seen.because) > MAX_TOOLTIP_CHECKS:
        rows.append(f"... and {len(seen.because) - MAX_TOOLTIP_CHECKS} more")
    return lines(*rows)


def _coloured(seen: Seen | None, title: str) -> dict[str, str]:
    if seen is None:
        return {"color": quoted(NEUTRAL), "fontcolor": quoted(NEUTRAL)}
    colour = quoted(COLOURS[seen.state])
    return {
        "color": colour,
        "fontcolor": colour,
        "class": quoted(f"state-{seen.state.value}"),
        "tooltip": _tooltip(title, seen),
    }


def _host_node(host: Host, results: Results | None) -> str:
    role = "route reflector" if host.role == "reflector" else host.role
    attrs = {
        "id": quoted(host_id(host.name)),
        "shape": "box",
        "style": '"rounded,filled"',
        "fillcolor": quoted(ROLE_FILL.get(host.role, "#eeeeee")),
        "label": lines(
            host.name, f"{role}, router id {host.router_id}", *_prefix_rows(host.announce)
        ),
    }
    if results is not None:
        seen = host_state(results, host.name)
        attrs |= {
            "color": quoted(COLOURS[seen.state]),
            "penwidth": "2",
            "class": quoted(f"state-{seen.state.value}"),
            "tooltip": _tooltip(f"host {host.name}", seen),
        }
    return f"  {quoted(host_id(host.name))} {_attributes(**attrs)};"


def _peer_node(peer: Dn42Peer) -> str:
    attrs = {
        "id": quoted(peer_id(peer)),
        "shape": "ellipse",
        "style": "filled",
        "fillcolor": quoted(PEER_FILL),
        "label": lines(peer.name, f"DN42 peer AS{peer.asn}", f"neighbor {peer.neighbor}"),
    }
    return f"  {quoted(peer_id(peer))} {_attributes(**attrs)};"


def _edge(tail: str, head: str, **attrs: str) -> str:
    return f"  {quoted(tail)} -> {quoted(head)} {_attributes(**attrs)};"


def _link_edges(link: Link, results: Results | None) -> list[str]:
    a, b = link.listener, link.dialer
    interface = a.interface if a.interface == b.interface else f"{a.interface} / {b.interface}"
    kind = "reflector link" if link.between_reflectors else "link"
    port = f"UDP {link.port}" if link.port is not None else "no UDP port"
    dials = [f"{b.host} dials {link.endpoint}"] if link.endpoint else []
    tunnel_seen = session_seen = None
    if results is not None:
        tunnel_seen = combined(
            end_state(results, a.host, a.interface, link.port),
            end_state(results, b.host, b.interface, link.port),
        )
        session_seen = combined(
            session_state(results, a.host, a.session), session_state(results, b.host, b.session)
        )
    layout = {"constraint": "false"} if link.between_reflectors else {}
    tunnel = _edge(
        host_id(a.host),
        host_id(b.host),
        id=quoted(f"link:{ident(link.name)}"),
        dir="none",
        penwidth="2.5",
        label=lines(f"{kind} {link.name}", f"{interface}, {port}", *link.subnets, *dials),
        **_coloured(tunnel_seen, f"link {link.name}"),
        **layout,
    )
    session = _edge(
        host_id(a.host),
        host_id(b.host),
        id=quoted(f"session:{ident(link.name)}"),
        dir="both",
        style="dashed",
        label=lines(f"iBGP {a.session or '?'} / {b.session or '?'}"),
        **_coloured(session_seen, f"iBGP over {link.name}"),
        **layout,
    )
    return [tunnel, session]


def _peer_edges(peer: Dn42Peer, results: Results | None) -> list[str]:
    edges = []
    tunnel_seen = session_seen = None
    if results is not None:
        tunnel_seen = end_state(results, peer.reflector, peer.interface, peer.port)
        session_seen = session_state(results, peer.reflector, peer.session)
    if peer.interface:
        port = f", UDP {peer.port}" if peer.port is not None else ""
        edges.append(
            _edge(
                peer_id(peer),
                host_id(peer.reflector),
                id=quoted(f"dn42-link:{ident(peer.reflector)}:{ident(peer.name)}"),
                dir="none",
                penwidth="2.5",
                label=lines(f"{peer.interface}{port}"),
                **_coloured(tunnel_seen, f"DN42 tunnel {peer.interface}"),
            )
        )
    edges.append(
        _edge(
            peer_id(peer),
            host_id(peer.reflector),
            id=quoted(f"dn42-session:{ident(peer.reflector)}:{ident(peer.name)}"),
            dir="both",
            style="dashed",
            label=lines(f"eBGP {peer.session or '?'}"),
            **_coloured(session_seen, f"eBGP with {peer.name}"),
        )
    )
    return edges


def _legend() -> list[str]:
    rows = [
        "  subgraph cluster_legend {",
        f"    label={quoted('doctor says')};",
        "    color=grey;",
        # rank=same holds only outside a cluster: an inner subgraph lays the keys in a row.
        "    { rank=same;",
    ]
    names = {
        State.OK: "ok",
        State.WARN: "warn",
        State.FAIL: "fail",
        State.UNKNOWN: "unknown (no result)",
    }
    for state, name in names.items():
        node = f"legend:{state.value}"
        attrs = {
            "id": quoted(node),
            "shape": "box",
            "style": "filled",
            "fillcolor": quoted(COLOURS[state]),
            "fontcolor": quoted("white"),
            "label": quoted(name),
        }
        rows.append(f"    {quoted(node)} {_attributes(**attrs)};")
    order = " -> ".join(quoted(f"legend:{s.value}") for s in names)
    rows += [f"    {order} [style=invis];", "    }", "  }"]
    return rows


def to_dot(graph: PlanGraph, results: Results | None = None) -> str:
    """The DOT text of `graph`; with doctor's `results` (host -> checks) each link,
    session and host is coloured by its state, and a legend says which is which."""
    title = f"AS{graph.asn}: solid = WireGuard tunnel, dashed = BGP session"
    out = [
        "digraph plan {",
        f"  graph [label={quoted(title)}, labelloc=t, fontname={quoted(FONT)}, "
        "rankdir=TB, nodesep=0.6, ranksep=0.9];",
        f"  node [fontname={quoted(FONT)}, fontsize=10];",
        f"  edge [fontname={quoted(FONT)}, fontsize=9];",
    ]
    out += [_host_node(h, results) for h in graph.hosts]
    out += [_peer_node(p) for p in graph.dn42_peers]
    reflectors = [h.name for h in graph.hosts if h.role == "reflector"]
    if reflectors:
        same = "; ".join(quoted(host_id(n)) for n in reflectors)
        out.append(f"  {{ rank=same; {same}; }}")
    for link in graph.links:
        out += _link_edges(link, results)
    for peer in graph.dn42_peers:
        out += _peer_edges(peer, results)
    if results is not None:
        out += _legend()
    out.append("}")
    return "\n".join(out) + "\n"


__all__ = ["UNSEEN", "ident", "lines", "quoted", "text", "to_dot"]
