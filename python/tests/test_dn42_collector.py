"""DN42's Global Route Collector (dn42_collector): what the core renders (an
export-only multihop session with ADD-PATH tx, the wiki's defaults), that BIRD 3
and BIRD 2 parse it, the plan rules, the route model's session (doctor's
bgp.session line), the module's assertions and the DN42 session alert. The lab
test (test_lab_dn42_collector.py) shows a collector receiving our routes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run
from moduleeval import needs_inputs
from nixcore import EXAMPLE_PLAN, core_call, needs_nix, render
from test_dn42_roa import BIRDS
from test_monitoring import host as monitored
from test_nixos_module import example

pytestmark = needs_nix

# The wiki's Route-Collector page (wiki.dn42.dev/services/Route-Collector).
WIKI_ASN = 4242422602
WIKI_V6 = "fd42:4242:2601:ac12::1"
ANCHOR = "[hosts.dmz.dn42_peers.peer1]\n"


def plan_with(tmp_path: Path, collector: str, peer: str = "") -> Path:
    text = EXAMPLE_PLAN.read_text()
    assert text.count(ANCHOR) == 1, "the example's [hosts.dmz.dn42_peers.peer1] changed"
    text = text.replace(ANCHOR, ANCHOR + peer)
    path = tmp_path / "plan.toml"
    path.write_text(text + f"\n[hosts.dmz.dn42_collector]\n{collector}")
    return path


def collector_block(config: str) -> str:
    (block,) = [b.split("\n}\n", 1)[0] for b in config.split("protocol bgp dn42collector ")[1:]]
    return block


def test_off_by_default() -> None:
    assert "dn42collector" not in render(EXAMPLE_PLAN, "dmz")["birdConfig"]


def test_the_wiki_defaults_export_only_every_path(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "enable = true\n", 'export_sets = ["dn42"]\n')
    block = collector_block(render(plan, "dmz")["birdConfig"])
    assert f"neighbor {WIKI_V6} as {WIKI_ASN};" in block
    assert "multihop;" in block and "source address" not in block
    assert block.count("add paths tx;") == 2 and block.count("import none;") == 2
    # Our own statics of the peers' export sets, and what came from outside our AS.
    assert "if source = RTS_STATIC && (net ~ DN42_NET_v4) then accept;" in block
    assert "if source = RTS_BGP && bgp_path.len > 0 && (net ~ DN42_NET_v6) then accept;" in block
    assert "extended next hop on;" in block  # IPv4 routes over the IPv6 session
    # The client's Cloudflare prefixes (the cf set) never reach the collector.
    assert "CF_NET" not in block


def test_an_ipv4_collector_and_our_source_address(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path, 'enable = true\nneighbor = "172.20.129.4"\nsource_address = "172.23.101.1"\n'
    )
    block = collector_block(render(plan, "dmz")["birdConfig"])
    assert f"neighbor 172.20.129.4 as {WIKI_ASN};" in block
    assert "source address 172.23.101.1;" in block
    assert "extended next hop" not in block
    # No export set on the peer: only the DN42 routes we hold are sent.
    assert "RTS_STATIC" not in block


@pytest.mark.parametrize("bird", BIRDS, ids=[name for name, _ in BIRDS])
def test_bird_parses_it(bird: tuple[str, Path], tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path, f'enable = true\nsource_address = "{WIKI_V6[:-1]}2"\n', 'export_sets = ["dn42"]\n'
    )
    config = render(plan, "dmz")["birdConfig"]
    # The ROA files are the timer's; an empty stand-in here.
    for family in ("4", "6"):
        stub = tmp_path / f"roa{family}.conf"
        stub.write_text("")
        config = config.replace(f'"/var/lib/ibgp-tunnel/roa/dn42_roa{family}.conf"', f'"{stub}"')
    conf = tmp_path / "bird.conf"
    conf.write_text(config)
    parsed = subprocess.run(
        [str(bird[1] / "bird"), "-p", "-c", str(conf)], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr


def test_the_route_model_lists_the_session(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, "enable = true\n")
    model = core_call(f"(core.routes.model (core.readPlan {plan}) {{ }}).hosts.dmz.sessions")
    (session,) = [s for s in model if s["kind"] == "dn42-collector"]
    assert session["name"] == "dn42collector"
    assert session["neighbor"] == WIKI_V6 and session["neighborAs"] == WIKI_ASN
    assert session["interface"] is None and session["importLimit"] is None


# --- plan rules ---------------------------------------------------------------------


def findings(tmp_path: Path, collector: str) -> list[dict[str, str]]:
    result = run("check", "--json", plan_with(tmp_path, collector))
    return [f for f in json.loads(result.stdout)["findings"] if "dn42_collector" in f["path"]]


@pytest.mark.parametrize(
    ("collector", "path", "words"),
    [
        ('enable = true\nneighbor = "fe80::1"\n', "neighbor", "link-local"),
        ('enable = true\nneighbor = "collector.dn42"\n', "neighbor", "IPv4 or IPv6 address"),
        ('enable = true\nneighbor = "10.255.255.1"\n', "neighbor", "inside our own links.pve"),
        ('enable = true\nneighbor = "104.16.0.1"\n', "neighbor", "hosts.dmz.announce.ipv4"),
        ("enable = true\nasn = 4242420038\n", "asn", "our own AS"),
        ('enable = true\nsource_address = "172.23.101.1"\n', "source_address", "family"),
        ("enable = true\nasn = 0\n", "asn", ""),
    ],
)
def test_plan_rules(tmp_path: Path, collector: str, path: str, words: str) -> None:
    found = findings(tmp_path, collector)
    assert any(
        f["path"] == f"hosts.dmz.dn42_collector.{path}"
        and f["severity"] == "error"
        and words in f["message"]
        for f in found
    ), found


def test_disabled_is_not_checked(tmp_path: Path) -> None:
    assert findings(tmp_path, 'enable = false\nneighbor = "10.255.255.1"\n') == []


# --- the NixOS module ---------------------------------------------------------------


@needs_inputs
def test_module_asserts_the_rules_and_renders_the_session() -> None:
    on = example("dmz", "services.ibgpTunnel.dn42Collector.enable = true;")
    assert on["failedAssertions"] == []
    assert "protocol bgp dn42collector {" in on["config"]["services"]["bird"]["config"]
    mine = example(
        "dmz",
        'services.ibgpTunnel.dn42Collector = { enable = true; neighbor = "10.255.255.1"; };',
    )
    assert any(
        "services.ibgpTunnel.dn42Collector.neighbor" in m and "inside our own" in m
        for m in mine["failedAssertions"]
    ), mine["failedAssertions"]
    client = example("pve", "services.ibgpTunnel.dn42Collector.enable = true;")
    assert any("on a client" in m for m in client["failedAssertions"]), client


@needs_inputs
def test_the_dn42_session_alert_covers_it() -> None:
    def dn42_down(extra: str) -> str | None:
        rules = monitored("dmz", "services.ibgpTunnel.monitoring.enable = true; " + extra)
        found = [r for r in rules["rules"]["rules"] if r["alert"] == "IbgpTunnelDn42SessionDown"]
        return found[0]["expr"] if found else None

    expr = dn42_down("services.ibgpTunnel.dn42Collector.enable = true;")
    assert expr is not None and "dn42collector" in expr and "dn42_peer1" in expr
    assert "dn42collector" not in (dn42_down("") or "")
