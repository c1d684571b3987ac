"""The NixOS module through the real module system (nixpkgs' lib.evalModules)
and the real sops-nix module, both from the verified flake-input cache (pinned.py), with the
NixOS options they use declared at their real types
(checks/lib/nixos-option-decls.nix). Evaluates the example hosts and the VM
test's nodes as `nix flake check` would, short of building them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pinned
import pytest
from moduleeval import evaluation, instantiate
from nixcore import EXAMPLE_PLAN, EXAMPLE_ROA_FILES_PLAN, REPO, needs_nix, render

pytestmark = [needs_nix, pinned.needs_inputs]

MODULE = REPO / "modules" / "ibgp-tunnel"
EVAL_VM_TEST = REPO / "checks" / "lib" / "eval-vm-test.nix"


def evaluate(*modules: str, with_sops: bool = True) -> dict[str, Any]:
    result = instantiate(evaluation(*modules, with_sops=with_sops))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def evaluation_error(*modules: str) -> str:
    result = instantiate(evaluation(*modules))
    assert result.returncode != 0, f"expected an evaluation error, got {result.stdout[:500]}"
    return result.stderr


def host(name: str) -> str:
    return f"import {REPO}/hosts/{name}"


def example(name: str, extra: str = "") -> dict[str, Any]:
    return evaluate(host(name), f"{{ lib, ... }}: {{ {extra} }}")


def example_roa_files(name: str, extra: str = "") -> dict[str, Any]:
    """The example host on the example's twin with ROA files (the example runs RTR)."""
    return example(
        name, f"services.ibgpTunnel.plan = lib.mkForce {EXAMPLE_ROA_FILES_PLAN}; {extra}"
    )


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
    # The reflector's DN42 tunnel is exempt from the strict reverse-path check
    # (a reply may come back through another DN42 peer) and reached from the
    # tunnels; nothing new is accepted from DN42 itself.
    dn42_rpfilter = 'iifname "dn42-peer1" accept' in firewall["extraReversePathFilterRules"]
    assert dn42_rpfilter is (host == "dmz")
    assert 'iifname "dn42-peer1"' not in firewall["extraForwardRules"]
    if host == "dmz":
        assert (
            'iifname { "wg-ibgp" } oifname { "dn42-peer1" } accept' in firewall["extraForwardRules"]
        )
    assert config["boot"]["kernel"]["sysctl"]["net.ipv4.conf.all.forwarding"] == 1
    assert config["boot"]["kernel"]["sysctl"]["net.ipv6.conf.all.forwarding"] == 1
    secrets = config["sops"]["secrets"]
    # The reflector's DN42 tunnel has a key of its own and a PSK (hosts/plan.toml).
    dn42 = {"wg_dn42/private_key", "wg_dn42/psk/peer1"} if host == "dmz" else set()
    assert set(secrets) == {"wg_ibgp/private_key", "wg_ibgp/psk/pve"} | dn42
    for name, secret in secrets.items():
        assert secret["sopsFile"].endswith(f"secrets/test/{host}.yaml")
        if name.startswith("wg_dn42/"):
            assert secret["restartUnits"] == ["wireguard-dn42-peer1.service"]
        else:
            assert "wireguard-wg-ibgp.service" in secret["restartUnits"]


# nixpkgs nixos/modules/services/networking/bird.nix's ExecStart, as read at
# NixOS/nixpkgs 0148e16d1446003704803ecabb5a00cfea7d8568 and Swarsel/nixpkgs
# 4aa6836a648ca76c68866decf0c8965e36ec2a3b (same line in both):
#   ExecStart = "${lib.getExe' cfg.package "bird"} -c /etc/bird/bird.conf";
# checks/lib/nixos-option-decls.nix mirrors it; this fixture keeps the mirror honest.
UPSTREAM_BIRD_EXEC_START = "{bird}/bin/bird -c /etc/bird/bird.conf"


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_bird_restarts_gracefully(host: str) -> None:
    config = example(host)["config"]
    bird = config["services"]["bird"]["package"]
    service = config["systemd"]["services"]["bird"]["serviceConfig"]
    plain = example(host, "services.ibgpTunnel.tuning.gracefulRestart = false;")["config"]
    upstream = plain["systemd"]["services"]["bird"]["serviceConfig"]
    # Without graceful restart the unit is upstream's, untouched...
    assert upstream["ExecStart"] == UPSTREAM_BIRD_EXEC_START.format(bird=bird)
    assert upstream["ExecStop"] == f"{bird}/bin/birdc down"
    # ...with it, upstream's very line run by the start script, which adds -R
    # only when the kernel holds routes to recover (test_bird_start.py).
    start, *line = service["ExecStart"].split(" ", 1)
    assert line == [upstream["ExecStart"]]
    assert start.endswith("-bird-start")
    assert service["ExecStop"] != upstream["ExecStop"]


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
    # The iBGP link's port and the DN42 tunnel's (2 + the last four digits of 4242421080).
    assert sorted(example("dmz")["config"]["networking"]["firewall"]["allowedUDPPorts"]) == [
        21080,
        51821,
    ]
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
        "{ networking.nftables.enable = true; }",
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
        r"this host uses the iptables firewall \(networking\.nftables\.enable = false\)\. "
        r"Either set networking\.nftables\.enable = true .* or set "
        r"services\.ibgpTunnel\.nftables\.enable = false",
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


def test_the_option_reference_is_generated_from_the_module() -> None:
    import optionsdoc

    generated = optionsdoc.markdown(optionsdoc.option_list())
    assert "### `services.ibgpTunnel.links.<name>.peer.endpoint`" in generated
    assert optionsdoc.generated_section(optionsdoc.OPTIONS_DOC.read_text()) == generated, (
        "docs/options.md is stale: run python python/tests/optionsdoc.py --write"
    )


# --- the VM test's nodes, as the test driver would evaluate them -------------


def vm_test_nodes() -> dict[str, Any]:
    result = instantiate(
        f"import {EVAL_VM_TEST} {{ lib = import {pinned.NIXPKGS_LIB}; "
        f"sops = {pinned.SOPS_MODULE}; }}"
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_vm_test_nodes_evaluate_with_the_real_sops_nix() -> None:
    nodes = vm_test_nodes()
    assert set(nodes) == {"dmz", "pve", "lan", "web", "peer1", "outside"}
    for name, node in nodes.items():
        assert node["failedAssertions"] == [], name
    for name in ("dmz", "pve"):
        config = nodes[name]["config"]
        assert config["services"]["bird"]["enable"] is True
        manifest = config["sops"]["manifest"]
        # sops-nix's age.keyFile is pathNotInStore: a runtime path on the VM.
        key_file = manifest["ageKeyFile"]
        assert key_file.startswith("/run/") and "/nix/store" not in key_file
        scripts = config["system"]["activationScripts"]
        (writer,) = [n for n, s in scripts.items() if key_file in s["text"] and n != "setupSecrets"]
        assert writer in scripts["setupSecrets"]["deps"], "the key must be there before sops-nix"
        assert {s["name"] for s in manifest["secrets"]} == set(config["sops"]["secrets"])
    # dmz takes self-service peerings; its registry is the VM's fixture repository.
    services = nodes["dmz"]["config"]["systemd"]["services"]
    assert {"ibgp-tunnel-autopeer-web", "ibgp-tunnel-autopeer-apply"} <= set(services)
    refresh = services["ibgp-tunnel-autopeer-registry"]["serviceConfig"]["ExecStart"]
    assert "--registry-url file:///nix/store/" in refresh
    assert "ibgp-tunnel-test-autopeer-registry.git" in refresh
    # The outside router dials the port dmz gives its ASN (20000 + 1234).
    (dmz,) = nodes["outside"]["config"]["networking"]["wireguard"]["interfaces"]["wg0"]["peers"]
    assert dmz["endpoint"] == "192.168.1.1:21234"
    # The client dials the reflector's test-network address.
    (peer,) = nodes["pve"]["config"]["networking"]["wireguard"]["interfaces"]["wg-ibgp"]["peers"]
    assert peer["endpoint"] == "192.168.1.1:51821"


# --- NixOS conventions ---------------------------------------------------------


def test_the_firewall_backend_is_the_hosts_choice() -> None:
    # Everything the module defines for networking.nftables.enable: nothing.
    result = instantiate(
        f"""let
          lib = import {pinned.NIXPKGS_LIB};
          eval = import {REPO}/checks/lib/evaluate.nix {{
            inherit lib;
            modules = [ {pinned.SOPS_MODULE} {MODULE} ({host("pve")}) ];
          }};
          definitions = eval.options.networking.nftables.enable.definitionsWithLocations;
        in map (d: toString d.file) definitions"""
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    assert files and not any("modules/ibgp-tunnel" in f for f in files), files


@pytest.mark.parametrize("value", ["1", "true", '"1"'])
def test_a_host_that_also_turns_on_forwarding_evaluates(value: str) -> None:
    result = example(
        "dmz",
        f'boot.kernel.sysctl."net.ipv4.conf.all.forwarding" = {value}; '
        f'boot.kernel.sysctl."net.ipv6.conf.all.forwarding" = {value};',
    )
    assert result["failedAssertions"] == []
    sysctl = result["config"]["boot"]["kernel"]["sysctl"]
    assert sysctl["net.ipv4.conf.all.forwarding"] == json.loads(value)


def test_forwarding_wins_over_nixos_own_default_and_the_host_can_still_say_no() -> None:
    # network-interfaces.nix sets IPv4 forwarding off at mkDefault.
    assert example("pve")["config"]["boot"]["kernel"]["sysctl"]["net.ipv4.conf.all.forwarding"] == 1
    off = example("pve", 'boot.kernel.sysctl."net.ipv4.conf.all.forwarding" = 0;')
    assert off["config"]["boot"]["kernel"]["sysctl"]["net.ipv4.conf.all.forwarding"] == 0


@pytest.mark.parametrize("value", ["0", "false", '"0"'])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_a_host_that_turns_forwarding_off_is_warned(family: str, value: str) -> None:
    key = f"net.{family}.conf.all.forwarding"
    result = example("dmz", f'boot.kernel.sysctl."{key}" = {value};')
    assert result["failedAssertions"] == []
    (warning,) = [w for w in result["warnings"] if key in w]
    assert f'needs boot.kernel.sysctl."{key}" = 1, but it is {value}' in warning
    assert "uplink and DN42" in warning
    # The other family, and a host that agrees, are not warned about.
    assert [w for w in result["warnings"] if "forwarding" in w] == [warning]
    assert not [w for w in example("dmz")["warnings"] if "forwarding" in w]


def test_the_reflector_uplinks_keep_accepting_router_advertisements() -> None:
    sysctl = example("dmz")["config"]["boot"]["kernel"]["sysctl"]
    assert sysctl["net.ipv6.conf.all.forwarding"] == 1
    assert sysctl["net.ipv6.conf.eth0.accept_ra"] == 2
    vlan = example("dmz", 'services.ibgpTunnel.uplinkInterfaces = lib.mkForce [ "eth0.100" ];')
    assert vlan["config"]["boot"]["kernel"]["sysctl"]["net.ipv6.conf.eth0/100.accept_ra"] == 2
    client = example("pve")["config"]["boot"]["kernel"]["sysctl"]
    assert not [key for key in client if key.endswith(".accept_ra")]


def ra_warnings(result: dict[str, Any]) -> list[str]:
    return [w for w in result["warnings"] if "router advertisements" in w]


def accept_ra(result: dict[str, Any]) -> dict[str, Any]:
    sysctl = result["config"]["boot"]["kernel"]["sysctl"]
    return {key: value for key, value in sysctl.items() if key.endswith(".accept_ra")}


def test_a_client_names_the_interfaces_that_take_router_advertisements() -> None:
    # pve's plan says [ ] (dhcpcd takes its RAs): no key, no warning.
    assert accept_ra(example("pve")) == {} and ra_warnings(example("pve")) == []
    undecided = example("pve", "services.ibgpTunnel.acceptRAInterfaces = lib.mkForce null;")
    (warning,) = ra_warnings(undecided)
    assert 'services.ibgpTunnel.acceptRAInterfaces = [ "<interface>" ]' in warning
    assert "set it to [ ] to silence this warning" in warning
    assert accept_ra(undecided) == {}
    named = example(
        "pve", 'services.ibgpTunnel.acceptRAInterfaces = lib.mkForce [ "wan0" "vmbr0.7" ];'
    )
    assert ra_warnings(named) == []
    assert accept_ra(named) == {
        "net.ipv6.conf.wan0.accept_ra": 2,
        "net.ipv6.conf.vmbr0/7.accept_ra": 2,
    }


@pytest.mark.parametrize(
    "setting", ["networking.useNetworkd = true;", "networking.enableIPv6 = false;"]
)
def test_no_router_advertisement_warning_where_the_sysctl_does_not_matter(setting: str) -> None:
    # networkd handles RAs itself (its IPv6AcceptRA ignores accept_ra); no IPv6, no RAs.
    result = example("pve", f"services.ibgpTunnel.acceptRAInterfaces = lib.mkForce null; {setting}")
    assert ra_warnings(result) == []


def test_a_reflector_can_name_other_interfaces_than_its_uplinks() -> None:
    assert accept_ra(example("dmz")) == {"net.ipv6.conf.eth0.accept_ra": 2}
    none = example("dmz", "services.ibgpTunnel.acceptRAInterfaces = [ ];")
    assert accept_ra(none) == {} and ra_warnings(none) == []
    other = example("dmz", 'services.ibgpTunnel.acceptRAInterfaces = [ "ens3" ];')
    assert accept_ra(other) == {"net.ipv6.conf.ens3.accept_ra": 2}


@pytest.mark.parametrize("name", ["eth0/../x", "a b", "averyveryverylongname", "eth0\nx"])
def test_interface_names_reaching_sysctl_keys_are_checked(name: str) -> None:
    setting = f'services.ibgpTunnel.acceptRAInterfaces = lib.mkForce [ "{name}" ];'
    error = evaluation_error(host("pve"), f"{{ lib, ... }}: {{ {setting} }}")
    assert "services.ibgpTunnel.acceptRAInterfaces" in error


@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_bird_stops_cleanly_and_a_switch_restarts_it_in_one_step(host: str) -> None:
    service = example(host)["config"]["systemd"]["services"]["bird"]
    assert service["stopIfChanged"] is False
    script, specifier = service["serviceConfig"]["ExecStop"].split(" ")
    assert script.startswith("/nix/store/") and script.endswith("-bird-stop")
    assert specifier == "%n"


@pytest.mark.parametrize("activation", ["services.userborn.enable", "systemd.sysusers.enable"])
def test_wireguard_waits_for_sops_install_secrets(activation: str) -> None:
    services = example("pve", f"{activation} = true;")["config"]["systemd"]["services"]
    # The real sops-nix defines the unit; the tunnel's unit is ordered after it.
    assert "sops-install-secrets" in services
    assert "sops-install-secrets.service" in services["wireguard-wg-ibgp"]["after"]
    plain = example("pve")["config"]["systemd"]["services"]
    assert "sops-install-secrets" not in plain
    assert "sops-install-secrets.service" not in plain.get("wireguard-wg-ibgp", {}).get("after", [])


# --- the example hosts can decrypt what they are given ---------------------------


def sops_recipients(path: Path) -> set[str]:
    entries = (line.strip().removeprefix("- ") for line in path.read_text().splitlines())
    return {entry.split(":", 1)[1].strip() for entry in entries if entry.startswith("recipient:")}


@pytest.mark.parametrize("name", ["dmz", "pve"])
def test_the_example_hosts_key_source_fits_their_secrets(name: str) -> None:
    from sopstools import TEST_KEY, recipient

    from ibgp_tunnel.keys.sops import find_sops

    manifest = example(name)["config"]["sops"]["manifest"]
    # The host's sops.file, as a store path in the manifest.
    (sops_file,) = {secret["sopsFile"] for secret in manifest["secrets"]}
    assert sops_file.endswith(f"-{name}.yaml")
    committed = REPO / "secrets" / "test" / f"{name}.yaml"
    # The committed secrets are encrypted to the test key only, so the host
    # must read an age key file (where a trial copies the test key), not only
    # its SSH host key, whose recipient no committed file has.
    assert sops_recipients(committed) == {recipient(TEST_KEY)}
    assert manifest["ageKeyFile"], (
        f"hosts/{name} decrypts with SSH host keys only, but {committed.name} is encrypted "
        "to the test key only"
    )
    assert not manifest["ageKeyFile"].startswith("/nix/store/")
    # What sops-install-secrets -check-mode=sopsfile checks at build time:
    # every secret's key is in the file (decrypted here with the test key).
    decrypted = subprocess.run(
        [str(find_sops()), "decrypt", "--output-type", "json", str(committed)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(TEST_KEY)},
    )
    assert decrypted.returncode == 0, decrypted.stderr
    data = json.loads(decrypted.stdout)
    for secret in manifest["secrets"]:
        value: Any = data
        for part in secret["key"].split("/"):
            value = value[part]
        assert isinstance(value, str) and value


# --- images -------------------------------------------------------------------

IMAGES = {
    "dmz-image": ("dmz", "qemu-efi"),
    "dmz-image-raw": ("dmz", "raw-efi"),
    "pve-image": ("pve", "proxmox"),
}


def image_evaluation(name: str, variant: str, extra: str = "") -> subprocess.CompletedProcess[str]:
    host_module = f"{{ imports = [ ({host(name)}) ({{ lib, ... }}: {{ {extra} }}) ]; }}"
    return instantiate(
        f"import {REPO}/checks/lib/eval-image.nix {{ lib = import {pinned.NIXPKGS_LIB}; "
        f'sops = {pinned.SOPS_MODULE}; variant = "{variant}"; host = {host_module}; }}'
    )


def image(name: str, variant: str) -> dict[str, Any]:
    result = image_evaluation(name, variant)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_flake_exposes_the_image_variants_checked_here() -> None:
    flake = (REPO / "flake.nix").read_text()
    exposed = dict(
        re.findall(
            r"(\S+-image\S*) = self\.nixosConfigurations\.\w+"
            r"\.config\.system\.build\.images\.(\S+);",
            flake,
        )
    )
    assert exposed == {name: variant for name, (_, variant) in IMAGES.items()}


@pytest.mark.parametrize(("package", "target"), IMAGES.items())
def test_each_image_evaluates_with_its_host(package: str, target: tuple[str, str]) -> None:
    name, variant = target
    result = image(name, variant)
    assert result["failedAssertions"] == [], package
    config = result["config"]
    assert config["services"]["bird"]["enable"] is True
    assert result["hostName"] == name and result["useDHCP"] is True
    assert result["fileSystems"]["/"]["device"] == "/dev/disk/by-label/nixos"
    assert result["fileSystems"]["/"]["autoResize"] is True


def test_without_its_image_settings_the_proxmox_image_would_not_evaluate() -> None:
    # proxmox-image.nix with cloud-init turns networking.useDHCP off, which the
    # example host sets on: pve's image.modules.proxmox turns cloud-init off.
    result = image_evaluation(
        "pve", "proxmox", "image.modules.proxmox.proxmox.cloudInit.enable = lib.mkForce true;"
    )
    assert result.returncode != 0
    assert "networking.useDHCP" in result.stderr and "conflicting definition" in result.stderr


def test_with_networkd_systemd_networkd_reads_the_keys() -> None:
    result = example(
        "pve", "networking.wireguard.useNetworkd = true; services.userborn.enable = true;"
    )
    assert result["failedAssertions"] == []
    services = result["config"]["systemd"]["services"]
    # No wireguard-<iface>.service exists with networkd: none is made up.
    assert "wireguard-wg-ibgp" not in services
    assert "sops-install-secrets.service" in services["systemd-networkd"]["after"]
    for secret in result["config"]["sops"]["secrets"].values():
        assert secret["restartUnits"] == ["systemd-networkd.service"]


# --- the flake's own wiring ------------------------------------------------------


def test_the_flake_wires_the_hosts_and_exposes_the_images() -> None:
    result = instantiate(
        f"import {REPO}/checks/lib/eval-flake.nix {{ lib = import {pinned.NIXPKGS_LIB}; "
        f"sops = {pinned.SOPS_MODULE}; }}"
    )
    assert result.returncode == 0, result.stderr
    flake = json.loads(result.stdout)
    assert flake["inputs"] == ["nixpkgs", "sops-nix"]
    assert {"templates", "lib"} <= set(flake["outputs"])
    assert set(IMAGES) <= set(flake["packages"]["x86_64-linux"])
    assert {"vm", "render", "dmz", "pve", "python"} <= set(flake["checks"]["x86_64-linux"])
    for name, host in flake["nixosConfigurations"].items():
        assert host["failedAssertions"] == [], name
        # The same configuration the host tests evaluate.
        assert (
            host["config"]["services"]["bird"]["config"] == render(EXAMPLE_PLAN, name)["birdConfig"]
        )
        assert host["config"]["sops"]["manifest"]["ageKeyFile"] == "/var/lib/sops-nix/key.txt"


@needs_nix
def test_a_plan_link_mtu_is_the_wireguard_interfaces_mtu(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(
        EXAMPLE_PLAN.read_text(encoding="utf-8").replace(
            "[links.pve]", "[links.pve]\nmtu = 1380", 1
        ),
        encoding="utf-8",
    )
    assert "mtu = 1380" in plan.read_text(encoding="utf-8")
    for name in ("dmz", "pve"):
        config = example(name, f"services.ibgpTunnel.plan = lib.mkForce {plan};")["config"]
        assert config["networking"]["wireguard"]["interfaces"]["wg-ibgp"]["mtu"] == 1380
    # Without it, NixOS's own default (null: WireGuard's 1420) stays.
    assert (
        example("pve")["config"]["networking"]["wireguard"]["interfaces"]["wg-ibgp"]["mtu"] is None
    )
