"""services.ibgpTunnel.monitoring through the real module system: nixpkgs'
exporters on with the flags BIRD 3 needs and the firewall closed unless asked,
and the alert rules, checked and unit-tested by Prometheus's own promtool.
monitoring/example-hosts.rules.json is the example hosts' rules as generated."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pinned
import pytest
from nixcore import EXAMPLE_ROA_FILES_PLAN, REPO, needs_nix

pytestmark = [needs_nix, pinned.needs_inputs]

EXAMPLE_RULES = REPO / "monitoring" / "example-hosts.rules.json"
# The example's reflector (RPKI over RTR) with two caches (the local stayrtr and a
# second one as fallback): the RTR alert's rules, unit-tested beside.
RTR_RULES = REPO / "monitoring" / "example-rtr.rules.json"
RTR = (
    "services.ibgpTunnel.monitoring.enable = true;"
    " services.ibgpTunnel.dn42.roa.rtrCaches = ["
    ' { address = "127.0.0.1"; port = 8282; }'
    ' { address = "fd42:4242:2601:ac12::1"; port = 323; } ];'
)
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt: prometheus)"
)


def instantiate(expression: str) -> Any:
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def host(name: str, extra: str = "services.ibgpTunnel.monitoring.enable = true;") -> Any:
    return instantiate(
        f"""let
          lib = import {pinned.NIXPKGS_LIB};
          eval = import {REPO}/checks/lib/evaluate.nix {{
            inherit lib;
            modules = [ {pinned.SOPS_MODULE} {REPO}/modules/ibgp-tunnel
              (import {REPO}/hosts/{name}) ({{ lib, ... }}: {{ {extra} }}) ];
          }};
          c = eval.config;
        in {{
          failed = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
          exporters = {{ inherit (c.services.prometheus.exporters) bird wireguard node; }};
          services = lib.mapAttrs (_: s: s.serviceConfig)
            (lib.filterAttrs (n: _: lib.hasPrefix "prometheus-" n) c.systemd.services);
          inputRules = c.networking.firewall.extraInputRules;
          rules = c.services.ibgpTunnel.monitoring.alertRules;
        }}"""
    )


def example_rules() -> dict[str, Any]:
    groups = [host(name)["rules"] for name in ("dmz", "pve")]
    return {"groups": groups}


def rtr_rules() -> dict[str, Any]:
    return {"groups": [host("dmz", RTR)["rules"]]}


@pytest.mark.parametrize("name", ["dmz", "pve"])
def test_the_exporters_run_for_bird_3_with_the_firewall_closed(name: str) -> None:
    result = host(name)
    assert result["failed"] == []
    bird, wireguard = result["exporters"]["bird"], result["exporters"]["wireguard"]
    assert bird["enable"] and wireguard["enable"]
    assert (bird["birdVersion"], bird["birdSocket"], bird["newMetricFormat"]) == (
        2,
        "/run/bird/bird.ctl",
        True,
    )
    assert wireguard["interfaces"] == ["wg-ibgp"]
    assert not bird["openFirewall"] and not wireguard["openFirewall"]
    assert "9324" not in result["inputRules"] and "9586" not in result["inputRules"]
    service = result["services"]["prometheus-bird-exporter"]
    assert "-bird.v2=true" in service["ExecStart"] and "-format.new=true" in service["ExecStart"]
    assert "-bird.socket /run/bird/bird.ctl" in service["ExecStart"]
    # services.bird runs as bird:bird and its socket is 0660: the exporter's way in.
    assert service["SupplementaryGroups"] == ["bird"]
    assert "-i wg-ibgp" in result["services"]["prometheus-wireguard-exporter"]["ExecStart"]


def test_open_firewall_opens_both_ports_and_off_means_nothing() -> None:
    opened = host(
        "dmz",
        "services.ibgpTunnel.monitoring = { enable = true; openFirewall = true; };",
    )
    assert "tcp dport 9324 accept" in opened["inputRules"]
    assert "tcp dport 9586 accept" in opened["inputRules"]
    off = host("dmz", "services.ibgpTunnel.monitoring.enable = lib.mkForce false;")
    assert off["services"] == {}
    assert not off["exporters"]["bird"]["enable"]


def test_the_example_rules_file_is_what_the_hosts_generate() -> None:
    assert json.loads(EXAMPLE_RULES.read_text()) == example_rules(), (
        "monitoring/example-hosts.rules.json is stale: python python/tests/test_monitoring.py"
    )


def test_rules_follow_the_plan_and_the_options() -> None:
    pve = {
        rule["alert"] + rule["labels"].get("ip_version", ""): rule
        for rule in host("pve")["rules"]["rules"]
    }
    assert pve["IbgpTunnelKernelRoutesMissing4"]["expr"].endswith("< 5")
    assert pve["IbgpTunnelKernelRoutesMissing6"]["expr"].endswith("< 2")
    assert 'name=~"ibgp_dmz"' in pve["IbgpTunnelSessionDown"]["expr"]
    assert pve["IbgpTunnelImportLimitReached"]["expr"].endswith(">= 50000")
    dmz = {rule["alert"] for rule in host("dmz")["rules"]["rules"]}
    # The reflector's kernel gets only DN42 routes, which the plan cannot count.
    assert "IbgpTunnelKernelRoutesMissing" not in dmz and "IbgpTunnelDn42SessionDown" in dmz
    merged = host(
        "pve",
        "services.ibgpTunnel.monitoring.enable = true; services.ibgpTunnel.bird.standalone = false;"
        " services.ibgpTunnel.tuning.importLimit = lib.mkForce null;"
        ' services.bird.config = "router id 1.2.3.4;";',
    )["rules"]["rules"]
    alerts = {rule["alert"]: rule for rule in merged}
    assert 'name=~"ibgpt_ibgp_dmz"' in alerts["IbgpTunnelSessionDown"]["expr"]
    assert "IbgpTunnelImportLimitReached" not in alerts


AUTO = 'services.ibgpTunnel.dn42Peers.peer1.latency = lib.mkForce "auto";'


def test_the_latency_metrics_are_scraped_through_the_node_exporters_textfile_collector() -> None:
    result = host("dmz", "services.ibgpTunnel.monitoring.enable = true; " + AUTO)
    assert result["failed"] == []
    node = result["exporters"]["node"]
    assert node["enable"] and not node["openFirewall"]
    service = result["services"]["prometheus-node-exporter"]
    # The directory dn42-latency-update.sh writes dn42-latency.prom into: the
    # directory of the measured classes (modules/lib/base/dn42-defaults.toml).
    flag = "--collector.textfile.directory=/var/lib/ibgp-tunnel/dn42-latency"
    assert flag in service["ExecStart"].split()
    assert "--collector.textfile" in service["ExecStart"].split()
    assert "9100" not in result["inputRules"]
    opened = host(
        "dmz", "services.ibgpTunnel.monitoring = { enable = true; openFirewall = true; }; " + AUTO
    )
    assert "tcp dport 9100 accept" in opened["inputRules"]


@pytest.mark.parametrize(
    "extra",
    [
        "services.ibgpTunnel.monitoring.enable = true;",  # no latency = "auto" peer
        "services.ibgpTunnel.monitoring = { enable = true; latencyTextfile = false; }; " + AUTO,
        "services.ibgpTunnel.monitoring.enable = lib.mkForce false; " + AUTO,
    ],
)
def test_no_node_exporter_without_auto_latency_or_when_declined(extra: str) -> None:
    result = host("dmz", extra)
    assert result["failed"] == []
    assert not result["exporters"]["node"]["enable"]
    assert "prometheus-node-exporter" not in result["services"]


@needs_promtool
@pytest.mark.parametrize("rules", [EXAMPLE_RULES, RTR_RULES])
def test_promtool_accepts_the_rules(rules: Path) -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("name", ["example-hosts", "example-rtr"])
def test_the_rules_fire_when_they_should(name: str) -> None:
    tests = REPO / "monitoring" / f"{name}.rules.test.yml"
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


if __name__ == "__main__":
    EXAMPLE_RULES.write_text(json.dumps(example_rules(), indent=2) + "\n")
    RTR_RULES.write_text(json.dumps(rtr_rules(), indent=2) + "\n")


def test_the_rtr_rules_file_is_what_the_host_generates() -> None:
    assert json.loads(RTR_RULES.read_text()) == rtr_rules(), (
        "monitoring/example-rtr.rules.json is stale: python python/tests/test_monitoring.py"
    )


def test_the_rtr_alert_follows_the_source_and_the_caches() -> None:
    alerts = {rule["alert"]: rule for rule in host("dmz", RTR)["rules"]["rules"]}
    down = alerts["IbgpTunnelRtrCachesDown"]
    # Every cache of the plan, by the names render gives their `protocol rpki`.
    assert 'proto="RPKI",name=~"dn42_rpki_1|dn42_rpki_2"}) == 0' in down["expr"]
    assert "keeps the last ROA table" in down["annotations"]["summary"]
    # The example's one cache (the local stayrtr), watched alone.
    (example,) = [r for r in host("dmz")["rules"]["rules"] if r["alert"] == down["alert"]]
    assert 'proto="RPKI",name=~"dn42_rpki_1"}) == 0' in example["expr"]
    # ROA files (the example's twin) have no RTR session to watch.
    files = host(
        "dmz",
        "services.ibgpTunnel.monitoring.enable = true;"
        f" services.ibgpTunnel.plan = lib.mkForce {EXAMPLE_ROA_FILES_PLAN};",
    )["rules"]["rules"]
    assert files and "IbgpTunnelRtrCachesDown" not in {r["alert"] for r in files}
    merged = host(
        "dmz",
        RTR + " services.ibgpTunnel.bird.standalone = false;"
        ' services.bird.config = "router id 1.2.3.4;";',
    )["rules"]["rules"]
    (rule,) = [r for r in merged if r["alert"] == "IbgpTunnelRtrCachesDown"]
    assert 'name=~"ibgpt_dn42_rpki_1|ibgpt_dn42_rpki_2"' in rule["expr"]


def test_the_vm_test_reads_the_exporters_and_its_script_is_python() -> None:
    import ast

    script = instantiate(
        f"(import {REPO}/checks/vm-test.nix {{ sops-nix = null; ibgpTunnel = null; }} "
        f"{{ lib = import {pinned.NIXPKGS_LIB}; }}).testScript"
    )
    ast.parse(script)
    for needle in (
        "prometheus-bird-exporter.service",
        "^bird_protocol_up[{].*name=",
        "^bird_bfd_session_up",
        "^wireguard_latest_handshake_seconds",
        'pve.fail("curl -sf --max-time 3 http://dmz:9324/metrics")',
    ):
        assert needle in script, needle


# (pattern the client kernel-exports, prefix the reflector announces, BIRD's verdict)
PATTERNS = [
    ("10.0.0.0/8", "10.0.0.0/8", True),
    ("10.0.0.0/8", "10.1.0.0/16", False),
    ("10.0.0.0/8+", "10.1.0.0/16", True),
    ("10.0.0.0/8+", "11.0.0.0/16", False),
    ("10.0.0.0/8-", "10.0.0.0/7", True),
    ("10.0.0.0/8-", "10.1.0.0/16", False),
    ("172.20.0.0/14{21,29}", "172.21.4.0/22", True),
    ("172.20.0.0/14{21,29}", "172.21.4.0/24", True),
    ("172.20.0.0/14{21,29}", "172.21.4.0/30", False),
    ("172.20.0.0/14{21,29}", "172.24.0.0/24", False),
    ("fd00::/8{44,64}", "fd42:4242:2601::/48", True),
    ("fd00::/8{44,64}", "fd42::/32", False),
    ("fd00::/8{44,64}", "2001:db8::/48", False),
]


@pytest.mark.parametrize(("pattern", "prefix", "kept"), PATTERNS)
def test_expected_kernel_routes_follow_birds_prefix_patterns(
    pattern: str, prefix: str, kept: bool
) -> None:
    family = "ipv6" if ":" in prefix else "ipv4"
    plan = f"""{{
      asn = 4242420000;
      prefix_sets.s.{family} = [ "{pattern}" ];
      prefix_sets.s.{"ipv4" if family == "ipv6" else "ipv6"} = [ ];
      hosts.r = {{ role = "reflector"; announce.{family} = [ "{prefix}" ]; }};
      hosts.c = {{ role = "client"; import_sets = [ "s" ]; kernel_export_sets = [ "s" ]; }};
      hosts.c2 = {{ role = "client"; announce.{family} = [ "{prefix}" ]; }};
      links.c = {{ reflector = "r"; client = "c"; }};
      links.c2 = {{ reflector = "r"; client = "c2"; }};
    }}"""
    counts = instantiate(
        f"let f = import {REPO}/modules/ibgp-tunnel/monitoring/expected-routes.nix; "
        f'plan = {plan}; in {{ c = f plan "c"; r = f plan "r"; }}'
    )
    # One prefix, announced by the reflector and reflected from c2: counted once.
    assert counts["c"][family] == (1 if kept else 0)
    # The reflector keeps nothing: no kernel_export_sets.
    assert counts["r"] == {"ipv4": 0, "ipv6": 0}


def test_expected_kernel_routes_count_what_linked_reflectors_pass_on() -> None:
    """Two reflectors linked to each other, a client on each: each reflector installs
    the other's client's LAN and statics, each client the other's LAN through its own
    reflector; nobody counts its own announcements."""
    plan = """{
      asn = 4242420000;
      prefix_sets.lans = { ipv4 = [ "192.168.0.0/16{24,24}" ]; ipv6 = [ ]; };
      hosts.vps1 = { role = "reflector"; kernel_export_sets = [ "lans" ];
                     announce.ipv4 = [ "192.168.100.0/24" ]; };
      hosts.vps2 = { role = "reflector"; kernel_export_sets = [ "lans" ]; };
      hosts.home = { role = "client"; import_sets = [ "lans" ]; kernel_export_sets = [ "lans" ];
                     announce.ipv4 = [ "192.168.1.0/24" ]; };
      hosts.office = { role = "client"; import_sets = [ "lans" ]; kernel_export_sets = [ "lans" ];
                       announce.ipv4 = [ "192.168.2.0/24" ]; };
      links.home = { reflector = "vps1"; client = "home"; };
      links.office = { reflector = "vps2"; client = "office"; };
      links.twins = { reflector = "vps1"; client = "vps2"; };
    }"""
    counts = instantiate(
        f"let f = import {REPO}/modules/ibgp-tunnel/monitoring/expected-routes.nix; "
        f"plan = {plan}; in builtins.mapAttrs (name: _: f plan name) plan.hosts"
    )
    assert counts["vps1"]["ipv4"] == 2  # home's and office's LANs, not its own static
    assert counts["vps2"]["ipv4"] == 3  # both LANs and vps1's static
    assert counts["home"]["ipv4"] == 2  # office's LAN and vps1's static
    assert counts["office"]["ipv4"] == 2  # home's LAN and vps1's static
