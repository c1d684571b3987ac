"""The pure Nix core: every .nix parses, every host renders, BIRD accepts the
rendered configs, and each line of the seed's setup is in them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from birdcheck import build_time_check
from nixcore import (
    EXAMPLE_PLAN,
    REPO,
    THREE_CLIENTS_PLAN,
    TWO_REFLECTORS_PLAN,
    core_call,
    needs_bird,
    needs_nix,
    plan_hosts,
    problems_of,
    render,
    spec,
)

pytestmark = needs_nix

PLANS = {
    "example": EXAMPLE_PLAN,
    "three-clients": THREE_CLIENTS_PLAN,
    "two-reflectors": TWO_REFLECTORS_PLAN,
}


def tracked_nix_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.nix"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in out]


def all_plan_hosts() -> list[tuple[str, str]]:
    return [(name, host) for name, plan in PLANS.items() for host in plan_hosts(plan)]


def test_every_tracked_nix_file_parses() -> None:
    files = tracked_nix_files()
    assert files, "git ls-files found no .nix files"
    for path in files:
        result = subprocess.run(
            ["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{path} does not parse:\n{result.stderr}"


def test_core_evaluates_without_nixpkgs() -> None:
    # An empty NIX_PATH and restricted evaluation: any <nixpkgs> lookup or
    # reach outside the core and the plan would fail here.
    env = {**os.environ, "NIX_PATH": ""}
    expression = f'(import {REPO}/modules/lib).renderHost {EXAMPLE_PLAN} "pve"'
    result = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "--option",
            "restrict-eval",
            "true",
            "-I",
            f"{REPO}/modules/lib",
            "-I",
            f"{REPO}/hosts",
            "-E",
            expression,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "protocol bgp ibgp_dmz" in json.loads(result.stdout)["birdConfig"]


@needs_bird
@pytest.mark.parametrize("plan_name", sorted(PLANS))
def test_bird_accepts_every_rendered_config(plan_name: str, tmp_path: Path) -> None:
    plan = PLANS[plan_name]
    hosts = plan_hosts(plan)
    assert hosts
    for host in hosts:
        # As services.bird's build-time check runs it (preCheckConfig first).
        result = build_time_check(render(plan, host), tmp_path / host)
        assert result.returncode == 0, f"{plan_name}/{host}: bird -p failed:\n{result.stderr}"


def test_client_bird_config_has_the_seed_lines() -> None:
    conf = render(EXAMPLE_PLAN, "pve")["birdConfig"]
    for line in (
        "router id 172.23.101.2;",
        "define OWNAS = 4242420038;",
        "define DN42_NET_v4 = [ 172.20.0.0/14{21,29}, 172.31.0.0/16+, 10.0.0.0/8{15,24} ];",
        "define DN42_NET_v6 = [ fd00::/8{44,64} ];",
        "scan time 10;",
        'interface "wg-ibgp";',
        "scan time 1;",
        "protocol bgp ibgp_dmz {",
        "local 10.255.255.1 as OWNAS;",
        "neighbor 10.255.255.2 as OWNAS;",
        "if net ~ DN42_NET_v4 || net ~ CF_NET_v4 then accept;",
        "if net ~ DN42_NET_v6 || net ~ CF_NET_v6 then accept;",
        "export none;",
    ):
        assert line in conf, f"missing {line!r} in client bird.conf"
    assert "rr client" not in conf and "next hop self" not in conf
    # The direct protocol learns the tunnel for both families.
    direct = conf.split("protocol direct {", 1)[1].split("}", 1)[0]
    assert "ipv4;" in direct and "ipv6;" in direct


def test_reflector_bird_config_reflects_with_explicit_ipv6_next_hop() -> None:
    conf = render(EXAMPLE_PLAN, "dmz")["birdConfig"]
    session = conf.split("protocol bgp ibgp_pve {", 1)[1].split("\n}\n", 1)[0]
    assert "rr client;" in session
    assert "local 10.255.255.2 as OWNAS;" in session
    assert "neighbor 10.255.255.1 as OWNAS;" in session
    ipv4, ipv6 = session.split("ipv6 {", 1)
    assert "next hop self;" in ipv4 and "next hop self;" in ipv6
    assert "next hop address fdb7:1dec:4d21:ff::1;" in ipv6
    assert "route 104.16.0.0/13 unreachable;" in conf
    assert "route 2606:4700::/32 unreachable;" in conf
    assert "neighbor fe80::1080 as 4242421080;" in conf
    assert 'interface "dn42-peer1";' in conf


def test_kernel_export_never_installs_unreachable_or_connected_routes() -> None:
    for host in ("dmz", "pve"):
        conf = render(EXAMPLE_PLAN, host)["birdConfig"]
        for kernel in ("protocol kernel kernel4 {", "protocol kernel kernel6 {"):
            block = conf.split(kernel, 1)[1].split("\n}\n", 1)[0]
            assert "import none;" in block
            assert "if dest != RTD_UNICAST then reject;" in block
            assert "if source = RTS_DEVICE then reject;" in block
            assert "if net.len = 0 then reject;" in block


def test_wireguard_artifacts_follow_the_seed() -> None:
    client = render(EXAMPLE_PLAN, "pve")["wireguard"]["wg-ibgp"]
    assert client["ips"] == ["10.255.255.1/30", "fdb7:1dec:4d21:ff::2/64"]
    assert client["listenPort"] == 51821
    assert client["allowedIPsAsRoutes"] is False
    assert client["privateKeyFile"] == "/run/secrets/wg_ibgp/private_key"
    (peer,) = client["peers"]
    assert peer["allowedIPs"] == ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]
    assert peer["endpoint"] == "203.0.113.10:51821"
    assert peer["persistentKeepalive"] == 25
    assert peer["presharedKeyFile"] == "/run/secrets/wg_ibgp/psk/pve"

    reflector = render(EXAMPLE_PLAN, "dmz")["wireguard"]["wg-ibgp"]
    assert reflector["ips"] == ["10.255.255.2/30", "fdb7:1dec:4d21:ff::1/64"]
    (peer,) = reflector["peers"]
    assert peer["endpoint"] is None and peer["persistentKeepalive"] is None


def test_firewall_nat_and_sysctls() -> None:
    client = render(EXAMPLE_PLAN, "pve")
    reflector = render(EXAMPLE_PLAN, "dmz")
    assert client["allowedUDPPorts"] == []
    assert reflector["allowedUDPPorts"] == [51821, 21080]
    tunnel = 'iifname "wg-ibgp" accept\noifname "wg-ibgp" accept\n'
    assert client["nftables"]["forwardRules"] == tunnel
    assert client["nftables"]["reversePathRules"] == 'iifname "wg-ibgp" accept\n'
    # The reflector's DN42 tunnel: loose reverse path (asymmetric DN42 routes),
    # forward from the tunnels to DN42 only, nothing new from DN42.
    assert reflector["nftables"]["forwardRules"] == (
        tunnel + 'iifname { "wg-ibgp" } oifname { "dn42-peer1" } accept\n'
    )
    assert reflector["nftables"]["reversePathRules"] == (
        'iifname "wg-ibgp" accept\niifname "dn42-peer1" accept\n'
    )
    assert 'iifname "dn42-peer1" accept' not in reflector["nftables"]["forwardRules"]
    forwarding = {"net.ipv4.conf.all.forwarding": 1, "net.ipv6.conf.all.forwarding": 1}
    assert client["sysctl"] == forwarding
    # Forwarding makes the kernel ignore RAs: the reflector's uplink keeps SLAAC.
    assert reflector["sysctl"] == forwarding | {"net.ipv6.conf.eth0.accept_ra": 2}
    assert (
        'iifname { "vmbr0" } oifname { "wg-ibgp" } meta nfproto ipv4 masquerade'
        in client["nftables"]["ruleset"]
    )
    assert (
        'iifname { "wg-ibgp" } oifname { "eth0", "dn42-peer1" } masquerade'
        in reflector["nftables"]["ruleset"]
    )


def test_three_clients_each_get_their_own_session_and_interface() -> None:
    reflector = render(THREE_CLIENTS_PLAN, "vps")
    assert sorted(reflector["wireguard"]) == ["wg-home", "wg-laptop", "wg-office"]
    assert sorted(reflector["allowedUDPPorts"]) == [51821, 51822, 51823]
    conf = reflector["birdConfig"]
    for client in ("home", "office", "laptop"):
        assert f"protocol bgp ibgp_{client} {{" in conf
    # The reflector accepts from home exactly what home announces.
    home_session = conf.split("protocol bgp ibgp_home {", 1)[1].split("\n}\n", 1)[0]
    assert "net ~ [ 192.168.1.0/24 ]" in home_session
    laptop_session = conf.split("protocol bgp ibgp_laptop {", 1)[1].split("\n}\n", 1)[0]
    assert "import none;" in laptop_session
    # A /31 link renders with its own prefix length.
    office = render(THREE_CLIENTS_PLAN, "office")["wireguard"]["wg-office"]
    assert office["ips"] == ["10.255.255.5/31", "fdb7:1dec:4d21:fe::1/127"]


def test_example_plan_has_no_problems_once_keys_exist() -> None:
    for host in ("dmz", "pve"):
        found = problems_of(f'(core.hostFromPlan (core.readPlan {EXAMPLE_PLAN}) "{host}")')
        assert all(p["path"].endswith("peer.publicKey") for p in found), found


def bad(host_override: str) -> list[str]:
    """Problems of the example's client with `host_override` merged into its spec."""
    base = f'(core.hostFromPlan (core.readPlan {EXAMPLE_PLAN}) "pve")'
    return [p["path"] + " " + p["message"] for p in problems_of(f"{base} // {host_override}")]


def with_link(override: str) -> str:
    base = f'(core.hostFromPlan (core.readPlan {EXAMPLE_PLAN}) "pve")'
    return f"{{ links.pve = {base}.links.pve // {override}; }}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (with_link('{ neighborAddress = "10.255.255.6"; }'), "not inside the link subnet"),
        (with_link('{ ips = [ "10.255.255.1/30" "fe80::2/64" ]; }'), "is link-local"),
        (with_link('{ ips = [ "10.255.255.1/30" ]; }'), "needs exactly one global IPv6"),
        (with_link('{ ips = [ "10.255.255.1/24" "fd00::2/64" ]; }'), "takes a /30 or /31"),
        (with_link('{ ips = [ "10.255.255.3/30" "fd00::2/64" ]; }'), "network or broadcast"),
        (with_link('{ interface = "wg-ibgp-much-too-long"; }'), "not a usable interface name"),
        ('{ privateKeyFile = "/nix/store/abc-key"; }', "is in the Nix store"),
        ("{ privateKeyFile = null; }", "privateKeyFile is not set"),
        ('{ importSets = [ "nosuchset" ]; }', 'names prefix set "nosuchset"'),
        ('{ routerId = "not-an-ip"; }', "is not a router id"),
        (
            '{ dn42Peers.x = { asn = 1; neighbor = "1.2.3.4"; interface = null; '
            "exportSets = [ ]; }; }",
            "eBGP to DN42 peers runs on the reflector",
        ),
        ("{ links = { }; }", "a client needs a tunnel link"),
        (
            '{ prefixSets = { vps = { ipv4 = [ "203.0.113.0/24" ]; ipv6 = [ ]; }; }; '
            'kernelExportSets = [ "vps" ]; }',
            "203.0.113.10, the endpoint this client dials",
        ),
        (
            '{ prefixSets = { all = { ipv4 = [ "0.0.0.0/1+" "128.0.0.0/1+" ]; ipv6 = [ ]; }; }; '
            'importSets = [ "all" ]; }',
            "together cover every address",
        ),
        ('{ announce = { ipv4 = [ "0.0.0.0/1" "128.0.0.0/1" ]; ipv6 = [ ]; }; }', "in pieces"),
        (
            '{ dn42Peers.x = { asn = 4242421111; neighbor = "10.255.255.2"; interface = null; '
            "exportSets = [ ]; }; }",
            "own tunnel addresses",
        ),
        (
            '{ prefixSets = { cf = { ipv4 = [ "10.0.0.0/8" ]; ipv6 = [ ]; }; '
            'CF = { ipv4 = [ "10.0.0.0/8" ]; ipv6 = [ ]; }; }; importSets = [ ]; '
            "kernelExportSets = [ ]; }",
            "becomes the same BIRD name",
        ),
        (
            "{ tuning = (core.hostFromPlan (core.readPlan " + str(EXAMPLE_PLAN) + ') "pve").tuning '
            "// { holdTime = 6; keepaliveTime = 7; }; }",
            "longer than the hold time",
        ),
    ],
)
def test_problems_name_the_option_and_the_fix(override: str, expected: str) -> None:
    messages = bad(override)
    assert any(expected in message for message in messages), messages
    assert all(message.startswith("services.ibgpTunnel.") for message in messages)


def test_allow_cover_everything_lets_sets_cover_everything() -> None:
    sets = (
        '{ prefixSets = { all = { ipv4 = [ "0.0.0.0/0+" ]; ipv6 = [ ]; }; }; '
        'importSets = [ "all" ]; kernelExportSets = [ ]; }'
    )
    assert any("cover every address" in m for m in bad(sets))
    allowed = bad(sets[:-1] + "allowCoverEverything = true; }")
    assert not any("cover every address" in m for m in allowed), allowed
    # Its endpoint is still covered, which is never allowed.
    assert any("the endpoint this client dials" in m for m in allowed), allowed


def test_a_non_bool_allow_cover_everything_is_named_not_a_nix_error() -> None:
    messages = bad('{ allowCoverEverything = "yes"; }')
    assert any("allowCoverEverything" in m and "is not true or false" in m for m in messages), (
        messages
    )


def test_problems_catch_a_malformed_public_key() -> None:
    messages = bad(
        with_link(
            '{ peer = { publicKey = "short"; presharedKeyFile = "/run/k"; '
            'endpoint = "203.0.113.10:51821"; allowedIPs = [ ]; '
            'persistentKeepalive = 25; name = "dmz"; }; }'
        )
    )
    assert any("is not a WireGuard public key" in m for m in messages), messages


def test_unknown_host_is_a_clear_error() -> None:
    from nixcore import nix_eval_error

    error = nix_eval_error(
        f'let core = import {REPO / "modules" / "lib"}; in core.renderHost {EXAMPLE_PLAN} "nosuch"'
    )
    assert 'host "nosuch" is not in the plan; its hosts are: dmz, pve' in error


def test_spec_has_the_module_option_shape() -> None:
    client = spec(EXAMPLE_PLAN, "pve")
    assert set(client) == {
        "enable",
        "role",
        "asn",
        "routerId",
        "clusterId",
        "prefixSets",
        "importSets",
        "kernelExportSets",
        "announce",
        "lanInterfaces",
        "uplinkInterfaces",
        "acceptRAInterfaces",
        "openFirewall",
        "allowCoverEverything",
        "dn42Inbound",
        "dn42Collector",
        "internalPrefixes",
        "privateKeyFile",
        "links",
        "dn42Peers",
        "tuning",
        "dn42",
    }
    assert core_call("core.defaults.port") == 51821


def test_routes_for_the_tunnels_own_subnets_are_never_imported() -> None:
    # fd00::/8{44,64} (DN42) matches the example's ULA /64 link; a learned route
    # for it would replace the connected one.
    conf = render(EXAMPLE_PLAN, "pve")["birdConfig"]
    assert "define TUNNEL_NET_v4 = [ 10.255.255.0/30+ ];" in conf
    assert "define TUNNEL_NET_v6 = [ fdb7:1dec:4d21:ff:0:0:0:0/64+ ];" in conf
    session = conf.split("protocol bgp ibgp_dmz {", 1)[1]
    assert session.count("if net ~ TUNNEL_NET_v4 then reject;") == 1
    assert session.count("if net ~ TUNNEL_NET_v6 then reject;") == 1
    reflector = render(EXAMPLE_PLAN, "dmz")["birdConfig"]
    dn42 = reflector.split("protocol bgp dn42_peer1 {", 1)[1]
    assert "if net ~ TUNNEL_NET_v6 then reject;" in dn42
