"""Self-service peerings (issue 24) in doctor: what the applied peerings say the
host should run, and the runtime facts of the two units.

The peers/ records are read through autopeer/state.py and trusted for nothing:
each one's signed entry is verified against the registry checkout as the apply
unit does at load, and they are rendered by the Nix core exactly as the apply
unit renders them (autopeer/apply.py `Applier.load`: oldest first, each with
the name and port it was given), so a record either of them refuses (planted, signed by
a key the maintainer removed, or the plan changed under it) is reported, never
expected. What the core renders becomes
tunnels and sessions like a static DN42 peer's, checked by the same checks."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer import state as st
from ibgp_tunnel.autopeer.apply import assigned_of, has_registry, protocols_of, verify_record
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.render import render_autopeers
from ibgp_tunnel.autopeer.request import parse_request
from ibgp_tunnel.autopeer.run import ApplyError
from ibgp_tunnel.doctor.expect import (
    AutopeerExpect,
    PeerExpect,
    Peering,
    SessionExpect,
    TunnelExpect,
)

WEB_UNIT = "ibgp-tunnel-autopeer-web"
APPLY_UNIT = "ibgp-tunnel-autopeer-apply"
# The refusal's name when peers/ itself cannot be read.
UNREADABLE = "peers/"


def enabled(spec: Mapping[str, Any]) -> bool:
    """The core's rule (spec/dn42.nix autopeerOf): on, on a reflector."""
    autopeer = spec.get("autopeer")
    return (
        spec.get("role") == "reflector"
        and isinstance(autopeer, Mapping)
        and autopeer.get("enable") is True
    )


def _records(state: st.StateDir) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """The records, oldest first, and those that are no record at all."""
    try:
        # scan_peers' glob passes over a directory it may not read (not root:
        # peers/ is 0700): listed first, so that is said, not taken for none.
        os.listdir(state.peers)
    except FileNotFoundError:
        return [], []
    except OSError as error:
        return [], [(UNREADABLE, f"{state.peers} cannot be read: {error.strerror}")]
    scanned = st.scan_peers(state)
    good = list(scanned.records.items())
    # The apply unit sets these aside at its next load (peers-refused/).
    bad = [(name, f"is {why}") for name, why in scanned.unreadable.items()]
    return sorted(good, key=lambda kv: str(kv[1].get("applied"))), bad


def applied(
    spec: Mapping[str, Any], state: st.StateDir
) -> tuple[AutopeerExpect, list[TunnelExpect], list[SessionExpect]]:
    """The applied peerings in `state` rendered against the host `spec`."""
    records, refused = _records(state)
    parsed, given, names = [], [], []
    # The apply unit's own check of each record's signed entry (without a
    # registry checkout it refuses nothing, it waits: so does doctor).
    verify = has_registry(state.registry)
    for name, record in records:
        try:
            if verify:
                with contextlib.suppress(ApplyError):  # no ssh-keygen/gpg here: unknown
                    verify_record(state.registry, record)
            parsed.append(parse_request(record["request"]))
        except AutopeerRefused as error:
            refused.append((name, str(error)))
            continue
        given.append(assigned_of(name, record))
        names.append(name)
    if not parsed:
        return AutopeerExpect(str(state.root), (), tuple(refused)), [], []
    with tempfile.TemporaryDirectory(prefix="ibgp-tunnel-doctor-") as directory:
        spec_file = Path(directory) / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        rendered = render_autopeers(spec_file, parsed, refuse=False, assigned=given)
    refused += [(names[p.index], f"{p.field}: {p.message}") for p in rendered.problems]
    protocols = protocols_of(rendered.bird)
    limit = (spec.get("tuning") or {}).get("importLimit")
    peerings, tunnels, sessions = [], [], []
    for name, facts in sorted(rendered.peers.items()):
        interface = str(facts["interface"])
        wg = rendered.wireguard[interface]
        request = parsed[int(facts["index"])]
        protocol = protocols.get(interface, "")
        peerings.append(
            Peering(name, int(facts["asn"]), interface, int(facts["listenPort"]), protocol)
        )
        tunnels.append(_tunnel(interface, wg, f"AS{request.asn}"))
        sessions.append(
            SessionExpect(
                protocol=protocol,
                neighbor=str(facts["neighbor"]),
                neighbor_as=int(facts["asn"]),
                local_as=int(spec.get("asn", 0)),
                internal=False,
                bfd=False,
                ipv6_next_hop=None,
                interface=interface,
                import_limit=int(limit) if limit is not None else None,
                dn42_peer=name,
            )
        )
    expect = AutopeerExpect(str(state.root), tuple(peerings), tuple(refused))
    return expect, tunnels, sessions


def _tunnel(interface: str, wg: Mapping[str, Any], peer_name: str) -> TunnelExpect:
    return TunnelExpect(
        interface=interface,
        ips=tuple(wg.get("ips", [])),
        listen_port=wg.get("listenPort"),
        peers=tuple(
            PeerExpect(
                name=peer_name,
                public_key=str(peer.get("publicKey") or ""),
                endpoint=peer.get("endpoint"),
                keepalive=peer.get("persistentKeepalive"),
                allowed_ips=tuple(str(ip) for ip in peer.get("allowedIPs") or ()),
            )
            for peer in wg.get("peers", [])
        ),
        unit=APPLY_UNIT,
    )


# --- runtime: the units, the spool, the last outcomes ---------------------------------

UnitProbe = Callable[[str], str]


def runtime(state: st.StateDir, unit_state: UnitProbe, now: float | None = None) -> str:
    """The units' states, the spool's backlog and every ASN's last outcome, as the
    JSON document the snapshot keeps (so saved outputs replay it). A directory
    doctor may not read (not root: the spool is the units') is listed in
    `unreadable`, never guessed empty."""
    now = time.time() if now is None else now
    unreadable: list[str] = []

    def listing(directory: Path) -> list[Path]:
        try:
            return sorted(directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as error:
            unreadable.append(f"{directory}: {error.strerror}")
            return []

    spool = [
        {"name": path.name, "age": max(0.0, now - path.lstat().st_mtime)}
        for path in listing(state.spool)
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".")
    ]
    failed = sum(1 for p in listing(state.failed) if p.is_file())
    statuses = []
    for path in listing(state.status):
        if path.suffix != ".json" or path.is_symlink() or not path.stem.isdigit():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        if isinstance(data, dict):
            statuses.append({k: data.get(k) for k in ("asn", "state", "message", "updated")})
    units = {unit: unit_state(unit) for unit in (WEB_UNIT, APPLY_UNIT)}
    document = {
        "units": units,
        "spool": spool,
        "failed": failed,
        "statuses": statuses,
        "unreadable": unreadable,
        "now": now,
    }
    return json.dumps(document, sort_keys=True)


def systemd_unit_state(run: Callable[[list[str]], Any]) -> UnitProbe:
    """A unit's ActiveState through `systemctl is-active` (a host)."""

    def probe(unit: str) -> str:
        output = run(["systemctl", "is-active", f"{unit}.service"])
        return str(output.stdout).strip() or output.error()

    return probe


def pid_unit_state(pids: Mapping[str, bool]) -> UnitProbe:
    """A lab's daemons: unit -> whether its process lives."""

    def probe(unit: str) -> str:
        alive = pids.get(unit)
        return "unknown" if alive is None else ("active" if alive else "inactive")

    return probe


def state_dir_of(path: str | os.PathLike[str] | None) -> st.StateDir:
    return st.StateDir(Path(path) if path is not None else st.DEFAULT_STATE_DIR)
