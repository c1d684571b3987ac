"""The NixOS module through the real module system (nixpkgs' lib.evalModules),
with the NixOS and sops-nix options it sets declared at their real types
(checks/lib/nixos-option-decls.nix). Needs a nixpkgs lib checkout in
IBGP_TUNNEL_NIXPKGS_LIB (e.g. nix-community/nixpkgs.lib); skipped otherwise."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nixcore import EXAMPLE_PLAN, REPO, needs_nix, render

NIXPKGS_LIB = os.environ.get("IBGP_TUNNEL_NIXPKGS_LIB", "")

pytestmark = [
    needs_nix,
    pytest.mark.skipif(
        not (NIXPKGS_LIB and (Path(NIXPKGS_LIB) / "lib" / "default.nix").is_file()),
        reason="set IBGP_TUNNEL_NIXPKGS_LIB to a checkout of nix-community/nixpkgs.lib "
        "(a directory with lib/default.nix) to evaluate the module with the real module system",
    ),
]

MODULE = REPO / "modules" / "ibgp-tunnel"
EVAL = REPO / "checks" / "lib" / "eval-module.nix"

# Options of a whole machine that the example hosts set and the module does
# not touch: declared loosely, since only the module's own mapping is under test.
MACHINE = """{ lib, ... }: {
  options = {
    networking.useDHCP = lib.mkOption { type = lib.types.bool; default = true; };
    services.openssh.enable = lib.mkOption { type = lib.types.bool; default = false; };
    boot.loader.grub.device = lib.mkOption { type = lib.types.str; default = ""; };
    fileSystems = lib.mkOption { type = lib.types.attrsOf lib.types.anything; default = { }; };
    system.stateVersion = lib.mkOption { type = lib.types.str; default = ""; };
  };
  # No pkgs here: a store path stands in for the BIRD package.
  config.services.bird.package = "/nix/store/00000000000000000000000000000000-bird-3.1.4";
}"""
BIRD = "/nix/store/00000000000000000000000000000000-bird-3.1.4"


def evaluate(*modules: str, with_sops: bool = True) -> dict[str, Any]:
    expression = (
        f"import {EVAL} {{ lib = import {NIXPKGS_LIB}/lib; "
        f"withSops = {'true' if with_sops else 'false'}; "
        f"modules = [ {MODULE} ({MACHINE}) {' '.join(f'({m})' for m in modules)} ]; }}"
    )
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def example(host: str, extra: str = "") -> dict[str, Any]:
    return evaluate(f"import {REPO}/hosts/{host}", f"{{ lib, ... }}: {{ {extra} }}")


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_example_host_evaluates_without_failed_assertions(host: str) -> None:
    result = example(host)
    assert result["failedAssertions"] == []
    config = result["config"]
    # The module deploys exactly what the core renders for the plan.
    artifacts = render(EXAMPLE_PLAN, host)
    assert config["services"]["bird"]["enable"] is True
    assert config["services"]["bird"]["checkConfig"] is True
    assert config["services"]["bird"]["config"] == artifacts["birdConfig"]
    interface = config["networking"]["wireguard"]["interfaces"]["wg-ibgp"]
    assert interface["ips"] == artifacts["wireguard"]["wg-ibgp"]["ips"]
    assert interface["allowedIPsAsRoutes"] is False
    assert interface["privateKeyFile"] == "/run/secrets/wg_ibgp/private_key"
    (peer,) = interface["peers"]
    assert peer["allowedIPs"] == ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]
    assert peer["presharedKeyFile"] == "/run/secrets/wg_ibgp/psk/pve"
    assert peer["presharedKey"] is None and interface.get("privateKey") is None
    table = config["networking"]["nftables"]["tables"]["ibgp-tunnel"]
    assert table["family"] == "inet" and "masquerade" in table["content"]
    assert config["networking"]["nftables"]["enable"] is True
    firewall = config["networking"]["firewall"]
    assert 'iifname "wg-ibgp" accept' in firewall["extraForwardRules"]
    assert 'oifname "wg-ibgp" accept' in firewall["extraForwardRules"]
    assert 'iifname "wg-ibgp" accept' in firewall["extraReversePathFilterRules"]
    assert config["boot"]["kernel"]["sysctl"]["net.ipv4.conf.all.forwarding"] == 1
    assert config["boot"]["kernel"]["sysctl"]["net.ipv6.conf.all.forwarding"] == 1
    secrets = config["sops"]["secrets"]
    assert set(secrets) == {"wg_ibgp/private_key", "wg_ibgp/psk/pve"}
    for secret in secrets.values():
        assert secret["sopsFile"].endswith(f"secrets/test/{host}.yaml")
        assert secret["restartUnits"] == ["wireguard-wg-ibgp.service"]


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_bird_restarts_gracefully(host: str) -> None:
    service = example(host)["config"]["systemd"]["services"]["bird"]["serviceConfig"]
    assert service["ExecStart"] == f"{BIRD}/bin/bird -R -c /etc/bird/bird.conf"
    assert service["ExecStop"] == f"{BIRD}/bin/birdc graceful restart"
    plain = example(host, "services.ibgpTunnel.tuning.gracefulRestart = false;")["config"]
    assert (
        "bird" not in plain["systemd"]["services"]
        or "ExecStop" not in (plain["systemd"]["services"]["bird"]["serviceConfig"])
    )


def test_tuning_options_reach_bird_conf() -> None:
    tuned = example(
        "pve",
        "services.ibgpTunnel.tuning = { bfdIntervalMs = 100; holdTime = null; "
        'importLimit = 1000; importLimitAction = "restart"; };',
    )["config"]
    bird = tuned["services"]["bird"]["config"]
    assert "interval 100 ms;" in bird
    assert "hold time " not in bird
    assert "import limit 1000 action restart;" in bird
    assert 4784 in tuned["networking"]["firewall"]["interfaces"]["wg-ibgp"]["allowedUDPPorts"]
    no_bfd = example("pve", "services.ibgpTunnel.tuning.bfd = false;")["config"]
    assert "protocol bfd" not in no_bfd["services"]["bird"]["config"]
    assert no_bfd["networking"]["firewall"]["interfaces"]["wg-ibgp"]["allowedUDPPorts"] == []


def test_only_the_reflector_opens_the_wireguard_port() -> None:
    assert example("dmz")["config"]["networking"]["firewall"]["allowedUDPPorts"] == [51821]
    assert example("pve")["config"]["networking"]["firewall"]["allowedUDPPorts"] == []


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_bgp_is_allowed_in_on_the_tunnel_and_dn42_interfaces_only(host: str) -> None:
    firewall = example(host)["config"]["networking"]["firewall"]
    assert 179 not in firewall["allowedTCPPorts"]
    expected = {"wg-ibgp", "dn42-peer1"} if host == "dmz" else {"wg-ibgp"}
    opened = {
        name for name, ports in firewall["interfaces"].items() if 179 in ports["allowedTCPPorts"]
    }
    assert opened == expected


def test_options_set_by_hand_win_over_the_plan() -> None:
    result = example("pve", 'services.ibgpTunnel.kernelExportSets = [ "dn42" ];')
    bird = result["config"]["services"]["bird"]["config"]
    assert "if net ~ DN42_NET_v4 then accept;" in bird
    assert "CF_NET_v4 then accept" not in bird.split("protocol bgp", 1)[0]


def test_a_host_without_a_plan() -> None:
    public_key = "oRNfUbCM62OR/YHTmxZd73aRHg5gKjECAik7A/38Xms="
    result = evaluate(
        f"""{{
          services.ibgpTunnel = {{
            enable = true;
            role = "client";
            asn = 4242420038;
            routerId = "172.23.101.2";
            importSets = [ "dn42" ];
            kernelExportSets = [ "dn42" ];
            lanInterfaces = [ "vmbr0" ];
            privateKeyFile = "/run/keys/wg-ibgp";
            links.dmz = {{
              ips = [ "10.255.255.1/30" "fdb7:1dec:4d21:ff::2/64" ];
              neighborAddress = "10.255.255.2";
              peer = {{
                publicKey = "{public_key}";
                presharedKeyFile = "/run/keys/wg-ibgp-psk";
                endpoint = "203.0.113.10:51821";
              }};
            }};
          }};
        }}""",
        with_sops=False,
    )
    assert result["failedAssertions"] == []
    bird = result["config"]["services"]["bird"]["config"]
    assert "protocol bgp ibgp_dmz {" in bird
    (peer,) = result["config"]["networking"]["wireguard"]["interfaces"]["wg-ibgp"]["peers"]
    assert peer["persistentKeepalive"] == 25
    assert peer["publicKey"] == public_key


BAD = [
    (
        'services.ibgpTunnel.links.pve.ips = lib.mkForce [ "10.255.255.1/30" "fe80::2/64" ];',
        r"services\.ibgpTunnel\.links\.pve\.ips fe80::2/64 is link-local",
    ),
    (
        'services.ibgpTunnel.links.pve.neighborAddress = lib.mkForce "10.255.255.9";',
        r"neighborAddress 10\.255\.255\.9 is not inside the link subnet 10\.255\.255\.1/30",
    ),
    (
        'services.ibgpTunnel.privateKey = "oRNfUbCM62OR/YHTmxZd73aRHg5gKjECAik7A/38Xms=";',
        r"privateKey is set: a key written as a string lands in the world-readable Nix store",
    ),
    (
        'services.ibgpTunnel.privateKeyFile = lib.mkForce "/nix/store/xyz-wg-key";',
        r"privateKeyFile \"/nix/store/xyz-wg-key\" is in the Nix store",
    ),
    (
        'services.ibgpTunnel.dn42Peers.x = { asn = 4242421111; neighbor = "172.20.1.1"; };',
        r"dn42Peers is set on a client",
    ),
    (
        "networking.nftables.enable = lib.mkForce false;",
        r"networking\.nftables\.enable is false",
    ),
    (
        'services.ibgpTunnel.importSets = lib.mkForce [ "dn42" "typo" ];',
        r'importSets names prefix set "typo"',
    ),
    (
        "services.ibgpTunnel.links.pve.peer.publicKey = lib.mkForce null;",
        r"peer\.publicKey is not set: run `ibgp-tunnel keys`",
    ),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_configurations_fail_with_a_message_that_says_what_to_fix(
    extra: str, message: str
) -> None:
    failed = example("pve", extra)["failedAssertions"]
    assert any(re.search(message, text) for text in failed), failed


def test_a_spec_with_problems_deploys_nothing() -> None:
    result = example("pve", BAD[0][0])
    assert result["failedAssertions"]
    assert result["config"]["services"]["bird"]["enable"] is False
    assert result["config"]["networking"]["wireguard"]["interfaces"] == {}


def test_sops_file_without_sops_nix_is_an_assertion() -> None:
    result = evaluate(
        f"""{{
          services.ibgpTunnel = {{
            enable = true;
            plan = {EXAMPLE_PLAN};
            hostName = "pve";
            sops.file = {REPO}/secrets/test/pve.yaml;
          }};
        }}""",
        with_sops=False,
    )
    assert any("sops-nix is not imported" in text for text in result["failedAssertions"])


def test_readme_option_reference_is_generated_from_the_module() -> None:
    import optionsdoc

    generated = optionsdoc.markdown(optionsdoc.option_list(NIXPKGS_LIB))
    assert "### `services.ibgpTunnel.links.<name>.peer.endpoint`" in generated
    assert optionsdoc.readme_section(optionsdoc.README.read_text()) == generated, (
        "README.md's option reference is stale: run "
        "IBGP_TUNNEL_NIXPKGS_LIB=... python python/tests/optionsdoc.py --write"
    )
