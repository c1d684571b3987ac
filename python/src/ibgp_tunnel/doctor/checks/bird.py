"""BIRD itself, its BGP and BFD sessions and graceful-restart recovery."""

from __future__ import annotations

from ibgp_tunnel.doctor.checks.common import (
    REDEPLOY,
    bird_down,
)
from ibgp_tunnel.doctor.checks.liveness import consequence, consequence_fix, dead_tunnels
from ibgp_tunnel.doctor.expect import Expectations, SessionExpect
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_bird import Protocol
from ibgp_tunnel.doctor.result import Check, fail, ok, skip

# --- BIRD ------------------------------------------------------------------------


def check_bird_running(exp: Expectations, live: Live) -> list[Check]:
    if live.bird is not None and live.bird.up:
        return [ok("bird.running", f"BIRD {live.bird.version} is up")]
    error = live.errors.get("bird_status", "BIRD did not say it is up")
    return [
        fail(
            "bird.running",
            "BIRD is not running, so no session and no route exists",
            f"birdc: {error}",
            "start it: `systemctl start bird` (`journalctl -u bird` says why it stopped; "
            "`bird -p -c /etc/bird/bird.conf` checks the config)",
        )
    ]


# --- BGP sessions --------------------------------------------------------------------


def _session_fix(session: SessionExpect, row: Protocol, reason: str) -> str:
    peer = session.peer_host or f"the peer at {session.neighbor}"
    live_as = row.details.get("Neighbor AS", "")
    if live_as and session.neighbor_as is not None and live_as != str(session.neighbor_as):
        # Whatever BIRD's last error, a config that expects another AS is the cause.
        return (
            f"this host's BIRD expects AS {live_as} from {session.neighbor}, the plan says "
            f"{session.neighbor_as}: its bird.conf is not the plan's; {REDEPLOY}"
        )
    if "Bad peer AS" in reason:
        return (
            f"{peer} refused this host's AS {session.local_as}: its BIRD expects another AS. "
            f"Both ends must use the plan's asn; deploy the plan to {peer} and run "
            f"`ibgp-tunnel doctor` there"
        )
    if "BFD session down" in reason:
        return (
            "BFD (multihop, UDP 4784) stopped getting through the tunnel: see the bfd and "
            f"handshake lines, and allow UDP 4784 on {session.interface} at both ends"
        )
    if session.collector:
        return (
            f"DN42's route collector at {session.neighbor} is several hops away (multihop): "
            f"check that a DN42 route leads there (ping {session.neighbor}), that the collector "
            "can answer our source address (a DN42 address of ours, dn42_collector."
            "source_address), and that the DN42 sessions are up; the collector only listens"
        )
    if not session.internal:
        return (
            f"the eBGP session to {session.neighbor} over {session.interface} is down: check "
            f"that link (ping {session.neighbor}), that TCP 179 is open on it, and ask the "
            "peer's operator whether their side is configured"
        )
    if "Connection refused" in reason:
        return (
            f"nothing accepts BGP (TCP 179) at {session.neighbor}: BIRD on {peer} is not "
            f"running or has no session for this host; run `ibgp-tunnel doctor` on {peer}"
        )
    if "Hold timer expired" in reason:
        return (
            f"keepalives from {peer} stopped arriving: the tunnel lost packets (see the "
            "handshake line) or the peer's BIRD hangs"
        )
    if "No listening socket" in reason:
        return "another process (an old BIRD?) holds TCP 179: stop it and `systemctl restart bird`"
    return (
        f"BIRD gets no BGP answer from {session.neighbor}: check the tunnel (handshake line), "
        f"that TCP 179 is open on {session.interface} at {peer}, and run "
        f"`ibgp-tunnel doctor` on {peer}"
    )


def check_sessions(exp: Expectations, live: Live) -> list[Check]:
    reason = bird_down(live)
    if reason:
        return [skip(f"bgp.session {s.protocol}", reason) for s in exp.sessions]
    checks = []
    dead = dead_tunnels(exp, live)
    for session in exp.sessions:
        name = f"bgp.session {session.protocol}"
        row = live.protocols.get(session.protocol)
        if row is None:
            checks.append(
                fail(
                    name,
                    f"BIRD runs no protocol {session.protocol}: its config is not the plan's",
                    f"protocols: {', '.join(p for p in live.protocols) or 'none'}",
                    f"{REDEPLOY}, or load the rendered bird.conf with `birdc configure`",
                )
            )
            continue
        state = row.details.get("BGP state", row.info or row.state)
        established = row.state == "up" and state.startswith("Established")
        if session.interface in dead:
            checks.append(_behind_dead_tunnel(name, session, row, state, established))
            continue
        if established:
            counts = ", ".join(
                f"{c.name} {c.imported} in/{c.exported} out"
                for c in row.channels.values()
                if c.imported is not None
            )
            checks.append(ok(name, f"Established with {session.neighbor}", counts))
            continue
        reason_text = row.last_error or row.info or state
        checks.append(
            fail(
                name,
                f"the BGP session with {session.peer_host or session.neighbor} is "
                f'{state}, not Established: BIRD says "{reason_text}"',
                f"{row.name} {row.state} {row.info}".strip(),
                _session_fix(session, row, reason_text),
            )
        )
    return checks


def _behind_dead_tunnel(
    name: str, session: SessionExpect, row: Protocol, state: str, established: bool
) -> Check:
    interface = session.interface or ""
    if established:
        # BIRD has not noticed yet (no BFD, or within its detection time).
        return skip(
            name,
            f"BIRD still counts it Established, but {consequence(interface)} it ends "
            "when the hold timer runs out",
        )
    reason_text = row.last_error or row.info or state
    return fail(
        name,
        f"the BGP session with {session.peer_host or session.neighbor} is {state} "
        f'(BIRD says "{reason_text}") {consequence(interface)}',
        f"{row.name} {row.state} {row.info}".strip(),
        consequence_fix(interface),
    )


def check_bfd(exp: Expectations, live: Live) -> list[Check]:
    wanted = [s for s in exp.sessions if s.bfd]
    reason = bird_down(live)
    if reason:
        return [skip(f"bfd.session {s.protocol}", reason) for s in wanted]
    checks = []
    dead = dead_tunnels(exp, live)
    for session in wanted:
        name = f"bfd.session {session.protocol}"
        found = [b for b in (live.bfd or []) if b.address == session.neighbor]
        if session.interface in dead:
            state = found[0].state if found else "missing"
            if state == "Up":  # BIRD has not noticed yet (within its detection time)
                checks.append(
                    skip(
                        name,
                        f"BIRD still counts BFD with {session.peer_host or session.neighbor} "
                        f"Up, but {consequence(session.interface or '')} it goes Down",
                    )
                )
                continue
            checks.append(
                fail(
                    name,
                    f"BFD with {session.peer_host or session.neighbor} is {state} "
                    f"{consequence(session.interface or '')}",
                    f"BFD session {state}",
                    consequence_fix(session.interface or ""),
                )
            )
            continue
        if found and found[0].state == "Up":
            checks.append(ok(name, f"BFD with {session.neighbor} is Up"))
            continue
        evidence = f"BFD session {found[0].state}" if found else "no BFD session"
        checks.append(
            fail(
                name,
                f"BFD with {session.peer_host or session.neighbor} ({session.neighbor}) is "
                f"{found[0].state if found else 'missing'}: BIRD ends the BGP session on it",
                evidence,
                f"BFD packets (UDP 4784, multihop) must pass on {session.interface} both ways: "
                f"allow UDP 4784 there on both ends (firewallInterfaces), and run "
                f"`ibgp-tunnel doctor` on {session.peer_host or 'the peer'}",
            )
        )
    return checks


def check_recovery(exp: Expectations, live: Live) -> list[Check]:
    if bird_down(live) or live.bird is None:
        return []
    if not live.bird.recovering:
        return [ok("bird.recovery", "BIRD is not in graceful restart recovery")]
    wait = exp.graceful_restart_wait
    return [
        fail(
            "bird.recovery",
            "BIRD is still in graceful restart recovery (started with -R): it holds back "
            "kernel and BGP updates until every neighbour sends End-of-RIB",
            live.bird.recovery_detail,
            "a neighbour's session is not up: fix the failing bgp.session line; recovery "
            f"ends by itself after graceful restart wait ({wait} s)"
            if wait
            else "a neighbour's session is not up: fix the failing bgp.session line",
        )
    ]
