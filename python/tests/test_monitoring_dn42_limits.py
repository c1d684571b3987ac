"""The DN42 peers' own limits as alerts (issue 22 item 4): a rule per limit
value over the sessions having it, the receive limit read as BIRD counts it
(imported + kept filtered), and promtool firing each from exporter-shaped
series. The example hosts' rules file covers the default import limit
(monitoring/example-hosts.rules.test.yml); this a plan with its own values."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pinned
from nixcore import needs_nix
from test_monitoring import PROMTOOL, host, needs_promtool

pytestmark = [needs_nix, pinned.needs_inputs]

LIMITS = (
    "services.ibgpTunnel.monitoring.enable = true;"
    " services.ibgpTunnel.dn42Peers.peer1.importLimit = lib.mkForce 20;"
    " services.ibgpTunnel.dn42Peers.peer1.receiveLimit = 30;"
)


def _rules(extra: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in host("dmz", extra)["rules"]["rules"]:
        found.setdefault(rule["alert"], []).append(rule)
    return found


def test_each_limit_is_the_peers_own() -> None:
    rules = _rules(LIMITS)
    exprs = [rule["expr"] for rule in rules["IbgpTunnelImportLimitReached"]]
    assert any('name=~"dn42_peer1"' in e and e.endswith(">= 20") for e in exprs), exprs
    # The iBGP session keeps the sessions' limit; the DN42 one is not under it.
    assert any('name=~"ibgp_pve"' in e and e.endswith(">= 50000") for e in exprs), exprs
    assert not any("dn42_peer1" in e and "50000" in e for e in exprs), exprs
    (receive,) = rules["IbgpTunnelReceiveLimitReached"]
    assert "bird_protocol_prefix_filter_count" in receive["expr"]
    assert receive["expr"].endswith(">= 30")


def test_no_receive_limit_no_rule() -> None:
    rules = _rules("services.ibgpTunnel.monitoring.enable = true;")
    assert "IbgpTunnelReceiveLimitReached" not in rules


def test_without_the_sessions_limit_the_peers_own_stays() -> None:
    # tuning.importLimit null: no limit for iBGP, the DN42 peer's own still renders.
    rules = _rules(LIMITS + " services.ibgpTunnel.tuning.importLimit = lib.mkForce null;")
    exprs = [rule["expr"] for rule in rules["IbgpTunnelImportLimitReached"]]
    assert len(exprs) == 1 and 'name=~"dn42_peer1"' in exprs[0] and exprs[0].endswith(">= 20")


SERIES = (
    'bird_protocol_prefix_{kind}_count{{instance="dmz:9324",name="dn42_peer1",'
    'proto="BGP",ip_version="{v}"}}'
)


def summary(kind: str, limit: int, version: int) -> str:
    taken = "taken" if kind == "import" else "kept"
    return (
        f"DN42 session dn42_peer1 (IPv{version}) on dmz reached its {kind} limit of {limit} "
        f"routes (action block): routes beyond it are not {taken}; raise {kind}_limit of "
        "that peer ([hosts.dmz.dn42_peers.<peer>] in the plan) if its routes are "
        "legitimate, else find out why it sends so many"
    )


@needs_promtool
def test_promtool_fires_each_limit_per_family(tmp_path: Path) -> None:
    (tmp_path / "rules.json").write_text(json.dumps({"groups": [host("dmz", LIMITS)["rules"]]}))
    labels = (
        'severity: critical, ibgp_tunnel_host: dmz, instance: "dmz:9324", '
        "name: dn42_peer1, proto: BGP"
    )
    (tmp_path / "test.yml").write_text(
        f"""rule_files: [rules.json]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{SERIES.format(kind="import", v="4")}'
        values: '19 20'
      - series: '{SERIES.format(kind="filter", v="4")}'
        values: '0 0'
      - series: '{SERIES.format(kind="import", v="6")}'
        values: '12 12'
      - series: '{SERIES.format(kind="filter", v="6")}'
        values: '17 18'
    alert_rule_test:
      - eval_time: 0m
        alertname: IbgpTunnelImportLimitReached
        exp_alerts: []
      - eval_time: 1m
        alertname: IbgpTunnelImportLimitReached
        exp_alerts:
          - exp_labels: {{{labels}, ip_version: "4"}}
            exp_annotations: {{summary: "{summary("import", 20, 4)}"}}
      - eval_time: 0m
        alertname: IbgpTunnelReceiveLimitReached
        exp_alerts: []
      - eval_time: 1m
        alertname: IbgpTunnelReceiveLimitReached
        exp_alerts:
          - exp_labels: {{{labels}, ip_version: "6"}}
            exp_annotations: {{summary: "{summary("receive", 30, 6)}"}}
"""
    )
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
