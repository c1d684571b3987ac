"""Shared by the graph tests: read DOT with graphviz's own parser, and SVG as XML.

DOT text is never compared as a string: `dot -Tjson0` parses it (graphviz's
lexer, the one that matters) and its labels are decoded the way graphviz shows
them (escString: \\n, \\l, \\r break lines, a backslash keeps the next
character; HTML entities), so a test sees what a reader of the picture sees."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
DOT_MISSING = None if shutil.which("dot") else "graphviz's dot is not installed (graphviz)"


@dataclass(frozen=True)
class Parsed:
    nodes: dict[str, dict[str, Any]]  # name -> attributes
    edges: dict[str, dict[str, Any]]  # id -> attributes, with "tail" and "head" as names
    clusters: list[str]


def parse_dot(text: str) -> Parsed:
    done = subprocess.run(
        ["dot", "-Tjson0"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"graphviz refused the DOT: {done.stderr}"
    assert done.stderr.strip() == "", f"graphviz warned: {done.stderr}"
    data = json.loads(done.stdout)
    count = data.get("_subgraph_cnt", 0)
    objects = data.get("objects", [])
    names = {o["_gvid"]: o["name"] for o in objects}
    nodes = {o["name"]: o for o in objects[count:]}
    edges = {}
    for edge in data.get("edges", []):
        key = edge.get("id") or f"{names[edge['tail']]}->{names[edge['head']]}"
        assert key not in edges, f"two edges with id {key}"
        edges[key] = {**edge, "tail": names[edge["tail"]], "head": names[edge["head"]]}
    clusters = [o["name"] for o in objects[:count] if o["name"].startswith("cluster")]
    return Parsed(nodes, edges, clusters)


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def shown(label: str) -> list[str]:
    """A label's lines as graphviz draws them."""
    text = _ESCAPE.sub(lambda m: "\n" if m[1] in "nlr" else m[1], label)
    return html.unescape(text).rstrip("\n").split("\n")


def parse_svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg", f"not an SVG document: <{root.tag}>"
    return root


def groups(root: ET.Element) -> dict[str, ET.Element]:
    """SVG <g> elements by id (graphviz gives each node and edge the id DOT set)."""
    return {g.get("id", ""): g for g in root.iter(f"{SVG}g") if g.get("id")}


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def stroke_colours(element: ET.Element) -> set[str]:
    """The stroke colours of an edge's or node's lines (not its arrowheads' fill)."""
    shapes = ("path", "polygon", "ellipse")
    return {
        e.get("stroke", "").lower()
        for shape in shapes
        for e in element.iter(f"{SVG}{shape}")
        if e.get("stroke") not in (None, "none", "transparent")
    }
