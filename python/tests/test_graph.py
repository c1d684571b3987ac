"""`ibgp-tunnel graph`: the plan's picture from the Nix core, drawn by the real
graphviz, coloured by doctor's recorded results, with hostile labels kept inside
their quoted strings and bad input refused with the fix.

The DOT is read back with graphviz's own parser (graphtools.parse_dot), the SVG
as XML; nothing is compared as a string snapshot. The coloured cases use doctor's
recordings of the lab (python/tests/data/doctor, see test_doctor_lab.py), turned
into `doctor --json` files by doctor itself."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import EXAMPLE_PLAN, REPO, TESTS, run
from graphtools import (
    DOT_MISSING,
    groups,
    parse_dot,
    parse_svg,
    shown,
    stroke_colours,
    texts,
)

from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.graph import source
from ibgp_tunnel.graph.dot import ident, to_dot
from ibgp_tunnel.graph.model import Dn42Peer, Host, Link, LinkEnd, PlanGraph
from ibgp_tunnel.graph.state import COLOURS, State, combined, end_state, naming, worst
from ibgp_tunnel.graph.svg import render_svg

pytestmark = pytest.mark.skipif(DOT_MISSING is not None, reason=str(DOT_MISSING))

TWO_REFLECTORS = TESTS / "plans" / "two-reflectors.toml"
RECORDED = TESTS / "data" / "doctor"
BIRDS = sorted(p.name for p in RECORDED.iterdir() if p.is_dir())
DOCS_SVG = REPO / "docs" / "plan.svg"
RED, GREEN, ORANGE, GREY = (COLOURS[s] for s in (State.FAIL, State.OK, State.WARN, State.UNKNOWN))


@pytest.fixture(scope="module")
def example() -> PlanGraph:
    return source.load(EXAMPLE_PLAN)


@pytest.fixture(scope="module")
def two() -> PlanGraph:
    return source.load(TWO_REFLECTORS)


def _label(attrs: dict[str, object]) -> list[str]:
    return shown(str(attrs["label"]))


# --- the picture's content ------------------------------------------------------


def test_example_plan_has_its_hosts_peer_links_and_announcements(example: PlanGraph) -> None:
    parsed = parse_dot(to_dot(example))
    assert set(parsed.nodes) == {"host:dmz", "host:pve", "dn42:dmz:peer1"}
    dmz = _label(parsed.nodes["host:dmz"])
    assert dmz[0] == "dmz" and "route reflector" in dmz[1] and "172.23.101.1" in dmz[1]
    # Everything hosts.dmz.announce lists, and nothing pve announces.
    for prefix in ["104.16.0.0/13", "172.64.0.0/13", "2606:4700::/32", "2803:f800::/32"]:
        assert prefix in dmz
    assert "announces nothing" in _label(parsed.nodes["host:pve"])
    assert _label(parsed.nodes["dn42:dmz:peer1"])[:2] == ["peer1", "DN42 peer AS4242421080"]

    link = parsed.edges["link:pve"]
    assert (link["tail"], link["head"]) == ("host:dmz", "host:pve")
    assert _label(link) == [
        "link pve",
        "wg-ibgp, UDP 51821",
        "10.255.255.0/30",
        "fdb7:1dec:4d21:ff::/64",
        "pve dials 203.0.113.10:51821",
    ]
    session = parsed.edges["session:pve"]
    assert (session["tail"], session["head"], session["style"]) == (
        "host:dmz",
        "host:pve",
        "dashed",
    )
    assert _label(session) == ["iBGP ibgp_pve / ibgp_dmz"]
    # DN42's port is 2 + the peer ASN's last four digits: the rendered one, not a guess.
    assert _label(parsed.edges["dn42-link:dmz:peer1"]) == ["dn42-peer1, UDP 21080"]
    assert _label(parsed.edges["dn42-session:dmz:peer1"]) == ["eBGP dn42_peer1"]
    assert parsed.edges["dn42-link:dmz:peer1"]["head"] == "host:dmz"
    # Uncoloured: no legend, no state.
    assert parsed.clusters == []
    assert not any("class" in e for e in parsed.edges.values())


def test_two_reflector_plan_has_every_link_and_the_reflector_link(two: PlanGraph) -> None:
    parsed = parse_dot(to_dot(two))
    hosts = {n for n in parsed.nodes if n.startswith("host:")}
    assert hosts == {"host:vps1", "host:vps2", "host:home", "host:office"}
    assert {n for n in parsed.nodes if n.startswith("dn42:")} == {
        "dn42:vps1:peer1",
        "dn42:vps2:peer2",
    }
    links = {k: v for k, v in parsed.edges.items() if k.startswith("link:")}
    assert {k: (v["tail"], v["head"]) for k, v in links.items()} == {
        "link:home-vps1": ("host:vps1", "host:home"),
        "link:home-vps2": ("host:vps2", "host:home"),
        "link:office-vps1": ("host:vps1", "host:office"),
        "link:office-vps2": ("host:vps2", "host:office"),
        "link:vps1-vps2": ("host:vps1", "host:vps2"),
    }
    between = _label(links["link:vps1-vps2"])
    assert between[:4] == [
        "reflector link vps1-vps2",
        "wg-vps2, UDP 51830",
        "10.255.255.8/31",
        "fdb7:1dec:4d21:f4::/127",
    ]
    assert _label(links["link:office-vps2"])[1] == "wg-office2, UDP 51824"
    assert _label(parsed.edges["session:vps1-vps2"]) == ["iBGP ibgp_vps2 / ibgp_vps1"]
    assert _label(parsed.edges["session:home-vps2"]) == ["iBGP ibgp_home / ibgp_vps2"]
    assert "192.168.2.0/24" in _label(parsed.nodes["host:office"])
    # peer1 is a plain interface here (no WireGuard key): no tunnel port to show.
    assert _label(parsed.edges["dn42-link:vps1:peer1"]) == ["dn42-peer1"]


def test_dot_draws_a_valid_svg_of_the_example(tmp_path: Path) -> None:
    out = tmp_path / "plan.svg"
    result = run("graph", EXAMPLE_PLAN, "-o", out)
    assert result.exit_code == 0, result.output
    root = parse_svg(out.read_text(encoding="utf-8"))
    found = groups(root)
    for element in ["host:dmz", "host:pve", "dn42:dmz:peer1", "link:pve", "session:pve"]:
        assert element in found, f"{element} is not drawn"
    assert "wg-ibgp, UDP 51821" in texts(found["link:pve"])
    assert "104.16.0.0/13" in texts(found["host:dmz"])


def test_svg_goes_to_standard_output_without_o() -> None:
    result = run("graph", EXAMPLE_PLAN)
    assert result.exit_code == 0
    assert "link:pve" in groups(parse_svg(result.stdout))


# --- colours from doctor's results ----------------------------------------------


def _doctor_json(tmp_path: Path, bird: str, case: str, host: str) -> Path:
    recording = RECORDED / bird / case / host
    result = run("doctor", EXAMPLE_PLAN, "--host", host, "--from-outputs", recording, "--json")
    out = tmp_path / f"{case}-{host}.json"
    out.write_text(result.stdout, encoding="utf-8")
    return out


def _coloured_svg(*files: Path) -> dict[str, object]:
    args = [a for f in files for a in ("--doctor-json", f)]
    result = run("graph", EXAMPLE_PLAN, *args)
    assert result.exit_code == 0, result.output
    return groups(parse_svg(result.stdout))


@pytest.mark.parametrize("bird", BIRDS)
def test_blocked_wireguard_port_colours_the_link_red(tmp_path: Path, bird: str) -> None:
    dmz = _doctor_json(tmp_path, bird, "udp-blocked-on-reflector", "dmz")
    found = _coloured_svg(dmz)
    assert found["link:pve"].get("class") == "edge state-fail"
    assert stroke_colours(found["link:pve"]) == {RED}
    # The BGP session had not noticed yet when doctor looked: green, as doctor said.
    assert stroke_colours(found["session:pve"]) == {GREEN}
    # No result for pve: its outline is grey; the legend names every colour.
    assert "state-unknown" in str(found["host:pve"].get("class"))
    assert {"legend:ok", "legend:warn", "legend:fail", "legend:unknown"} <= set(found)
    assert texts(found["legend:unknown"]) == ["unknown (no result)"]


@pytest.mark.parametrize("bird", BIRDS)
def test_healthy_hosts_colour_every_line_green(tmp_path: Path, bird: str) -> None:
    files = [_doctor_json(tmp_path, bird, "healthy", h) for h in ("dmz", "pve")]
    found = _coloured_svg(*files)
    for edge in ["link:pve", "session:pve", "dn42-link:dmz:peer1", "dn42-session:dmz:peer1"]:
        assert stroke_colours(found[edge]) == {GREEN}, edge


@pytest.mark.parametrize("bird", BIRDS)
def test_a_failed_session_is_red_and_its_link_not(tmp_path: Path, bird: str) -> None:
    pve = _doctor_json(tmp_path, bird, "wrong-peer-asn", "pve")
    doctor = json.loads(pve.read_text(encoding="utf-8"))
    first = doctor["first_failure"]["id"]
    found = _coloured_svg(pve)
    assert first.split()[-1] == "ibgp_dmz", first
    assert stroke_colours(found["session:pve"]) == {RED}
    # The tooltip says which check decided.
    tooltip = found["a_session:pve"].find("{http://www.w3.org/2000/svg}a")
    assert tooltip is not None
    assert first in tooltip.get("{http://www.w3.org/1999/xlink}title", "")


def test_warn_is_orange_and_fail_wins_over_warn(example: PlanGraph) -> None:
    results = {
        "pve": [
            Check("wireguard.handshake wg-ibgp dmz", Status.WARN, "old", "", "wait"),
            Check("bgp.session ibgp_dmz", Status.OK, "Established"),
        ],
        "dmz": [Check("bgp.session ibgp_pve", Status.FAIL, "Idle", "", "fix")],
    }
    parsed = parse_dot(to_dot(example, results))
    assert parsed.edges["link:pve"]["color"] == ORANGE
    assert parsed.edges["session:pve"]["color"] == RED
    assert parsed.edges["dn42-link:dmz:peer1"]["color"] == GREY
    assert parsed.clusters == ["cluster_legend"]


def test_reflector_link_takes_the_worse_end(two: PlanGraph) -> None:
    results = {
        "vps1": [
            Check("wireguard.handshake wg-vps2 vps2", Status.OK, "fresh"),
            Check("bgp.session ibgp_vps2", Status.OK, "Established"),
        ],
        "vps2": [
            Check("wireguard.handshake wg-vps2 vps1", Status.OK, "fresh"),
            Check("firewall.port udp/51830 eth0", Status.FAIL, "dropped", "", "open it"),
            Check("bgp.session ibgp_vps1", Status.WARN, "Connect", "", "wait"),
        ],
    }
    parsed = parse_dot(to_dot(two, results))
    assert parsed.edges["link:vps1-vps2"]["color"] == RED
    assert parsed.edges["session:vps1-vps2"]["color"] == ORANGE
    assert shown(parsed.edges["link:vps1-vps2"]["tooltip"]) == [
        "link vps1-vps2: fail",
        "firewall.port udp/51830 eth0: dropped",
    ]
    # No results for the clients, and vps1's own checks do not name their links.
    assert parsed.edges["link:home-vps1"]["color"] == GREY
    assert parsed.nodes["host:home"]["class"] == "state-unknown"


def test_states_match_whole_words_and_ignore_skips() -> None:
    checks = [
        Check("tunnel.mtu wg-ibgp2", Status.FAIL, "x"),
        Check("firewall.port udp/518210 eth0", Status.FAIL, "x"),
        Check("tunnel.addresses wg-ibgp", Status.SKIP, "not checked"),
    ]
    # wg-ibgp is not wg-ibgp2, udp/51821 is not udp/518210.
    assert naming(checks, ["wg-ibgp", "udp/51821"]) == [checks[2]]
    assert end_state({"h": checks}, "h", "wg-ibgp", 51821).state is State.UNKNOWN
    assert end_state({}, "h", "wg-ibgp", 51821).state is State.UNKNOWN
    ok = worst([Check("a", Status.OK, "")])
    bad = worst([Check("b", Status.FAIL, "")])
    assert combined(ok, bad).state is State.FAIL
    assert combined(ok, worst([])).state is State.OK
    assert combined(worst([]), worst([])).state is State.UNKNOWN


# --- hostile values ---------------------------------------------------------------

HOSTILE = [
    'a"; "evil" [label="x"]; "b',
    "c\\",
    'd\\"]; injected -> x; "',
    "\\N \\G \\n \\l \\E",
    "&lt;&amp;&#65; & <b>",
    "</text><script>alert(1)</script><!-- -->",
    "line\nbreak\r\x00\x1b[31m\u202e",
    "\ud800 lone surrogate",
    "} digraph x { y",
]


def _hostile_graph(value: str) -> PlanGraph:
    hosts = (
        Host(f"r{value}", "reflector", value, (value, "10.0.0.0/8")),
        Host(f"c{value}", "client", value, ()),
    )
    link = Link(
        name=value,
        listener=LinkEnd(f"r{value}", value, (), value),
        dialer=LinkEnd(f"c{value}", f"{value}2", (), value),
        port=51821,
        subnets=(value,),
        between_reflectors=False,
        endpoint=value,
    )
    peer = Dn42Peer(f"r{value}", value, 4242421080, value, value, 21080, value)
    return PlanGraph(4242420038, hosts, (link,), (peer,))


def _displayed(value: str) -> str:
    # What may legitimately change: controls and lone surrogates become U+FFFD.
    return "".join(
        "\ufffd"
        if ord(ch) < 0x20
        or 0x7F <= ord(ch) <= 0x9F
        or 0xD800 <= ord(ch) <= 0xDFFF
        or ch in "\u202a\u202b\u202c\u202d\u202e"
        else ch
        for ch in value
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_inside_their_labels(value: str) -> None:
    # The check names the DN42 tunnel's port; its summary is the hostile value.
    results = {f"r{value}": [Check("tunnel.x udp/21080", Status.FAIL, value, value, value)]}
    text = to_dot(_hostile_graph(value), results)
    parsed = parse_dot(text)
    want = _displayed(value)
    i = ident(value)
    assert set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-%")
    # Exactly our nodes and edges: nothing injected, nothing merged.
    assert set(parsed.nodes) == {
        f"host:r{i}",
        f"host:c{i}",
        f"dn42:r{i}:{i}",
        *(f"legend:{s.value}" for s in State),
    }
    assert set(parsed.edges) == {
        f"link:{i}",
        f"session:{i}",
        f"dn42-link:r{i}:{i}",
        f"dn42-session:r{i}:{i}",
    } | {
        f"legend:{a.value}->legend:{b.value}" for a, b in zip(State, list(State)[1:], strict=False)
    }
    # Each label shows the value as written, one line.
    assert _label(parsed.nodes[f"host:r{i}"])[:4] == [
        f"r{want}",
        f"route reflector, router id {want}",
        "announces:",
        want,
    ]
    assert _label(parsed.edges[f"link:{i}"])[:4] == [
        f"link {want}",
        f"{want} / {want}2, UDP 51821",
        want,
        f"c{want} dials {want}",
    ]
    assert _label(parsed.edges[f"dn42-session:r{i}:{i}"]) == [f"eBGP {want}"]
    assert shown(parsed.edges[f"dn42-link:r{i}:{i}"]["tooltip"])[1] == (
        f"tunnel.x udp/21080: {want}"
    )
    # The real dot draws it; the SVG is well-formed XML holding no element of ours.
    root = parse_svg(render_svg(text))
    tags = {element.tag.split("}")[-1] for element in root.iter()}
    assert tags <= {"svg", "g", "title", "text", "path", "polygon", "ellipse", "a"}
    assert f"r{want}" in [t for g in root.iter() for t in texts(g)]


# --- the committed picture ----------------------------------------------------


def _content(svg_text: str) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    # Layout coordinates differ between graphviz versions; what is drawn does not.
    return {
        key: (g.get("class"), tuple(texts(g))) for key, g in groups(parse_svg(svg_text)).items()
    }


def test_docs_plan_svg_is_the_example_plan_drawn_now(tmp_path: Path) -> None:
    # Regenerate with: .venv/bin/ibgp-tunnel graph hosts/plan.toml -o docs/plan.svg
    out = tmp_path / "plan.svg"
    assert run("graph", EXAMPLE_PLAN, "-o", out).exit_code == 0
    assert _content(DOCS_SVG.read_text(encoding="utf-8")) == _content(
        out.read_text(encoding="utf-8")
    ), "docs/plan.svg is stale: .venv/bin/ibgp-tunnel graph hosts/plan.toml -o docs/plan.svg"


# --- bad input ------------------------------------------------------------------


def _refused(result: object, code: int, *words: str) -> str:
    said = result.stdout + (result.stderr or "")  # type: ignore[attr-defined]
    assert result.exit_code == code, said  # type: ignore[attr-defined]
    for word in words:
        assert word in said, f"{word!r} not in {said!r}"
    return said


def test_missing_plan_says_so(tmp_path: Path) -> None:
    _refused(run("graph", tmp_path / "nope.toml"), 2, "no such file", "ibgp-tunnel init")


def test_bad_plan_is_refused_with_its_findings(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    text = EXAMPLE_PLAN.read_text(encoding="utf-8").replace("port = 51821", "port = 0")
    plan.write_text(text, encoding="utf-8")
    result = run("graph", plan)
    _refused(result, 1, "links.pve.port", "does not pass `ibgp-tunnel check`")
    assert result.stdout == "", "standard output is the picture's, not the findings'"
    plan.write_text("asn = [", encoding="utf-8")
    _refused(run("graph", plan), 2, "not valid TOML")


def test_hostile_host_name_is_stopped_by_check_before_drawing(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    text = EXAMPLE_PLAN.read_text(encoding="utf-8").replace("[hosts.pve]", '[hosts."p\\"ve"]')
    plan.write_text(text, encoding="utf-8")
    out = tmp_path / "out.svg"
    said = _refused(run("graph", plan, "-o", out), 1, "does not pass")
    assert not out.exists(), said


def test_no_dot_names_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nix = shutil.which("nix-instantiate")
    assert nix is not None
    (tmp_path / "nix-instantiate").symlink_to(nix)
    monkeypatch.setenv("PATH", str(tmp_path))
    _refused(run("graph", EXAMPLE_PLAN), 2, "install graphviz")
    # The DOT text needs no graphviz.
    result = run("graph", EXAMPLE_PLAN, "--format", "dot")
    assert result.exit_code == 0, result.output
    assert "link:pve" in result.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("not json", ["is not JSON", "doctor --json"]),
        ("[]", ["no object at the top", "doctor --json"]),
        ('{"host": "pve"}', ['no "host" and "checks"', "doctor --json"]),
        ('{"host": "nothere", "checks": []}', ["no host of the plan", "give the plan"]),
        ('{"host": "pve", "checks": [{"id": "x", "status": "great"}]}', ["status must be one of"]),
        (
            '{"host": "pve", "checks": [{"id": 1, "status": "ok"}]}',
            ["checks[0].id is not a string"],
        ),
    ],
)
def test_bad_doctor_json_is_refused(tmp_path: Path, content: str, words: list[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    _refused(run("graph", EXAMPLE_PLAN, "--doctor-json", bad), 2, *words)


def test_doctor_json_too_deep_or_too_large_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"host": "pve", "checks": ' + "[" * 100000 + "]" * 100000 + "}")
    _refused(run("graph", EXAMPLE_PLAN, "--doctor-json", deep), 2, "nests deeper")
    large = tmp_path / "large.json"
    with large.open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)
    _refused(run("graph", EXAMPLE_PLAN, "--doctor-json", large), 2, "larger than")


def test_doctor_json_that_is_no_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    _refused(run("graph", EXAMPLE_PLAN, "--doctor-json", fifo), 2, "not a regular file")
    _refused(run("graph", EXAMPLE_PLAN, "--doctor-json", tmp_path), 2, "not a regular file")
    _refused(run("graph", EXAMPLE_PLAN, "--doctor-json", tmp_path / "none"), 2, "cannot read")


def test_one_result_per_host(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text('{"host": "pve", "checks": []}', encoding="utf-8")
    two = tmp_path / "two.json"
    two.write_text('{"host": "pve", "checks": []}', encoding="utf-8")
    _refused(
        run("graph", EXAMPLE_PLAN, "--doctor-json", one, "--doctor-json", two),
        2,
        "both results for 'pve'",
    )


def test_lab_and_doctor_json_together_are_refused(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text('{"host": "pve", "checks": []}', encoding="utf-8")
    _refused(run("graph", EXAMPLE_PLAN, "--lab", "--doctor-json", one), 2, "not both")


def test_no_lab_up_says_how_to_start_one(tmp_path: Path) -> None:
    _refused(run("graph", "--lab", "--lab-dir", tmp_path / "none"), 2, "ibgp-tunnel lab up")


def test_output_is_written_whole_and_over_a_symlink_not_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    out = tmp_path / "plan.svg"
    out.symlink_to(victim)
    assert run("graph", EXAMPLE_PLAN, "-o", out).exit_code == 0
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not out.is_symlink()
    parse_svg(out.read_text(encoding="utf-8"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    _refused(run("graph", EXAMPLE_PLAN, "-o", tmp_path / "no" / "dir.svg"), 2, "not a directory")
    _refused(run("graph", EXAMPLE_PLAN, "-o", tmp_path), 2, "is a directory")
