"""Two reflectors (issue #13) without the lab: what the core renders for a plan with
two VPSes (python/tests/plans/two-reflectors.toml), what the single-reflector example
keeps, and the NixOS module's options for the same (with the real sops-nix)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_helpers import EXAMPLE_PLAN
from moduleeval import REPO, eval_module, needs_inputs
from nixcore import needs_nix, render, spec

from ibgp_tunnel.lab.reflectors import client_links

pytestmark = needs_nix

PLAN = Path(__file__).resolve().parent / "plans" / "two-reflectors.toml"
# The same shape with public keys, as the module needs them.
KEYED_PLAN = Path(__file__).resolve().parent / "corpus" / "good" / "two-reflectors.toml"
# ... with vps1 and vps2 linked to each other.
LINKED_PLAN = Path(__file__).resolve().parent / "corpus" / "good" / "two-reflectors-linked.toml"


def _session(conf: str, name: str) -> str:
    start = conf.index(f"protocol bgp {name} {{")
    end = conf.find("\nprotocol ", start + 1)
    return conf[start : end if end != -1 else len(conf)]


def test_client_prefers_the_reflector_the_plan_names() -> None:
    conf = render(PLAN, "home")["birdConfig"]
    # (link, its preference, its rank among home's links for routes the reflector
    # only has from its twin: below every direct route, in the same order)
    for name, preference, rank in (("ibgp_vps1", 200, 1), ("ibgp_vps2", 100, 0)):
        session = _session(conf, name)
        # Set in both families' import filters, before the accept.
        second_hand = (
            f"if (OWNAS, 1, 1) ~ bgp_large_community then bgp_local_pref = {rank};\n"
            f"      else bgp_local_pref = {preference};"
        )
        assert session.count(second_hand) == 2, session
        assert re.search(rf"bgp_local_pref = {preference};\s+if .* then accept;", session)
    assert [link.reflector for link in client_links(_plan(), "home")] == ["vps1", "vps2"]
    assert [link.reflector for link in client_links(_plan(), "office")] == ["vps1", "vps2"]


def test_reflectors_are_plain_ibgp_peers_of_each_other() -> None:
    """The link between vps1 (listens) and vps2 (dials): no `rr client` either way,
    next hop self both ways, the twin's routes imported below the reflector's own and
    marked for the clients, and accepted only if the twin or its clients announce
    them or they are in the reflector's DN42 import sets."""
    for host, twin, local, neighbor in (
        ("vps1", "vps2", "10.255.255.8", "10.255.255.9"),
        ("vps2", "vps1", "10.255.255.9", "10.255.255.8"),
    ):
        conf = render(PLAN, host)["birdConfig"]
        session = _session(conf, f"ibgp_{twin}")
        assert f"local {local} as OWNAS;" in session and f"neighbor {neighbor} as OWNAS;" in session
        assert "rr client" not in session
        assert "bfd on;" in session
        ipv4, ipv6 = session.split("ipv6 {", 1)
        for family, text in (("v4", ipv4), ("v6", ipv6)):
            assert "next hop self;" in text
            assert "bgp_local_pref = 50;" in text
            assert "bgp_large_community.add((OWNAS, 1, 1));" in text
            assert f"|| net ~ DN42_NET_{family} then accept;" in text
        assert "net ~ [ 104.16.0.0/13, 192.168.1.0/24, 192.168.2.0/24 ]" in ipv4
        assert "net ~ [ 2606:4700::/32, fd42:4242:1::/64, fd42:4242:2::/64 ]" in ipv6
        # Every session to a client is still `rr client`.
        for client in ("home", "office"):
            assert "rr client;" in _session(conf, f"ibgp_{client}")
    # vps2 dials vps1's endpoint at the link's port; vps1 only listens.
    (dialler,) = render(PLAN, "vps2")["wireguard"]["wg-vps2"]["peers"]
    assert dialler["endpoint"] == "203.0.113.10:51830"
    assert dialler["persistentKeepalive"] == 25
    (listener,) = render(PLAN, "vps1")["wireguard"]["wg-vps2"]["peers"]
    assert listener["endpoint"] is None and listener["persistentKeepalive"] is None
    assert spec(PLAN, "vps1")["links"]["vps1-vps2"]["reflectorPeer"] is True
    assert spec(PLAN, "vps1")["links"]["home-vps1"]["reflectorPeer"] is False
    # Clients never see the link between the reflectors.
    assert set(spec(PLAN, "home")["links"]) == {"home-vps1", "home-vps2"}


def test_the_link_between_reflectors_is_a_tunnel_like_the_others() -> None:
    for host in ("vps1", "vps2"):
        artifacts = render(PLAN, host)
        assert '"wg-vps2"' in artifacts["nftables"]["forwardRules"]
        # Tunnel traffic leaving towards DN42 is masqueraded, the twin's included.
        assert "wg-vps2" in artifacts["nftables"]["content"].split("masquerade")[0]


def test_multi_homed_links_use_bfd_on_at_both_ends() -> None:
    for host, sessions in (
        ("home", ["ibgp_vps1", "ibgp_vps2"]),
        ("vps1", ["ibgp_home", "ibgp_office"]),
    ):
        conf = render(PLAN, host)["birdConfig"]
        for name in sessions:
            session = _session(conf, name)
            assert "bfd on;" in session and "bfd graceful;" not in session, (host, name)
            # Graceful restart stays: a restart of this end is still hitless.
            assert "graceful restart on;" in session


def test_cluster_ids_only_where_the_plan_names_one() -> None:
    vps1 = render(PLAN, "vps1")["birdConfig"]
    vps2 = render(PLAN, "vps2")["birdConfig"]
    # Every iBGP session, the one to vps2 included: BIRD takes the cluster id of the
    # session a route is reflected over.
    assert vps1.count("rr cluster id 172.23.101.1;") == 3
    assert "rr cluster id" not in vps2  # BIRD's default: its router id, distinct
    assert spec(PLAN, "vps2")["clusterId"] is None


def test_the_single_reflector_example_renders_as_before() -> None:
    for host in ("dmz", "pve"):
        conf = render(EXAMPLE_PLAN, host)["birdConfig"]
        assert "bfd graceful;" in conf and "bfd on;" not in conf
        assert "bgp_local_pref" not in conf and "rr cluster id" not in conf
    assert spec(EXAMPLE_PLAN, "dmz")["links"]["pve"]["alternativePath"] is False


def _plan() -> dict[str, object]:
    import tomllib

    return tomllib.loads(PLAN.read_text())


def _module(host: str, extra: str = "") -> str:
    return (
        "{ lib, ... }: { services.ibgpTunnel = { enable = true; "
        f'plan = {KEYED_PLAN}; hostName = "{host}"; '
        f"sops.file = {REPO}/secrets/test/pve.yaml; }}; {extra} }}"
    )


@needs_inputs
def test_module_renders_the_plan_and_takes_the_options() -> None:
    result = eval_module(_module("vps2", 'services.ibgpTunnel.clusterId = "10.0.0.2";'))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["failedAssertions"] == []
    conf = data["config"]["services"]["bird"]["config"]
    assert conf.count("rr cluster id 10.0.0.2;") == 1
    assert conf.count("bfd on;") == 1


@needs_inputs
def test_module_refuses_a_bad_preference_option() -> None:
    extra = 'services.ibgpTunnel.links."pve-vps1".preference = lib.mkForce (-1);'
    result = eval_module(_module("pve", extra))
    assert result.returncode != 0
    shown = result.stderr.replace('"', "")
    assert "services.ibgpTunnel.links.pve-vps1.preference" in shown, result.stderr


@needs_inputs
@pytest.mark.parametrize(
    ("host", "extra", "path", "words"),
    [
        (
            "pve",
            'services.ibgpTunnel.links."pve-vps1".reflectorPeer = true;',
            "links.pve-vps1.reflectorPeer",
            "only a reflector peers with another reflector",
        ),
        (
            "pve",
            'services.ibgpTunnel.links."pve-vps2".preference = lib.mkForce 200;',
            "links.pve-vps2.preference",
            "200 is also the preference of another link",
        ),
        (
            "pve",
            'services.ibgpTunnel.links."pve-vps2".preference = lib.mkForce 1;',
            "links.pve-vps2.preference",
            "1 is below 2, the number of this client's links",
        ),
        (
            "vps1",
            'services.ibgpTunnel.links."pve-vps1".preference = 150;',
            "links.pve-vps1.preference",
            "is set on a reflector",
        ),
    ],
)
def test_module_asserts_the_choice_between_reflectors(
    host: str, extra: str, path: str, words: str
) -> None:
    """What the plan rules say of a plan, the module's assertions say of options set by
    hand (problems.nix: reflectorChoiceProblems)."""
    result = eval_module(_module(host, extra))
    assert result.returncode == 0, result.stderr
    failed = json.loads(result.stdout)["failedAssertions"]
    assert any(f"services.ibgpTunnel.{path} " in m and words in m for m in failed), failed


@needs_inputs
def test_module_runs_the_link_between_reflectors() -> None:
    """The keyed plan with vps1 and vps2 linked: vps2's module dials vps1 and peers
    with it as a plain iBGP neighbour."""
    module = _module("vps2").replace(str(KEYED_PLAN), str(LINKED_PLAN))
    result = eval_module(module)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["failedAssertions"] == []
    conf = data["config"]["services"]["bird"]["config"]
    session = _session(conf, "ibgp_vps1")
    assert "rr client" not in session and "bgp_local_pref = 50;" in session
    assert "rr client;" in _session(conf, "ibgp_pve")
