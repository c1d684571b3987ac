"""The NixOS side of DN42 peering (modules/ibgp-tunnel/dn42.nix), evaluated with
the real sops-nix: the example reflector's DN42 tunnel, its ROA timer and
build-time stubs (on the example's twin with ROA files: the example runs RTR), its
secrets; assertions and option types on bad values."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from test_nixos_module import (
    evaluation_error,
    example,
    example_roa_files,
    pytestmark,  # noqa: F401  (needs nix and the pinned flake inputs)
)

UNIT = "ibgp-tunnel-dn42-roa"


def test_the_reflector_runs_the_peers_tunnel() -> None:
    config = example("dmz")["config"]
    tunnel = config["networking"]["wireguard"]["interfaces"]["dn42-peer1"]
    assert tunnel["ips"] == ["fe80::38/64"]
    assert tunnel["listenPort"] == 21080  # 2 + the last four digits of 4242421080
    assert tunnel["mtu"] == 1420
    assert tunnel["allowedIPsAsRoutes"] is False
    assert tunnel["privateKeyFile"] == "/run/secrets/wg_dn42/private_key"
    assert (
        "ip -4 address add 172.23.101.1/32 peer 172.20.42.1/32 dev dn42-peer1"
        in (tunnel["postSetup"])
    )
    (peer,) = tunnel["peers"]
    assert peer["presharedKeyFile"] == "/run/secrets/wg_dn42/psk/peer1"
    assert peer["endpoint"] is None  # the peer dials us
    assert config["networking"]["firewall"]["interfaces"]["dn42-peer1"]["allowedTCPPorts"] == [179]
    bird = config["services"]["bird"]["config"]
    assert "neighbor fe80::1080 as 4242421080;" in bird
    assert "source address fe80::38;" in bird
    assert "extended next hop on;" in bird


def test_roa_timer_unit_and_build_time_stubs() -> None:
    config = example_roa_files("dmz")["config"]
    timer = config["systemd"]["timers"][UNIT]
    assert timer["wantedBy"] == ["timers.target"]
    assert timer["timerConfig"]["OnUnitActiveSec"] == "15min"
    service = config["systemd"]["services"][UNIT]
    assert service["serviceConfig"]["Type"] == "oneshot"
    argv = shlex.split(service["serviceConfig"]["ExecStart"])
    assert argv[1:] == [
        "ipv4",
        "https://dn42.burble.com/roa/dn42_roa_bird2_4.conf",
        "/var/lib/ibgp-tunnel/roa/dn42_roa4.conf",
        "dn42_roa4",
        "ipv6",
        "https://dn42.burble.com/roa/dn42_roa_bird2_6.conf",
        "/var/lib/ibgp-tunnel/roa/dn42_roa6.conf",
        "dn42_roa6",
    ]
    # Each download is checked inside the config BIRD runs (nixpkgs' services.bird).
    assert service["environment"]["BIRD_CONF"] == "/etc/bird/bird.conf"
    assert "bird.service" in service["after"]
    rules = config["systemd"]["tmpfiles"]["rules"]
    assert "d /var/lib/ibgp-tunnel/roa 0755 bird bird -" in rules
    assert "f /var/lib/ibgp-tunnel/roa/dn42_roa4.conf 0644 bird bird -" in rules
    assert "dn42_roa4.conf" in config["services"]["bird"]["preCheckConfig"]
    assert config["services"]["bird"]["checkConfig"] is True


def test_build_time_check_passes_before_the_first_download(tmp_path: Path) -> None:
    """nixpkgs' checkPhase, with the module's preCheckConfig, on the module's config."""
    config = example_roa_files("dmz")["config"]["services"]["bird"]
    (tmp_path / "out").write_text(config["config"])
    (tmp_path / "bird.conf").symlink_to("out")
    script = f"set -e\n{config['preCheckConfig']}\nbird -d -p -c bird.conf\n"
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out").read_text() == config["config"]  # the store path untouched


def test_dn42_secrets_restart_the_dn42_tunnel_only() -> None:
    secrets = example("dmz")["config"]["sops"]["secrets"]
    for name in ("wg_dn42/private_key", "wg_dn42/psk/peer1"):
        assert secrets[name]["restartUnits"] == ["wireguard-dn42-peer1.service"]


def test_no_roa_unit_on_the_client() -> None:
    config = example("pve")["config"]
    assert UNIT not in config["systemd"]["services"]
    assert UNIT not in config["systemd"]["timers"]


def test_a_tunnel_port_clash_with_the_ibgp_link_is_an_assertion() -> None:
    result = example("dmz", "services.ibgpTunnel.dn42Peers.peer1.tunnel.listenPort = 51821;")
    assert any(
        "dn42Peers.peer1.tunnel.listenPort" in m and "links.pve.listenPort" in m
        for m in result["failedAssertions"]
    ), result["failedAssertions"]
    assert result["config"]["networking"]["wireguard"]["interfaces"] == {}


def test_community_and_link_local_option_types() -> None:
    error = evaluation_error(
        "import " + str(Path(__file__).resolve().parents[2] / "hosts" / "dmz"),
        "{ lib, ... }: { services.ibgpTunnel.dn42Peers.peer1.latency = lib.mkForce 12; }",
    )
    assert "services.ibgpTunnel.dn42Peers.peer1.latency" in error
    error = evaluation_error(
        "import " + str(Path(__file__).resolve().parents[2] / "hosts" / "dmz"),
        "{ lib, ... }: { services.ibgpTunnel.dn42Peers.peer1.tunnel.linkLocal = "
        'lib.mkForce "fd42::1/64"; }',
    )
    assert "services.ibgpTunnel.dn42Peers.peer1.tunnel.linkLocal" in error


def test_roa_can_be_turned_off() -> None:
    config = example("dmz", "services.ibgpTunnel.dn42.roa.enable = false;")["config"]
    assert UNIT not in config["systemd"]["services"]
    assert "roa_check" not in config["services"]["bird"]["config"]
    assert "dn42_update_crypto(34);" in config["services"]["bird"]["config"]


def test_roa_unit_runs_sandboxed_as_bird() -> None:
    """Not root: BIRD's user, only the ROA directory writable, no capabilities."""
    service = example_roa_files("dmz")["config"]["systemd"]["services"][UNIT]
    unit = service["serviceConfig"]
    assert (unit["User"], unit["Group"]) == ("bird", "bird")
    assert "DynamicUser" not in unit
    assert unit["ProtectSystem"] == "strict"
    assert unit["ReadWritePaths"] == ["/var/lib/ibgp-tunnel/roa"]
    assert unit["CapabilityBoundingSet"] == "" and unit["AmbientCapabilities"] == ""
    assert unit["NoNewPrivileges"] is True
    assert unit["PrivateTmp"] is True and unit["PrivateDevices"] is True
    assert unit["ProtectHome"] is True
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged"]
    cap = int(service["environment"]["ROA_MAX_BYTES"])
    assert cap == 8 * 1024 * 1024
    assert int(unit["LimitFSIZE"]) == 2 * cap


def test_roa_files_elsewhere_are_writable_there() -> None:
    config = example_roa_files(
        "dmz",
        'services.ibgpTunnel.dn42.roa.ipv6File = "/srv/roa/v6.conf";',
    )["config"]
    unit = config["systemd"]["services"][UNIT]["serviceConfig"]
    assert unit["ReadWritePaths"] == ["/var/lib/ibgp-tunnel/roa", "/srv/roa"]
    assert "d /srv/roa 0755 bird bird -" in config["systemd"]["tmpfiles"]["rules"]


def test_a_plain_http_roa_url_is_an_assertion_unless_allowed() -> None:
    url = "http://roa.example.net/dn42_roa4.conf"
    result = example_roa_files("dmz", f'services.ibgpTunnel.dn42.roa.ipv4Url = "{url}";')
    assert any(
        "services.ibgpTunnel.dn42.roa" in m and url in m and "allowInsecureUrls" in m
        for m in result["failedAssertions"]
    ), result["failedAssertions"]
    assert UNIT not in result["config"]["systemd"]["services"]
    allowed = example_roa_files(
        "dmz",
        f'services.ibgpTunnel.dn42.roa.ipv4Url = "{url}"; '
        "services.ibgpTunnel.dn42.roa.allowInsecureUrls = true;",
    )
    assert allowed["failedAssertions"] == []
    argv = shlex.split(allowed["config"]["systemd"]["services"][UNIT]["serviceConfig"]["ExecStart"])
    assert argv[1:4] == ["--allow-http", "ipv4", url]
