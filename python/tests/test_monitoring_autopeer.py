"""Self-service peerings in the alert rules (issue 24 item 4): their sessions
appear at runtime, so the DN42 rules match them by the core's naming
(dn42_ap<asn>[_<k>]) instead of a list built with the host, and promtool fires
the rules for an autopeered session it has never heard of."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pinned
from nixcore import needs_nix
from test_monitoring import PROMTOOL, host, needs_promtool

pytestmark = [needs_nix, pinned.needs_inputs]

AUTOPEER = (
    "services.ibgpTunnel.monitoring.enable = true;"
    " services.ibgpTunnel.autopeer.enable = true;"
    ' services.ibgpTunnel.autopeer.linkLocal = "fe80::38/64";'
)


def _rules(extra: str) -> dict[str, list[dict[str, Any]]]:
    result = host("dmz", extra)
    assert result["failed"] == []
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in result["rules"]["rules"]:
        found.setdefault(rule["alert"], []).append(rule)
    return found


def test_without_autopeer_no_rule_names_autopeers() -> None:
    rules = _rules("services.ibgpTunnel.monitoring.enable = true;")
    assert not any("dn42_ap" in r["expr"] for group in rules.values() for r in group)


def test_with_autopeer_the_dn42_rules_match_autopeer_sessions() -> None:
    rules = _rules(AUTOPEER)
    (down,) = rules["IbgpTunnelDn42SessionDown"]
    # The static peer by name, every autopeer by the pattern.
    assert 'name=~"dn42_peer1|dn42_ap[0-9]+(_[0-9]+)?"' in down["expr"], down["expr"]
    limits = [r for r in rules["IbgpTunnelImportLimitReached"] if "dn42_ap" in r["expr"]]
    (limit,) = limits
    # The sessions' limit (autopeers have none of their own); static names excluded.
    assert 'name!~"dn42_peer1"' in limit["expr"] and limit["expr"].endswith(">= 50000")


SERIES = '{metric}{{instance="dmz:9324",name="{name}",proto="BGP",ip_version="6",state="{state}"}}'


@needs_promtool
def test_promtool_fires_for_an_autopeered_session(tmp_path: Path) -> None:
    """Sessions the rules never listed: one self-service peering (AS4242420002,
    a second one of AS4242420003 with its index) goes down, another reaches the
    import limit of the sessions (50000), another stays under it; the static peer
    fires at its own limit (9000) only, never under the autopeers' rule."""
    (tmp_path / "rules.json").write_text(json.dumps({"groups": [host("dmz", AUTOPEER)["rules"]]}))
    up = "bird_protocol_up"
    imported = "bird_protocol_prefix_import_count"
    (tmp_path / "test.yml").write_text(
        f"""rule_files: [rules.json]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{SERIES.format(metric=up, name="dn42_ap4242420002", state="Active")}'
        values: '0x10'
      - series: '{SERIES.format(metric=up, name="dn42_ap4242420003_2", state="Established")}'
        values: '1x10'
      - series: '{SERIES.format(metric=up, name="dn42_apple", state="Active")}'
        values: '0x10'
      - series: '{SERIES.format(metric=imported, name="dn42_ap4242420003_2", state="Established")}'
        values: '49999 50000'
      - series: '{SERIES.format(metric=imported, name="dn42_peer1", state="Established")}'
        values: '8999 9000'
      - series: '{SERIES.format(metric=imported, name="dn42_ap4242420004", state="Established")}'
        values: '8999 8999'
    alert_rule_test:
      - eval_time: 4m
        alertname: IbgpTunnelDn42SessionDown
        exp_alerts: []
      - eval_time: 6m
        alertname: IbgpTunnelDn42SessionDown
        exp_alerts:
          - exp_labels:
              severity: warning
              ibgp_tunnel_host: dmz
              instance: "dmz:9324"
              name: dn42_ap4242420002
              proto: BGP
              ip_version: "6"
              state: Active
            exp_annotations:
              summary: "DN42 session dn42_ap4242420002 on dmz is down: Active"
      - eval_time: 0m
        alertname: IbgpTunnelImportLimitReached
        exp_alerts: []
      - eval_time: 1m
        alertname: IbgpTunnelImportLimitReached
        exp_alerts:
          - exp_labels:
              severity: critical
              ibgp_tunnel_host: dmz
              instance: "dmz:9324"
              name: dn42_ap4242420003_2
              proto: BGP
              ip_version: "6"
              state: Established
            exp_annotations:
              summary: "{_summary("dn42_ap4242420003_2")}"
          - exp_labels:
              severity: critical
              ibgp_tunnel_host: dmz
              instance: "dmz:9324"
              name: dn42_peer1
              proto: BGP
              ip_version: "6"
              state: Established
            exp_annotations:
              summary: "{_static_summary()}"
"""
    )
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _summary(name: str) -> str:
    return (
        f"Self-service DN42 session {name} (IPv6) on dmz reached its import limit of 50000 "
        "routes (action block): routes beyond it are not taken; find out why that peer sends "
        "so many (`ibgp-tunnel dn42 autopeer show`), remove its peering if it will not stop, "
        "or raise tuning.import_limit for every session"
    )


def _static_summary() -> str:
    return (
        "DN42 session dn42_peer1 (IPv6) on dmz reached its import limit of 9000 routes "
        "(action block): routes beyond it are not taken; raise import_limit of that peer "
        "([hosts.dmz.dn42_peers.<peer>] in the plan) if its routes are legitimate, else find "
        "out why it sends so many"
    )
