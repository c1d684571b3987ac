"""Self-service peering (issue 24): the two units alive, the spool draining, the
last outcome of each request, every applied peering's firewall set elements and
interface group, and peers/ records the apply unit would not run. The
peerings' tunnels and sessions are checked by the tunnel and session checks,
beside the static DN42 peers' (doctor/autopeer.py puts them there)."""

from __future__ import annotations

from typing import Any

from ibgp_tunnel.doctor.autopeer import APPLY_UNIT, UNREADABLE, WEB_UNIT
from ibgp_tunnel.doctor.checks.common import age_text
from ibgp_tunnel.doctor.expect import AutopeerExpect, Expectations, Peering
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.result import Check, fail, ok, skip, warn

# The apply unit reads the spool every 0.5 s and answers in well under a second
# (a BIRD reconfigure): an entry older than this waits for nothing good.
SPOOL_STALE_SECONDS = 30.0
_UNIT_ROLE = {
    WEB_UNIT: "takes requests (the page and the JSON API)",
    APPLY_UNIT: "applies them and restores the peerings after a boot",
}


def check_autopeer(exp: Expectations, live: Live) -> list[Check]:
    autopeer = exp.autopeer
    if autopeer is None:
        return []
    checks = _records(autopeer)
    runtime = live.autopeer
    if runtime is None:
        error = live.errors.get("autopeer", "not read")
        checks.append(
            warn(
                "autopeer",
                "cannot read self-service peering's state",
                f"{autopeer.state_dir}: {error}",
                "run doctor as root (the state directory is the apply unit's)",
            )
        )
    else:
        checks += _units(runtime) + _spool(runtime) + _outcomes(runtime)
        unreadable = [str(u) for u in runtime.get("unreadable", [])]
        if unreadable:
            checks.append(
                warn(
                    "autopeer.state",
                    "cannot read all of self-service peering's state: the spool and "
                    "outcome lines may miss entries",
                    "; ".join(unreadable),
                    "run doctor as root",
                )
            )
    return checks + _firewall(exp, autopeer, live)


def _records(autopeer: AutopeerExpect) -> list[Check]:
    if autopeer.refused and autopeer.refused[0][0] == UNREADABLE:
        return [
            warn(
                "autopeer.peers",
                "cannot read the applied peerings: their tunnels and sessions are not checked",
                autopeer.refused[0][1],
                "run doctor as root (peers/ is the apply unit's, mode 0700)",
            )
        ]
    return [
        warn(
            f"autopeer.record {name}",
            f"the applied peering {name} is not run: the core refuses its record",
            why,
            "the apply unit drops it when it starts again (`systemctl restart "
            f"{APPLY_UNIT}`): a record nobody applied was planted, find out who wrote "
            f"{autopeer.state_dir}/peers/",
        )
        for name, why in autopeer.refused
    ]


def _units(runtime: dict[str, Any]) -> list[Check]:
    checks = []
    for unit in (WEB_UNIT, APPLY_UNIT):
        state = str(runtime["units"].get(unit, "unknown"))
        name = f"autopeer.unit {unit}"
        if state == "active":
            checks.append(ok(name, f"{unit} runs: it {_UNIT_ROLE[unit]}"))
            continue
        checks.append(
            fail(
                name,
                f"{unit} is not running ({state}): nothing {_UNIT_ROLE[unit].split(' (')[0]}",
                f"state {state}",
                f"`systemctl start {unit}`; `journalctl -u {unit}` says why it stopped",
            )
        )
    return checks


def _spool(runtime: dict[str, Any]) -> list[Check]:
    entries = [e for e in runtime.get("spool", []) if isinstance(e, dict)]
    stale = [e for e in entries if float(e.get("age", 0)) > SPOOL_STALE_SECONDS]
    checks = []
    if stale:
        oldest = max(float(e["age"]) for e in stale)
        checks.append(
            fail(
                "autopeer.spool",
                f"{len(entries)} request(s) wait in the spool, the oldest for {age_text(oldest)}: "
                "the apply unit does not take them",
                ", ".join(str(e.get("name")) for e in stale[:5]),
                f"see the {APPLY_UNIT} line above and `journalctl -u {APPLY_UNIT}`",
            )
        )
    else:
        checks.append(ok("autopeer.spool", f"the spool drains ({len(entries)} waiting)"))
    failed = int(runtime.get("failed", 0))
    if failed:
        checks.append(
            warn(
                "autopeer.spool-failed",
                f"{failed} spool entr{'y' if failed == 1 else 'ies'} could not be read and "
                "were set aside",
                "spool-failed/",
                "read them (the apply unit logs why) and delete them",
            )
        )
    return checks


def _outcomes(runtime: dict[str, Any]) -> list[Check]:
    statuses = [s for s in runtime.get("statuses", []) if isinstance(s, dict)]
    if not statuses:
        return [ok("autopeer.last-apply", "no request answered yet")]
    last = max(statuses, key=lambda s: str(s.get("updated") or ""))
    what = f"AS{last.get('asn')} {last.get('state')} at {last.get('updated')}"
    failed = [s for s in statuses if s.get("state") == "failed"]
    if failed:
        first = failed[0]
        return [
            fail(
                f"autopeer.last-apply AS{first.get('asn')}",
                f"the host could not apply AS{first.get('asn')}'s last request",
                str(first.get("message") or ""),
                f"`journalctl -u {APPLY_UNIT}`; the requester may ask again once it is fixed",
            )
        ]
    # A refusal is the requester's to fix (it names the field): not the host's fault.
    return [ok("autopeer.last-apply", f"the last request was answered: {what}")]


def _firewall(exp: Expectations, autopeer: AutopeerExpect, live: Live) -> list[Check]:
    family, _, table = exp.nft_table.partition(" ")
    ruleset = live.ruleset
    checks = []
    for peering in autopeer.peerings:
        name = f"autopeer.firewall AS{peering.asn} {peering.interface}"
        if ruleset is None:
            checks.append(skip(name, "the nftables ruleset could not be read"))
            continue
        interfaces = ruleset.sets.get((family, table, autopeer.interfaces_set))
        ports = ruleset.sets.get((family, table, autopeer.ports_set))
        checks.append(_elements(name, autopeer, peering, interfaces, ports, live))
    return checks


def _elements(
    name: str,
    autopeer: AutopeerExpect,
    peering: Peering,
    interfaces: list[Any] | None,
    ports: list[Any] | None,
    live: Live,
) -> Check:
    missing = []
    if interfaces is None or peering.interface not in [str(e) for e in interfaces]:
        missing.append(f"{peering.interface} in set {autopeer.interfaces_set}")
    if ports is None or str(peering.listen_port) not in [str(e) for e in ports]:
        missing.append(f"{peering.listen_port} in set {autopeer.ports_set}")
    link = (live.links or {}).get(peering.interface)
    if link is not None and link.group != str(autopeer.group):
        group = f"{peering.interface} in interface group {autopeer.group} (has {link.group})"
        missing.append(group)
    if not missing:
        return ok(
            name,
            f"the firewall lets in UDP {peering.listen_port} and BGP on {peering.interface}",
        )
    return fail(
        name,
        f"the firewall does not admit AS{peering.asn}'s peering: no " + ", no ".join(missing),
        f"sets {autopeer.interfaces_set}: {interfaces}, {autopeer.ports_set}: {ports}",
        f"`systemctl restart {APPLY_UNIT}` restores the elements and the group from "
        f"{autopeer.state_dir}/peers/ (a `nft flush ruleset` or a firewall reload drops them)",
    )
