"""services.ibgpTunnel.autopeer through the real module system (nixpkgs' lib and
sops-nix from the verified cache, as test_nixos_module.py): the three units and
their sandboxes, the state layout's owners and modes, the firewall, the
assertions, and the paths and settings taken from the core, not written again."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pinned
import pytest
import tomlkit
from moduleeval import evaluation, instantiate
from nixcore import EXAMPLE_PLAN, REPO, needs_nix, spec

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.render import render_autopeers
from ibgp_tunnel.autopeer.request import PeeringRequest
from ibgp_tunnel.paths import defaults

pytestmark = [needs_nix, pinned.needs_inputs]

WEB = "ibgp-tunnel-autopeer-web"
APPLY = "ibgp-tunnel-autopeer-apply"
REGISTRY = "ibgp-tunnel-autopeer-registry"
LAYOUT = defaults()["autopeer"]
ENABLED = 'enable = true; linkLocal = "fe80::38/64";'


def evaluate(host: str, autopeer: str, extra: str = "") -> dict[str, Any]:
    result = instantiate(
        evaluation(
            f"import {REPO}/hosts/{host}",
            f"{{ lib, ... }}: {{ services.ibgpTunnel.autopeer = {{ {autopeer} }}; {extra} }}",
        )
    )
    assert result.returncode == 0, result.stderr
    evaluated: dict[str, Any] = json.loads(result.stdout)
    return evaluated


@pytest.fixture(scope="module")
def enabled() -> dict[str, Any]:
    result = evaluate("dmz", ENABLED)
    assert result["failedAssertions"] == []
    return result


def unit(result: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = result["config"]["systemd"]["services"][name]
    return service


def argv(service: dict[str, Any]) -> list[str]:
    return shlex.split(service["serviceConfig"]["ExecStart"])


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def test_the_web_unit_is_unprivileged_and_writes_only_spool_and_challenges(
    enabled: dict[str, Any],
) -> None:
    web = unit(enabled, WEB)
    sc = web["serviceConfig"]
    assert sc["User"] == sc["Group"] == "ibgp-autopeer"
    assert sc["CapabilityBoundingSet"] == "" and sc["AmbientCapabilities"] == ""
    assert sc["ProtectSystem"] == "strict" and sc["NoNewPrivileges"] is True
    assert sorted(sc["ReadWritePaths"]) == sorted([LAYOUT["spool_dir"], LAYOUT["challenges_dir"]])
    assert sc["InaccessiblePaths"] == [f"-{LAYOUT['peers_dir']}"]
    assert "~@privileged" in sc["SystemCallFilter"]
    assert "AF_NETLINK" not in sc["RestrictAddressFamilies"]
    words = argv(web)
    assert words[1:5] == ["dn42", "autopeer", "serve", "--state-dir"]
    assert option(words, "--state-dir") == LAYOUT["state_dir"]
    assert option(words, "--listen-address") == "127.0.0.1"
    assert option(words, "--listen-port") == "8042"
    # On the loopback, the host's own reverse proxy names the client.
    assert option(words, "--trusted-proxy") == "127.0.0.1"
    assert web["wantedBy"] == ["multi-user.target"]


def test_the_apply_unit_is_root_with_cap_net_admin_only_after_bird(
    enabled: dict[str, Any],
) -> None:
    apply = unit(enabled, APPLY)
    sc = apply["serviceConfig"]
    assert "User" not in sc
    assert sc["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert sc["AmbientCapabilities"] == ""
    assert sc["ProtectSystem"] == "strict"
    assert sc["ReadWritePaths"] == [LAYOUT["state_dir"]]
    # BIRD's socket (bird:bird 0660) and the web user's spool entries (0640).
    assert sorted(sc["SupplementaryGroups"]) == ["bird", "ibgp-autopeer"]
    assert "AF_NETLINK" in sc["RestrictAddressFamilies"]
    assert "bird.service" in apply["after"] and "bird.service" in apply["wants"]
    assert "nftables.service" in apply["after"]
    words = argv(apply)
    assert words[1:5] == ["dn42", "autopeer", "apply", "--watch"]
    assert option(words, "--bird-conf") == "/etc/bird/bird.conf"
    assert option(words, "--bird-socket") == "/run/bird/bird.ctl"
    package = enabled["config"]["services"]["bird"]["package"]
    assert option(words, "--bird") == f"{package}/bin/bird"
    assert option(words, "--birdc") == f"{package}/bin/birdc"
    assert option(words, "--nft-table") == defaults()["nftables_table"]
    # The web service and the apply unit render against the same spec file.
    assert option(words, "--spec") == option(argv(unit(enabled, WEB)), "--spec")
    assert option(words, "--registry") == option(argv(unit(enabled, WEB)), "--registry")


def test_the_registry_refresh_runs_as_its_own_user_on_a_timer(enabled: dict[str, Any]) -> None:
    refresh = unit(enabled, REGISTRY)
    sc = refresh["serviceConfig"]
    assert sc["User"] == "ibgp-autopeer-registry" != unit(enabled, WEB)["serviceConfig"]["User"]
    assert sc["CapabilityBoundingSet"] == ""
    assert sc["ReadWritePaths"] == [LAYOUT["registry_dir"]]
    words = argv(refresh)
    assert option(words, "--registry-url") == "https://git.dn42.dev/dn42/registry.git"
    assert option(words, "--registry").startswith(LAYOUT["registry_dir"] + "/")
    timer = enabled["config"]["systemd"]["timers"][REGISTRY]
    assert timer["wantedBy"] == ["timers.target"]
    assert timer["timerConfig"]["OnUnitActiveSec"] == "1h"


def test_settings_reach_the_units() -> None:
    result = evaluate(
        "dmz",
        ENABLED + ' listenPort = 9000; rateLimit = 3; maxPeers = 5; registryRefresh = "15min";'
        ' registryUrl = "file:///srv/registry.git"; listenAddress = "192.0.2.7";',
    )
    assert result["failedAssertions"] == []
    words = argv(unit(result, WEB))
    assert option(words, "--listen-port") == "9000"
    assert option(words, "--listen-address") == "192.0.2.7"
    assert option(words, "--rate-limit") == "3" and option(words, "--max-peers") == "5"
    # Not on the loopback: no proxy is trusted to name the client.
    assert "--trusted-proxy" not in words
    assert option(argv(unit(result, REGISTRY)), "--registry-url") == "file:///srv/registry.git"
    assert result["config"]["systemd"]["timers"][REGISTRY]["timerConfig"]["OnUnitActiveSec"] == (
        "15min"
    )


def mode_of(rule: str) -> tuple[str, int, str, str]:
    _kind, path, mode, user, group = rule.split()[:5]
    return path, int(mode, 8), user, group


def test_the_state_layout_lets_the_web_user_write_spool_and_nothing_is_world_writable(
    enabled: dict[str, Any],
) -> None:
    rules = [
        r for r in enabled["config"]["systemd"]["tmpfiles"]["rules"] if LAYOUT["state_dir"] in r
    ]
    layout = {path: (mode, user, group) for path, mode, user, group in map(mode_of, rules)}
    assert all(mode & 0o002 == 0 for mode, _, _ in layout.values()), layout
    assert layout[LAYOUT["spool_dir"]] == (0o770, "root", "ibgp-autopeer")
    assert layout[LAYOUT["challenges_dir"]] == (0o700, "ibgp-autopeer", "ibgp-autopeer")
    assert layout[LAYOUT["peers_dir"]] == (0o700, "root", "root")
    status_mode, _, _ = layout[LAYOUT["status_dir"]]
    assert status_mode & 0o005 == 0o005  # the web user reads it
    assert layout[LAYOUT["registry_dir"]][1] == "ibgp-autopeer-registry"
    # The include exists before BIRD first starts (bird.conf always includes it).
    assert f"f {LAYOUT['bird_include']} 0644 root root -" in rules
    users = enabled["config"]["users"]
    assert users["users"]["ibgp-autopeer"] == {"isSystemUser": True, "group": "ibgp-autopeer"}
    assert "ibgp-autopeer-registry" in users["groups"]


def test_bird_checks_its_config_with_an_empty_include(enabled: dict[str, Any]) -> None:
    pre = enabled["config"]["services"]["bird"]["preCheckConfig"]
    assert ": > autopeer.conf" in pre
    assert LAYOUT["bird_include"] in pre
    assert f'include "{LAYOUT["bird_include"]}";' in enabled["config"]["services"]["bird"]["config"]


def test_the_firewall_opens_the_wireguard_range_only(enabled: dict[str, Any]) -> None:
    fw = enabled["config"]["networking"]["firewall"]
    assert fw["allowedUDPPortRanges"] == [{"from": 20000, "to": 29999}]
    opened = list(fw["allowedTCPPorts"]) + [
        p for i in fw["interfaces"].values() for p in i["allowedTCPPorts"]
    ]
    assert 8042 not in opened
    closed = evaluate("dmz", ENABLED, "services.ibgpTunnel.openFirewall = lib.mkForce false;")
    assert closed["config"]["networking"]["firewall"]["allowedUDPPortRanges"] == []


def test_without_autopeer_nothing_of_it_is_deployed() -> None:
    result = evaluate("dmz", "")
    services = result["config"]["systemd"]["services"]
    assert not any("autopeer" in name for name in services)
    assert "ibgp-autopeer" not in result["config"]["users"]["users"]
    assert result["config"]["networking"]["firewall"]["allowedUDPPortRanges"] == []
    assert not any(
        LAYOUT["state_dir"] in r for r in result["config"]["systemd"]["tmpfiles"]["rules"]
    )


@pytest.mark.parametrize(
    ("host", "autopeer", "extra", "names"),
    [
        ("dmz", ENABLED + ' listenAddress = "0.0.0.0";', "", "autopeer.listenAddress"),
        ("dmz", ENABLED + ' listenAddress = "::";', "", "autopeer.listenAddress"),
        ("dmz", ENABLED + " listenPort = 443;", "", "autopeer.listenPort"),
        (
            "dmz",
            ENABLED,
            "services.ibgpTunnel.nftables.enable = lib.mkForce false;",
            "services.ibgpTunnel.nftables.enable",
        ),
        # The core's rules, surfaced as the module surfaces every other one.
        ("dmz", "enable = true;", "", "autopeer.linkLocal"),
        ("pve", ENABLED, "", "services.ibgpTunnel.autopeer"),
        ("dmz", ENABLED + " portMin = 29990;", "", "autopeer.portMax"),
    ],
)
def test_assertions_name_the_option(host: str, autopeer: str, extra: str, names: str) -> None:
    result = evaluate(host, autopeer, extra)
    failed = result["failedAssertions"]
    assert any(names in message for message in failed), failed


def test_the_units_spec_renders_a_request_as_the_plan_would(
    enabled: dict[str, Any], tmp_path: Path
) -> None:
    """The spec file both units get is this host's: a request renders through the
    real core to the same BIRD session and nft elements as against the spec the
    plan gives the host, and its tunnel uses the host's DN42 key file."""
    text = enabled["config"]["ibgpTunnelAutopeerSpec"]
    module_spec = tmp_path / "module-spec.json"
    module_spec.write_text(text)
    plan = tomlkit.parse(EXAMPLE_PLAN.read_text())
    plan["hosts"]["dmz"]["autopeer"] = {"enable": True, "link_local": "fe80::38/64"}  # type: ignore[index]
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(tomlkit.dumps(plan))
    plan_spec = tmp_path / "plan-spec.json"
    plan_spec.write_text(json.dumps(spec(plan_file, "dmz")))
    request = PeeringRequest(
        asn=4242421234,
        public_key="EpX3bMxHfPxVZJQ6TgdtnnxFgUadAFwQS9/4KAo4bxU=",
        neighbor="fe80::1234",
        endpoint="192.0.2.3:51820",
    )
    from_module = render_autopeers(module_spec, [request])
    from_plan = render_autopeers(plan_spec, [request])
    assert "protocol bgp dn42_ap4242421234" in from_module.bird
    assert from_module.bird == from_plan.bird
    assert (from_module.nft_interfaces, from_module.nft_ports) == (["ap4242421234"], [21234])
    assert (from_module.nft_ports, from_module.peers) == (from_plan.nft_ports, from_plan.peers)
    static = enabled["config"]["networking"]["wireguard"]["interfaces"]["dn42-peer1"]
    tunnel = from_module.wireguard["ap4242421234"]
    assert tunnel["privateKeyFile"] == static["privateKeyFile"]


def test_a_static_peer_wins_over_a_request_against_the_units_spec(
    enabled: dict[str, Any], tmp_path: Path
) -> None:
    module_spec = tmp_path / "module-spec.json"
    module_spec.write_text(enabled["config"]["ibgpTunnelAutopeerSpec"])
    # peer1's ASN is the plan's static DN42 peer.
    static_asn = tomlkit.parse(EXAMPLE_PLAN.read_text())["hosts"]["dmz"]["dn42_peers"]["peer1"][
        "asn"
    ]  # type: ignore[index]
    request = PeeringRequest(
        asn=int(static_asn),
        public_key="EpX3bMxHfPxVZJQ6TgdtnnxFgUadAFwQS9/4KAo4bxU=",
        neighbor="fe80::1234",
    )
    with pytest.raises(AutopeerRefused) as refused:
        render_autopeers(module_spec, [request])
    assert refused.value.field == "asn"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("registryUrl", "https://git.dn42.dev/$(id)"),
        ("registryUrl", "file:///srv/a b"),
        ("registryUrl", "https://git.dn42.dev/%2e%2e/x"),
        ("registryUrl", "ssh://git@git.dn42.dev/dn42/registry.git"),
        ("registryUrl", "file:///srv/../etc"),
        ("listenAddress", "127.0.0.1 --trusted-proxy 0.0.0.0"),
        ("registryRefresh", "1h\nExecStartPre=/bin/sh"),
        ("linkLocal", 'fe80::38/64"; }'),
    ],
)
def test_what_reaches_a_unit_line_is_checked_where_it_is_set(name: str, value: str) -> None:
    """Each setting the units' command lines carry passes the core's grammar at
    the option (its type) or as a problem (an assertion), before any unit."""
    result = instantiate(
        evaluation(
            f"import {REPO}/hosts/dmz",
            f"{{ lib, ... }}: {{ services.ibgpTunnel.autopeer = {{ {ENABLED} }}; }}",
            f"{{ lib, ... }}: {{ services.ibgpTunnel.autopeer.{name} = "
            f"lib.mkForce {json.dumps(value)}; }}",
        )
    )
    option = f"services.ibgpTunnel.autopeer.{name}"
    if result.returncode != 0:
        assert f"A definition for option `{option}' is not of type" in result.stderr, result.stderr
        return
    evaluated = json.loads(result.stdout)
    assert any(option in m for m in evaluated["failedAssertions"]), evaluated["failedAssertions"]
    assert WEB not in evaluated["config"]["systemd"]["services"]


def test_with_sops_in_a_unit_the_apply_unit_waits_for_our_key() -> None:
    result = evaluate("dmz", ENABLED, "systemd.sysusers.enable = true;")
    apply = unit(result, APPLY)
    assert "sops-install-secrets.service" in apply["after"]
    assert "sops-install-secrets.service" in apply["wants"]
