"""The flake template (templates/default): what `nix flake init -t` copies is what
`ibgp-tunnel init` writes, and a copy of it, once `ibgp-tunnel keys` has run,
evaluates as a host flake: one NixOS configuration per plan host through the real
module system and sops-nix (checks/lib/eval-template.nix), one deploy-rs node
each, alert rules for all."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pinned
import pytest
from cli_helpers import run
from nixcore import REPO, needs_nix, render
from sopstools import needs_sops_and_age, recipient

from ibgp_tunnel.paths import defaults
from ibgp_tunnel.scaffold import AGE_PLACEHOLDER, TEMPLATE_ULA, template_dir

TEMPLATE = REPO / "templates" / "default"


def files(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_init_writes_the_templates_files(tmp_path: Path) -> None:
    # The installed package's template (bundled in a wheel) is the checkout's.
    assert files(template_dir()) == files(TEMPLATE)
    result = run("init", tmp_path, "--age-recipient", recipient())
    assert result.exit_code == 0, result.output
    written, template = files(tmp_path), files(TEMPLATE)
    assert (
        set(written)
        == set(template)
        >= {
            "flake.nix",
            ".sops.yaml",
            "hosts/plan.toml",
            "hosts/common.nix",
            "hosts/vps/default.nix",
            "hosts/home/default.nix",
        }
    )
    # The same text but for a fresh ULA and the recipients.
    ula = re.search(r'ipv6 = "(\S+)::/64"', written["hosts/plan.toml"])
    assert ula and ula.group(1) + "::" != TEMPLATE_ULA
    assert written["hosts/plan.toml"] == template["hosts/plan.toml"].replace(
        TEMPLATE_ULA, ula.group(1) + "::"
    )
    assert written[".sops.yaml"] == template[".sops.yaml"].replace(AGE_PLACEHOLDER, recipient())
    for name in set(template) - {"hosts/plan.toml", ".sops.yaml"}:
        assert written[name] == template[name], name


def test_the_templates_plan_uses_the_shared_defaults_and_passes_check() -> None:
    text = (TEMPLATE / "hosts" / "plan.toml").read_text()
    assert f'interface = "{defaults()["interface"]}"' in text
    assert f"port = {defaults()['port']}" in text
    checked = run("check", TEMPLATE / "hosts" / "plan.toml")
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize("path", sorted(TEMPLATE.rglob("*.nix")))
@needs_nix
def test_every_template_nix_file_parses(path: Path) -> None:
    result = subprocess.run(
        ["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def evaluate(flake_dir: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "-E",
            f"import {REPO}/checks/lib/eval-template.nix {{ lib = import {pinned.NIXPKGS_LIB}; "
            f"sops = {pinned.SOPS_MODULE}; dir = {flake_dir}; }}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def host_flake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    if not (pinned.present() and shutil.which("nix-instantiate")):
        pytest.skip(pinned.MISSING_REASON)
    # `nix flake init -t`: a copy of the directory.
    flake_dir = tmp_path_factory.mktemp("host-flake") / "flake"
    shutil.copytree(TEMPLATE, flake_dir)
    sops_yaml = flake_dir / ".sops.yaml"
    sops_yaml.write_text(sops_yaml.read_text().replace(AGE_PLACEHOLDER, recipient()))
    keys = run("keys", flake_dir / "hosts" / "plan.toml")
    assert keys.exit_code == 0, keys.output
    return flake_dir, evaluate(flake_dir)


@needs_sops_and_age
def test_the_template_evaluates_as_a_host_flake(host_flake: tuple[Path, dict[str, Any]]) -> None:
    flake_dir, flake = host_flake
    assert set(flake["inputs"]) == {"nixpkgs", "sops-nix", "ibgp-tunnel", "deploy-rs"}
    for name in ("sops-nix", "ibgp-tunnel", "deploy-rs"):
        assert flake["inputs"][name]["inputs"]["nixpkgs"]["follows"] == "nixpkgs"
    assert flake["inputs"]["ibgp-tunnel"]["inputs"]["sops-nix"]["follows"] == "sops-nix"
    plan = flake_dir / "hosts" / "plan.toml"
    assert set(flake["nixosConfigurations"]) == {"vps", "home"}
    for name, host in flake["nixosConfigurations"].items():
        assert host["failedAssertions"] == [], name
        config = host["config"]
        # The configuration deploys what the core renders for the (keyed) plan.
        assert config["services"]["bird"]["config"] == render(plan, name)["birdConfig"]
        secrets = config["sops"]["secrets"]
        assert set(secrets) == {"wg_ibgp/private_key", "wg_ibgp/psk/home"}
        assert all(s["sopsFile"].endswith(f"secrets/{name}.yaml") for s in secrets.values())
        manifest = config["sops"]["manifest"]
        assert manifest["ageSshKeyPaths"] == ["/etc/ssh/ssh_host_ed25519_key"]
        assert manifest["sshKeyPaths"] == []


@needs_sops_and_age
def test_the_template_has_metrics_with_the_firewall_closed(
    host_flake: tuple[Path, dict[str, Any]],
) -> None:
    _, flake = host_flake
    for name, host in flake["monitoring"].items():
        exporters = host["exporters"]
        assert exporters["enable"] and exporters["wireguard"]["enable"], name
        assert exporters["birdVersion"] == 2 and exporters["birdSocket"] == "/run/bird/bird.ctl"
        assert exporters["wireguard"]["interfaces"] == ["wg-ibgp"]
        assert not exporters["openFirewall"] and not exporters["wireguard"]["openFirewall"]
        assert "9324" not in host["extraInputRules"] and "9586" not in host["extraInputRules"]
    groups = {group["name"] for group in flake["alertRules"]["groups"]}
    assert groups == {"ibgp-tunnel-vps", "ibgp-tunnel-home"}


@needs_sops_and_age
def test_every_host_of_the_plan_is_a_deploy_rs_node(
    host_flake: tuple[Path, dict[str, Any]],
) -> None:
    _, flake = host_flake
    nodes = flake["deploy"]["nodes"]
    assert set(nodes) == {"vps", "home"}
    # deploy-rs's interface.json: hostname required; profiles.<name>.path.
    assert nodes["vps"]["hostname"] == "203.0.113.10"  # the plan's public endpoint
    assert nodes["home"]["hostname"] == "home"
    for name, node in nodes.items():
        profile = node["profiles"]["system"]
        assert profile["user"] == "root" and node["sshUser"] == "root"
        assert profile["path"].endswith(f"activatable-x86_64-linux-{name}")
    assert flake["checks"] == {
        "x86_64-linux": ["deploy-activate", "deploy-schema"],
        "aarch64-linux": ["deploy-activate", "deploy-schema"],
    }


def deploy_nodes(nodes: str, hosts: str) -> subprocess.CompletedProcess[str]:
    # The example plan with configurations that only carry what deployNodes reads.
    return subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "-E",
            f"""import {REPO}/modules/fleet/deploy-rs.nix {{
              deploy-rs.lib.x86_64-linux.activate.nixos = host: "activated-" + host.name;
              plan = {REPO}/hosts/plan.toml;
              nixosConfigurations = builtins.listToAttrs (map (name: {{
                inherit name;
                value = {{ inherit name; config.nixpkgs.hostPlatform.system = "x86_64-linux"; }};
              }}) [ {hosts} ]);
              nodes = {nodes};
            }}""",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


@needs_nix
def test_deploy_nodes_take_overrides_and_name_a_missing_host() -> None:
    result = deploy_nodes(
        '{ pve = { hostname = "192.168.1.2"; profiles.system.sshOpts = [ "-p" "2222" ]; }; }',
        '"dmz" "pve" "monitor"',
    )
    assert result.returncode == 0, result.stderr
    nodes = json.loads(result.stdout)
    # Only the plan's hosts; a configuration outside the plan is not a node.
    assert set(nodes) == {"dmz", "pve"}
    assert nodes["dmz"]["hostname"] == "203.0.113.10"
    assert nodes["pve"]["hostname"] == "192.168.1.2"
    assert nodes["pve"]["profiles"]["system"] == {
        "user": "root",
        "path": "activated-pve",
        "sshOpts": ["-p", "2222"],
    }
    missing = deploy_nodes("{ }", '"dmz"')
    assert missing.returncode != 0
    assert "the plan's hosts pve have no nixosConfigurations entry" in missing.stderr


@needs_nix
@pytest.mark.parametrize("given", ["2001:db8::7", "[2001:db8::7]"])
def test_an_ipv6_hostname_reaches_ssh_and_nix_unbracketed(given: str) -> None:
    result = deploy_nodes(f'{{ pve.hostname = "{given}"; }}', '"dmz" "pve"')
    assert result.returncode == 0, result.stderr
    hostname = json.loads(result.stdout)["pve"]["hostname"]
    assert hostname == "2001:db8::7"
    # deploy-rs runs `ssh root@<hostname>`: OpenSSH must see the address itself
    # (brackets would be resolved as a name: `ssh -G root@[2001:db8::7]`).
    if shutil.which("ssh"):
        resolved = subprocess.run(
            ["ssh", "-G", f"root@{hostname}"], capture_output=True, text=True, check=True
        ).stdout
        assert "hostname 2001:db8::7\n" in resolved
        bracketed = subprocess.run(
            ["ssh", "-G", "root@[2001:db8::7]"], capture_output=True, text=True, check=True
        ).stdout
        assert "hostname [2001:db8::7]\n" in bracketed  # why they are taken off
    # A name with brackets that is no IPv6 literal is left alone (and fails in ssh).
    other = deploy_nodes('{ pve.hostname = "[pve.lan]"; }', '"dmz" "pve"')
    assert json.loads(other.stdout)["pve"]["hostname"] == "[pve.lan]"


@needs_nix
@pytest.mark.parametrize(
    ("hostname", "subnet"),
    [("10.255.255.1", "10.255.255.0/30"), ("fdb7:1dec:4d21:ff::2", "fdb7:1dec:4d21:ff::/64")],
)
def test_deploying_through_a_tunnel_of_the_plan_is_warned(hostname: str, subnet: str) -> None:
    result = deploy_nodes(f'{{ pve.hostname = "{hostname}"; }}', '"dmz" "pve"')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pve"]["hostname"] == hostname
    assert f"node pve's hostname {hostname} is inside link pve's tunnel subnet {subnet}" in (
        result.stderr
    )
    assert "magic rollback" in result.stderr
    # The plan's public endpoint and a LAN address are not.
    fine = deploy_nodes('{ pve.hostname = "192.168.1.2"; }', '"dmz" "pve"')
    assert fine.returncode == 0 and "tunnel subnet" not in fine.stderr
