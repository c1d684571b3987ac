"""The core's DN42 rendering and rules (render/dn42.nix, spec/dn42-problems.nix,
plan/rules/dn42.nix under modules/lib) on variations of the example plan;
every rendered bird.conf goes through the build-time check on each BIRD here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from birdcheck import build_time_check
from nixcore import (
    CORE,
    EXAMPLE_PLAN,
    EXAMPLE_ROA_FILES_PLAN,
    core_call,
    needs_nix,
    nix_eval,
    nix_eval_error,
    problems_of,
    render,
)
from test_dn42_roa import BIRDS

pytestmark = needs_nix


def _plan(tmp_path: Path, base: Path = EXAMPLE_PLAN, **peer: Any) -> Path:
    data = tomllib.loads(base.read_text())
    table = data["hosts"]["dmz"]["dn42_peers"]["peer1"]
    for key, value in peer.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    path = tmp_path / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    return path


def _session(conf: str) -> str:
    return conf.split("protocol bgp dn42_peer1 {", 1)[1].split("\n}\n", 1)[0]


def _parses(artifacts: dict[str, Any], tmp_path: Path) -> None:
    for name, directory in BIRDS:
        done = build_time_check(artifacts, tmp_path / name, str(directory / "bird"))
        assert done.returncode == 0, f"{name}: {done.stderr}"


def test_defaults_from_the_asn_and_the_tunnel(tmp_path: Path) -> None:
    plan = _plan(tmp_path, listen_port=None, crypto=None, asn=4242423914)
    artifacts = render(plan, "dmz")
    assert artifacts["wireguard"]["dn42-peer1"]["listenPort"] == 23914
    assert "dn42_update_crypto(34);" in _session(artifacts["birdConfig"])
    _parses(artifacts, tmp_path)


def test_explicit_crypto_and_untagged_kinds(tmp_path: Path) -> None:
    plan = _plan(tmp_path, crypto=33, latency=None, bandwidth=None)
    session = _session(render(plan, "dmz")["birdConfig"])
    assert "dn42_update_crypto(33);" in session
    assert "dn42_update_latency" not in session and "dn42_update_bandwidth" not in session


def test_an_ipv4_session_over_the_tunnel_stays_possible(tmp_path: Path) -> None:
    plan = _plan(tmp_path, neighbor="172.20.42.1")
    artifacts = render(plan, "dmz")
    session = _session(artifacts["birdConfig"])
    assert "neighbor 172.20.42.1 as 4242421080;" in session
    assert 'interface "dn42-peer1";' in session
    assert "extended next hop" not in session and "source address" not in session
    _parses(artifacts, tmp_path)


def test_a_peer_without_tunnel_is_left_to_the_host(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        neighbor="172.20.42.1",
        public_key=None,
        link_local=None,
        preshared_key=None,
        persistent_keepalive=None,
        ipv4=None,
        peer_ipv4=None,
    )
    artifacts = render(plan, "dmz")
    assert list(artifacts["wireguard"]) == ["wg-ibgp"]
    assert artifacts["secretNames"]["dn42"] is None
    # No tunnel: what protects the link is unknown, so no crypto community.
    assert "dn42_update_crypto(" not in _session(artifacts["birdConfig"])
    assert "dn42_roa_import_ipv4();" in artifacts["birdConfig"]  # ROA still applies
    _parses(artifacts, tmp_path)


def test_roa_off_leaves_no_include(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    data["hosts"]["dmz"]["dn42_roa"] = {"enable": False}
    plan = tmp_path / "plan.toml"
    plan.write_text(tomlkit.dumps(data))
    artifacts = render(plan, "dmz")
    assert artifacts["dn42Roa"] is None
    assert 'include "' not in artifacts["birdConfig"]
    _parses(artifacts, tmp_path)


SPEC = f'core.hostFromPlan (core.readPlan {EXAMPLE_PLAN}) "dmz"'


def _with_peer2(**tunnel: Any) -> str:
    fields = " ".join(f"{k} = {v};" for k, v in tunnel.items())
    return (
        f"let s = {SPEC}; p = s.dn42Peers.peer1; in s // {{ dn42Peers = s.dn42Peers // "
        f"{{ peer2 = p // {{ interface = null; tunnel = p.tunnel // {{ {fields} }}; }}; }}; }}"
    )


def test_two_tunnels_on_one_port_is_a_problem() -> None:
    found = problems_of(_with_peer2(listenPort=21080))
    for peer, other in (("peer1", "peer2"), ("peer2", "peer1")):
        assert any(
            p["path"] == f"services.ibgpTunnel.dn42Peers.{peer}.tunnel.listenPort"
            and f"dn42Peers.{other}" in p["message"]
            for p in found
        ), found


def test_a_tunnel_on_the_ibgp_interface_is_a_problem() -> None:
    peer = 's.dn42Peers.peer1 // { interface = "wg-ibgp"; }'
    spec = f"let s = {SPEC}; in s // {{ dn42Peers.peer1 = {peer}; }}"
    found = problems_of(spec)
    assert any(p["path"].endswith("dn42Peers.peer1.interface") for p in found), found


def test_half_an_ipv4_pair_is_a_problem() -> None:
    spec = (
        f"let s = {SPEC}; p = s.dn42Peers.peer1; in s // {{ dn42Peers.peer1 = p // "
        "{ tunnel = p.tunnel // { peerIpv4 = null; }; }; }"
    )
    found = problems_of(spec)
    assert any("ipv4 and peerIpv4" in p["message"] for p in found), found


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("latency", "0", "dn42Peers.peer1.latency"),
        ("bandwidth", "30", "dn42Peers.peer1.bandwidth"),
        ("crypto", "35", "dn42Peers.peer1.crypto"),
    ],
)
def test_community_ranges_are_checked_where_emitted(field: str, value: str, shown: str) -> None:
    peer = f"s.dn42Peers.peer1 // {{ {field} = {value}; }}"
    spec = f"let s = {SPEC}; in s // {{ dn42Peers.peer1 = {peer}; }}"
    found = core_call(f"core.problems ({spec})")
    assert any(p["path"].endswith(shown) for p in found), found


# --- misplans the option types cannot see (issue 19): the same checkers as
# the plan rules (checks.nix), so a hand-set option is refused as check refuses
# the plan.


def _peer1(fields: str, tunnel: str = "") -> str:
    return (
        f"let s = {SPEC}; p = s.dn42Peers.peer1; in s // {{ dn42Peers.peer1 = p // "
        f"{{ {fields} tunnel = p.tunnel // {{ {tunnel} }}; }}; }}"
    )


def _paths(found: list[dict[str, str]]) -> dict[str, str]:
    return {p["path"]: p["message"] for p in found}


PEERS = "services.ibgpTunnel.dn42Peers"


@pytest.mark.parametrize(
    ("fields", "tunnel", "path", "named"),
    [
        ('interface = "eth0";', "", f"{PEERS}.peer1.interface", "uplinkInterfaces"),
        ("", "listenPort = 4784;", f"{PEERS}.peer1.tunnel.listenPort", "BFD"),
        ("", "listenPort = 3784;", f"{PEERS}.peer1.tunnel.listenPort", "BFD"),
        ("", 'peerIpv4 = "10.255.255.1";', f"{PEERS}.peer1.tunnel.peerIpv4", "links.pve.ips"),
        ("", 'peerIpv4 = "172.23.101.1";', f"{PEERS}.peer1.tunnel.peerIpv4", "our ipv4"),
        (
            "",
            'endpoint = "198.18.0.20:21080"; peerIpv4 = "198.18.0.20";',
            f"{PEERS}.peer1.tunnel.peerIpv4",
            "tunnel.endpoint",
        ),
        ('exportSets = [ "cf" ];', "", f"{PEERS}.peer1.exportSets", '"cf"'),
    ],
)
def test_spec_misplans_are_problems(fields: str, tunnel: str, path: str, named: str) -> None:
    found = _paths(problems_of(_peer1(fields, tunnel)))
    assert path in found and named in found[path], found


def test_the_example_has_none_of_these_problems() -> None:
    assert problems_of(SPEC) == []
    assert problems_of(_peer1('exportSets = [ "dn42" ];')) == []


def test_a_tunnel_on_another_peers_default_interface_is_a_problem() -> None:
    # peer2 has no interface of its own: dn42-peer2; peer1 takes it.
    spec = (
        f"let s = {SPEC}; p = s.dn42Peers.peer1; in s // {{ dn42Peers = {{ "
        f'peer1 = p // {{ interface = "dn42-peer2"; }}; '
        "peer2 = p // { interface = null; tunnel = p.tunnel // { listenPort = 21081; }; }; }; }"
    )
    found = _paths(problems_of(spec))
    assert f"{PEERS}.peer1.interface" in found and f"{PEERS}.peer2.interface" in found, found


def test_a_dialled_link_port_is_taken() -> None:
    # A reflector dialling another reflector binds that link's port too.
    spec = (
        f"let s = {SPEC}; in s // {{ links.pve = s.links.pve // {{ listenPort = 21080; "
        'peer = s.links.pve.peer // { endpoint = "198.18.0.20:21080"; }; }; }'
    )
    found = _paths(problems_of(spec))
    assert "links.pve.listenPort" in found.get(f"{PEERS}.peer1.tunnel.listenPort", ""), found


def test_a_link_on_a_bfd_port_is_a_problem() -> None:
    spec = f"let s = {SPEC}; in s // {{ links.pve = s.links.pve // {{ listenPort = 4784; }}; }}"
    found = _paths(problems_of(spec))
    assert "BFD" in found.get("services.ibgpTunnel.links.pve.listenPort", ""), found


# What BIRD itself says of a peer named after one of the DN42 names bird.conf
# defines: the rule's reason, on the real BIRD.
def test_bird_refuses_a_peer_named_like_a_generated_symbol(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    peers = data["hosts"]["dmz"]["dn42_peers"]
    peers["roa4"] = peers.pop("peer1")
    peers["roa4"]["interface"] = "dn42-roa4"
    plan = tmp_path / "plan.toml"
    plan.write_text(tomlkit.dumps(data))
    found = core_call(f"core.planProblems (core.readPlan {plan})")
    assert [f["path"] for f in found if f["severity"] == "error"] == ["hosts.dmz.dn42_peers.roa4"]
    artifacts = render(plan, "dmz")
    for name, directory in BIRDS:
        done = build_time_check(artifacts, tmp_path / name, str(directory / "bird"))
        assert done.returncode != 0 and "dn42_roa4" in done.stderr, f"{name}: {done.stderr}"


def test_the_generated_dn42_names_are_the_rendered_ones(tmp_path: Path) -> None:
    """ownSymbols, which the peer-name rule reads, is every dn42_ name bird.conf
    defines besides the sessions: none missing, none stale (with ROA files, and over
    RTR with the most caches a plan may list)."""
    caches = [{"address": "127.0.0.1", "port": 8000 + i} for i in range(8)]
    rtr = _roa_plan(tmp_path, source="rtr", rtr_caches=caches)
    defined = set()
    for plan in (EXAMPLE_ROA_FILES_PLAN, rtr):
        conf = render(plan, "dmz")["birdConfig"]
        defined |= set(
            re.findall(r"^(?:protocol \w+|function|roa[46] table) (dn42_\w+)", conf, re.MULTILINE)
        )
    own = set(nix_eval(f"(import {CORE}).dn42OwnSymbols"))
    assert defined - {"dn42_peer1"} == own


def _roa_plan(tmp_path: Path, **roa: Any) -> Path:
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    data["hosts"]["dmz"]["dn42_roa"] = roa
    plan = tmp_path / "plan.toml"
    plan.write_text(tomlkit.dumps(data))
    return plan


def _errors(plan: Path) -> list[dict[str, str]]:
    found = core_call(f"core.planProblems (core.readPlan {plan})")
    return [p for p in found if p["severity"] == "error"]


def test_the_roa_unit_names_the_tables_bird_conf_defines() -> None:
    spec = f'core.hostFromPlan (core.readPlan {EXAMPLE_ROA_FILES_PLAN}) "dmz"'
    standalone = core_call(f"(core.render ({spec})).dn42Roa.arguments")
    assert standalone[3] == "dn42_roa4" and standalone[7] == "dn42_roa6"
    merged = f"({spec}) // {{ bird = {{ standalone = false; kernelProtocols = true; }}; }}"
    artifacts = core_call(f"core.render ({merged})")
    arguments = artifacts["dn42Roa"]["arguments"]
    assert [arguments[3], arguments[7]] == ["ibgpt_dn42_roa4", "ibgpt_dn42_roa6"]
    for family, table in (("4", arguments[3]), ("6", arguments[7])):
        assert f"roa{family} table {table};" in artifacts["birdConfig"]
        assert re.search(rf"roa{family} \{{\s*table {table};\s*\}};", artifacts["birdConfig"])


def test_a_plain_http_roa_url_needs_the_opt_in(tmp_path: Path) -> None:
    url = "http://roa.example.net/dn42_roa4.conf"
    plan = _roa_plan(tmp_path, ipv4_url=url)
    found = core_call(f"core.planProblems (core.readPlan {plan})")
    assert any(
        p["path"] == "hosts.dmz.dn42_roa.ipv4_url" and "plain http://" in p["message"]
        for p in found
    ), found
    spec = f'core.hostFromPlan (core.readPlan {plan}) "dmz"'
    assert any(
        p["path"] == "services.ibgpTunnel.dn42.roa" and url in p["message"]
        for p in problems_of(spec)
    )
    # Render refuses it too, whoever calls it.
    error = nix_eval_error(f"let core = import {CORE}; in (core.render ({spec})).dn42Roa.arguments")
    assert "allowInsecureUrls" in error
    # Opted in: no problem, and the script is told.
    allowed = _roa_plan(tmp_path, ipv4_url=url, allow_insecure_urls=True)
    assert _errors(allowed) == []
    arguments = render(allowed, "dmz")["dn42Roa"]["arguments"]
    assert arguments[0] == "--allow-http" and arguments[2] == url
    # https:// and file:// never need it.
    for fine in ("https://roa.example.net/r.conf", "file:///var/lib/roa/r.conf"):
        quiet = _roa_plan(tmp_path, ipv4_url=fine)
        assert _errors(quiet) == []
        assert render(quiet, "dmz")["dn42Roa"]["arguments"][0] == "ipv4"
