"""The privileged half of self-service peering: spool entries checked again and
applied to the running host, without nixos-rebuild.

An entry is trusted for nothing: its signature is verified again against the
registry, its request is rendered again by the core together with every applied
peer (the same grammars, spec rules and limits as the plan's static peers, which
win every collision), and only what the core rendered reaches WireGuard, nftables
and BIRD. The peers/ records are the source of truth: `restore` rebuilds the
interfaces and set elements from them after a reboot.

One change, in this order: the new or changed interfaces, the nft elements, the
BIRD include (checked with `bird -p`, then loaded); if BIRD refuses, both are put
back as they were and the old peers stay up. Interfaces of removed peers go last,
after BIRD has dropped their sessions."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer import birdinclude, nftsets, spool, wireguard
from ibgp_tunnel.autopeer import state as st
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.files import write_atomic
from ibgp_tunnel.autopeer.run import ApplyError, run
from ibgp_tunnel.errors import IbgpTunnelError

Log = Callable[[str], None]
SPOOL_POLL = 0.5
STATUS_EVERY = 3.0
# Challenge ids applied once are never applied again (defence in depth: the web
# service consumes them already); kept this long.
USED_KEEP_SECONDS = 7 * 86400
USED_FILE = "used-challenges.json"


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ApplyConfig:
    state: st.StateDir
    spec_file: Path  # the host's spec, as render_autopeers takes it
    bird: birdinclude.Bird
    registry_dir: Path
    nft_table: str = "ibgp-tunnel"
    userspace_wireguard: bool = False  # wireguard-go instead of the kernel's (the lab)


@dataclass
class Outcome:
    asn: int
    state: str  # applied | removed | refused | failed
    message: str = ""
    field: str = ""
    peers: list[str] = dataclasses.field(default_factory=list)


# --- the other parts' contracts (imported late: core and auth build them) -------


def render(
    spec_file: Path, requests: Sequence[Mapping[str, Any]], assigned: Sequence[Any] = ()
) -> Any:
    """The core's answer for these requests (autopeer/render.py), problems beside
    what it accepted; AutopeerRefused naming the field for a request of the
    wrong shape. `assigned`: what the applied ones were given (render.Assigned)."""
    from ibgp_tunnel.autopeer.render import render_autopeers
    from ibgp_tunnel.autopeer.request import parse_request

    parsed = [parse_request(dict(r)) for r in requests]
    return render_autopeers(spec_file, parsed, refuse=False, assigned=assigned)


def assigned_of(name: str, record: Mapping[str, Any]) -> Any:
    """What an applied peer was given: its name (its record's) and port, handed
    back to the core so it keeps both (records from before carry no port: the
    core gives it as it did)."""
    from ibgp_tunnel.autopeer.render import Assigned

    # Handed over as the record holds it: the core checks it like any field.
    return Assigned(name, record.get("listen_port"))


def verify_signature(registry_dir: Path, entry: spool.SpoolEntry) -> dict[str, str]:
    """The signature again, against the registry (autopeer/signature.py), and the
    signed text bound to this entry: its ASN, its op, for add/update the digest of
    exactly this request, and received before the challenge expired."""
    from ibgp_tunnel.autopeer.challenge import parse_challenge_text
    from ibgp_tunnel.autopeer.signature import signature_kind, verify

    text = entry.challenge.text
    signed = parse_challenge_text(text)
    if signed["asn"] != f"AS{entry.asn}":
        raise AutopeerRefused("challenge: the signed challenge is for another ASN", "challenge")
    if signed["op"] != entry.op:
        raise AutopeerRefused(f"challenge: the signed challenge is not for {entry.op}", "challenge")
    if entry.request is not None and signed["request"] != f"sha256:{request_digest(entry.request)}":
        raise AutopeerRefused("challenge: the signed challenge is for another request", "challenge")
    expires = datetime.fromisoformat(signed["expires"].replace("Z", "+00:00"))
    if datetime.fromisoformat(entry.received) > expires:
        raise AutopeerRefused("challenge: it had expired when it was received", "challenge")
    if signature_kind(entry.signature) != entry.signature_kind:
        raise AutopeerRefused("signature_kind: it does not match the signature", "signature_kind")
    proof = verify(
        registry_dir,
        entry.asn,
        text.encode("utf-8"),
        entry.signature,
        entry.pgp_public_key,
    )
    return {"maintainer": str(proof.maintainer), "auth": f"{proof.auth.kind} {proof.auth.value}"}


def verify_record(registry_dir: Path, record: Mapping[str, Any]) -> None:
    """A peers/ record is the signed entry that made it: that entry is checked as a
    spool entry is (its signature against the registry now), and it must ask for
    exactly the record's request. A record planted in peers/, or one whose signing
    key the maintainer has since removed, is refused."""
    signed = record.get("signed")
    if not isinstance(signed, dict):
        raise AutopeerRefused(
            "signed: the record holds no signed request; the ASN's maintainer sends a new one",
            "signed",
        )
    entry = spool.parse_entry(signed)
    if entry.op == "remove" or entry.asn != record["asn"] or entry.request is None:
        raise AutopeerRefused("signed: the signed entry does not ask for this peering", "signed")
    if request_digest(entry.request) != request_digest(record["request"]):
        raise AutopeerRefused("signed: the signed entry asks for another request", "signed")
    if not has_registry(registry_dir):
        # Not the requester's fault: the unit retries, nothing is set aside.
        raise ApplyError(
            f"the registry checkout {registry_dir} has no data/aut-num: the applied "
            "peerings cannot be verified until ibgp-tunnel-autopeer-registry has fetched it"
        )
    verify_signature(registry_dir, entry)


def has_registry(registry_dir: Path) -> bool:
    return (registry_dir / "data" / "aut-num").is_dir()


def request_digest(request: Mapping[str, Any]) -> str:
    from ibgp_tunnel.autopeer.request import parse_request

    return parse_request(dict(request)).digest()


# --- rendered facts ---------------------------------------------------------------


def _value(rendered: Any, key: str) -> Any:
    return rendered[key] if isinstance(rendered, Mapping) else getattr(rendered, key)


@dataclass(frozen=True)
class Target:
    """What a set of requests renders to, the parts apply uses."""

    requests: tuple[dict[str, Any], ...]
    peers: dict[str, dict[str, Any]]  # name -> the core's facts (asn, interface, listenPort)
    bird: str
    wireguard: dict[str, dict[str, Any]]
    interfaces: tuple[str, ...]
    ports: tuple[int, ...]

    @classmethod
    def empty(cls) -> Target:
        return cls((), {}, "", {}, (), ())


def target_of(
    config: ApplyConfig, requests: Sequence[Mapping[str, Any]], assigned: Sequence[Any] = ()
) -> Target:
    """What `requests` render to; AutopeerRefused (the first problem's field) when
    the core refuses any of them."""
    target, problems = rendered_target(config, requests, assigned)
    if problems:
        raise problems[0][1]
    return target


def rendered_target(
    config: ApplyConfig, requests: Sequence[Mapping[str, Any]], assigned: Sequence[Any] = ()
) -> tuple[Target, list[tuple[int, AutopeerRefused]]]:
    """What the accepted ones of `requests` render to, and the refusals by request index."""
    if not requests:
        return Target.empty(), []
    rendered = render(config.spec_file, requests, assigned)
    problems = [
        (p.index, AutopeerRefused(f"{p.field}: {p.message}", p.field)) for p in rendered.problems
    ]
    # With problems the target is only ever refused or rendered again without them.
    target = Target(
        tuple(dict(r) for r in requests),
        {str(k): dict(v) for k, v in rendered.peers.items()},
        str(rendered.bird),
        {str(k): dict(v) for k, v in rendered.wireguard.items()},
        tuple(str(i) for i in rendered.nft_interfaces),
        tuple(int(p) for p in rendered.nft_ports),
    )
    return target, problems


def names_by_request(target: Target) -> dict[int, str]:
    """Request index -> peer name (the core's `index` of each peer is its request's
    position in what was rendered)."""
    named = {int(peer["index"]): name for name, peer in target.peers.items()}
    if any(not 0 <= i < len(target.requests) for i in named):
        raise ApplyError("the core's answer names a peer for no request")
    return named


def protocols_of(include: str) -> dict[str, str]:
    """interface -> BGP protocol name, read from the rendered include."""
    found: dict[str, str] = {}
    for block in re.finditer(r"protocol bgp (\S+) \{(.*?)\n\}", include, re.S):
        interface = re.search(r'interface "([^"]+)";', block[2])
        if interface:
            found[interface[1]] = block[1]
    return found


# --- applying one change ------------------------------------------------------------


def _transition(config: ApplyConfig, old: Target, new: Target) -> None:
    """Make the host run `new` instead of `old` (see the module's docstring)."""
    made: list[str] = []
    replaced: list[str] = []
    try:
        for interface, spec in new.wireguard.items():
            before = old.wireguard.get(interface)
            if before == spec and wireguard.exists(interface):
                continue
            if before is not None:
                replaced.append(interface)
            wireguard.delete(interface)
            wireguard.create(interface, spec, userspace=config.userspace_wireguard)
            made.append(interface)
        nftsets.sync_all(config.nft_table, new.interfaces, new.ports)
        birdinclude.swap(config.bird, config.state.bird_include, new.bird)
    except (ApplyError, OSError):
        for interface in made:
            with contextlib.suppress(ApplyError):
                wireguard.delete(interface)
        for interface in replaced:
            with contextlib.suppress(ApplyError):
                wireguard.create(
                    interface, old.wireguard[interface], userspace=config.userspace_wireguard
                )
        with contextlib.suppress(ApplyError):
            nftsets.sync_all(config.nft_table, old.interfaces, old.ports)
        raise
    for interface in old.wireguard:
        if interface not in new.wireguard:
            wireguard.delete(interface)


@dataclass
class Applier:
    config: ApplyConfig
    log: Log = _quiet
    current: Target = dataclasses.field(default_factory=Target.empty)
    records: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    public_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    generation: str | None = None  # of the state last loaded (None: never loaded)

    def fresh(self) -> None:
        """Reload when another process changed the state since (call under the lock)."""
        if self.generation != self.config.state.generation():
            self.load()

    def _changed(self) -> None:
        self.generation = self.config.state.bump()

    # --- state ------------------------------------------------------------------

    def load(self) -> None:
        """The applied peers from peers/ and what they render to now. A record is
        trusted for nothing either: its signed entry is verified again against the
        registry as it is now, and the core renders it with the plan as it is now
        (static peers win). One it refuses is set aside in peers-refused/."""
        self.config.state.create()
        self.generation = self.config.state.generation()
        scanned = st.scan_peers(self.config.state)
        for name, problem in scanned.unreadable.items():
            self._set_aside(name, None, problem)
        kept: list[tuple[str, dict[str, Any]]] = []
        for name, record in scanned.records.items():
            try:
                verify_record(self.config.registry_dir, record)
            except AutopeerRefused as error:
                self._set_aside(name, record, str(error), error.field)
                continue
            kept.append((name, record))
        ordered = sorted(kept, key=lambda kv: str(kv[1].get("applied")))
        target, problems = rendered_target(
            self.config, [r["request"] for _, r in ordered], [assigned_of(*kv) for kv in ordered]
        )
        # A peer the core refuses now (the plan changed: a static peer took its ASN,
        # say) is dropped; static peers win.
        for index, error in problems:
            self._set_aside(*ordered[index], f"the core refuses it now: {error}", error.field)
        if problems:
            refused = {index for index, _ in problems}
            ordered = [kv for i, kv in enumerate(ordered) if i not in refused]
            target = target_of(
                self.config,
                [r["request"] for _, r in ordered],
                [assigned_of(*kv) for kv in ordered],
            )
        self.current, self.records = target, dict(ordered)

    def _set_aside(
        self, name: str, record: Mapping[str, Any] | None, why: str, field_: str = ""
    ) -> None:
        moved = st.set_aside_peer(self.config.state, name)
        self._changed()
        self.log(f"{name}: not applied, set aside as {moved}: {why}")
        if record is not None:
            self._status(int(record["asn"]), "refused", why, field_)

    def _status(
        self, asn: int, state: str, message: str = "", field_: str = "", challenge: str = ""
    ) -> None:
        """The ASN's status: the outcome of its last request (`challenge` names the
        request it answers) and its applied peerings."""
        peers = [self._peer_view(n) for n, r in self.records.items() if int(r["asn"]) == asn]
        status: dict[str, Any] = {"state": state, "message": message, "peers": peers}
        if field_:
            status["field"] = field_
        if challenge:
            status["challenge"] = challenge
        status["updated"] = spool.now_iso()
        st.write_status(self.config.state, asn, status)

    def _peer_view(self, name: str, sessions: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What the requester needs to configure their end (no secret)."""
        facts = self.current.peers.get(name, {})
        record = self.records.get(name, {})
        interface = str(facts.get("interface", record.get("interface", "")))
        spec = self.current.wireguard.get(interface, {})
        view: dict[str, Any] = {
            "name": name,
            "interface": interface,
            "listen_port": facts.get("listenPort", spec.get("listenPort")),
            "addresses": list(spec.get("ips", [])),
            "mtu": spec.get("mtu"),
            "public_key": self._public_key(str(spec.get("privateKeyFile", ""))),
            "request": record.get("request"),
        }
        if sessions is not None:
            protocol = protocols_of(self.current.bird).get(interface, "")
            view["protocol"] = protocol
            view["session"] = sessions.get(protocol, "unknown")
        return view

    def _public_key(self, private_key_file: str) -> str | None:
        if not private_key_file:
            return None
        if private_key_file not in self.public_keys:
            try:
                self.public_keys[private_key_file] = wireguard.public_key_of(private_key_file)
            except ApplyError:
                return None
        return self.public_keys[private_key_file]

    # --- one entry ------------------------------------------------------------------

    def handle(self, entry: spool.SpoolEntry) -> Outcome:
        """Check and apply one entry; the outcome is also the ASN's status file."""
        try:
            outcome = self._handle(entry)
        except AutopeerRefused as error:
            outcome = Outcome(entry.asn, "refused", str(error), error.field)
        except (IbgpTunnelError, OSError) as error:
            outcome = Outcome(entry.asn, "failed", f"the host could not apply it: {error}")
        except Exception as error:  # one bad entry must not stop the unit
            outcome = Outcome(entry.asn, "failed", f"the host could not apply it: {error!r}")
        self._status(entry.asn, outcome.state, outcome.message, outcome.field, entry.challenge.id)
        self.log(f"AS{entry.asn} {entry.op}: {outcome.state} {outcome.message}".rstrip())
        return outcome

    def _handle(self, entry: spool.SpoolEntry) -> Outcome:
        entry.check_shape()
        if self._used(entry.challenge.id):
            raise AutopeerRefused("this challenge was used already: ask for a new one", "challenge")
        proof = verify_signature(self.config.registry_dir, entry)
        self._mark_used(entry.challenge.id)
        mine = [n for n, r in self.records.items() if int(r["asn"]) == entry.asn]
        if entry.op in ("update", "remove") and not mine:
            raise AutopeerRefused(f"AS{entry.asn} has no peering here to {entry.op}", "asn")
        others = {n: r for n, r in self.records.items() if n not in mine}
        # add: beside what is there (the core applies max_per_asn); update: instead
        # of this ASN's peering; remove: without it.
        base = self.records if entry.op == "add" else others
        wanted = [r["request"] for r in base.values()]
        given = [assigned_of(n, r) for n, r in base.items()]
        if entry.request is not None:
            wanted.append(dict(entry.request))
            # An update keeps the peering's name and port (its one peering).
            update_of = [assigned_of(n, self.records[n]) for n in mine]
            given.append(update_of[0] if entry.op == "update" and len(mine) == 1 else None)
        new, problems = rendered_target(self.config, wanted, given)
        if problems:
            mine_last = [e for i, e in problems if entry.request and i == len(wanted) - 1]
            if mine_last:
                raise mine_last[0]  # the new request's fault
            raise ApplyError(f"the applied peers no longer render: {problems[0][1]}; restore")
        _transition(self.config, self.current, new)
        now = spool.now_iso()
        named = names_by_request(new)
        names = [named[i] for i in range(len(new.requests))]
        records: dict[str, dict[str, Any]] = {}
        kept = list(base.values())
        for index, (name, request) in enumerate(zip(names, new.requests, strict=True)):
            old = dict(kept[index]) if index < len(kept) else None
            records[name] = old or {
                "asn": int(request["asn"]),
                "request": request,
                "proof": proof,
                "challenge": entry.challenge.id,
                "applied": now,
                # What load verifies again (verify_record).
                "signed": entry.model_dump(mode="json"),
            }
            records[name]["interface"] = new.peers[name].get("interface")
            records[name]["listen_port"] = new.peers[name].get("listenPort")
        for name in self.records:
            if name not in records:
                st.delete_peer(self.config.state, name)
        for name, record in records.items():
            st.write_peer(self.config.state, name, record)
        self.current, self.records = new, records
        self._changed()
        state = "removed" if entry.op == "remove" else "applied"
        return Outcome(entry.asn, state, "", "", [n for n in names if n not in others])

    def _used_path(self) -> Path:
        return self.config.state.root / USED_FILE

    def _used_ids(self) -> dict[str, float]:
        try:
            data = json.loads(self._used_path().read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): float(v) for k, v in data.items()}

    def _used(self, challenge_id: str) -> bool:
        return challenge_id in self._used_ids()

    def _mark_used(self, challenge_id: str) -> None:
        now = time.time()
        used = {k: v for k, v in self._used_ids().items() if now - v < USED_KEEP_SECONDS}
        used[challenge_id] = now
        write_atomic(self._used_path(), json.dumps(used) + "\n", 0o600)

    # --- the spool ---------------------------------------------------------------------

    def drain(self) -> list[Outcome]:
        """Every entry in the spool, oldest first; each is gone afterwards (unreadable
        ones are kept aside in spool-failed/ for the operator)."""
        outcomes: list[Outcome] = []
        entries = spool.read_spool(self.config.state.spool)
        if not entries:
            return outcomes
        with self.config.state.locked():
            self.fresh()
            outcomes = self._drain(entries)
        return outcomes

    def _drain(self, entries: list[spool.Spooled]) -> list[Outcome]:
        outcomes = []
        for spooled in entries:
            if spooled.entry is None:
                self.log(f"{spooled.path.name}: not an entry ({spooled.problem}); set aside")
                with contextlib.suppress(OSError):
                    spooled.path.replace(self.config.state.failed / spooled.path.name)
                continue
            outcomes.append(self.handle(spooled.entry))
            spooled.path.unlink(missing_ok=True)
        return outcomes

    # --- restore and remove -------------------------------------------------------------

    def restore(self) -> Target:
        """After a boot (or a restart): every applied peer's interface and set elements
        back, the include as rendered now; BIRD loads it when it runs."""
        with self.config.state.locked():
            return self._restore()

    def _restore(self) -> Target:
        self.load()
        for interface, spec in self.current.wireguard.items():
            if not wireguard.exists(interface):
                wireguard.create(interface, spec, userspace=self.config.userspace_wireguard)
        nftsets.sync_all(self.config.nft_table, self.current.interfaces, self.current.ports)
        include = self.config.state.bird_include
        if include.read_text(encoding="utf-8") != self.current.bird:
            if self.config.bird.socket.exists():
                birdinclude.swap(self.config.bird, include, self.current.bird)
            else:
                birdinclude.check(self.config.bird, include, self.current.bird)
                write_atomic(include, self.current.bird, 0o644)
        for name in self.records:
            self._status(int(self.records[name]["asn"]), "applied")
        return self.current

    def remove(self, asn: int) -> list[str]:
        """The operator's removal of every peering of `asn` (no signature needed)."""
        mine = [n for n, r in self.records.items() if int(r["asn"]) == asn]
        if not mine:
            raise AutopeerRefused(f"AS{asn} has no autopeering here", "asn")
        keep = {n: r for n, r in self.records.items() if n not in mine}
        new = target_of(
            self.config,
            [r["request"] for r in keep.values()],
            [assigned_of(n, r) for n, r in keep.items()],
        )
        _transition(self.config, self.current, new)
        for name in mine:
            st.delete_peer(self.config.state, name)
        self.current, self.records = new, keep
        self._changed()
        self._status(asn, "removed", "removed by the operator")
        return mine

    # --- status ------------------------------------------------------------------------

    def sessions(self) -> dict[str, str]:
        """BGP protocol name -> state (`Established`, `Active`, ...) from BIRD."""
        done = run(
            [self.config.bird.birdc, "-s", str(self.config.bird.socket), "show", "protocols"],
            check=False,
        )
        found = {}
        for line in done.stdout.splitlines():
            words = line.split()
            if len(words) >= 4 and words[1] == "BGP":
                found[words[0]] = words[-1] if words[3] == "up" else words[3]
        return found

    def write_statuses(self) -> None:
        sessions = self.sessions()
        by_asn: dict[int, list[dict[str, Any]]] = {}
        for name, record in self.records.items():
            by_asn.setdefault(int(record["asn"]), []).append(self._peer_view(name, sessions))
        for asn, peers in by_asn.items():
            old = st.read_status(self.config.state, asn) or {}
            if old.get("peers") == peers:
                continue
            # The last request's outcome stays (a refused update keeps saying so);
            # only the peerings and their sessions are new.
            status = {"state": "applied", "message": ""} | old | {"peers": peers}
            st.write_status(self.config.state, asn, status | {"updated": spool.now_iso()})

    def view(self) -> list[dict[str, Any]]:
        """Every applied peer as the operator sees it (list/show)."""
        try:
            sessions = self.sessions()
        except IbgpTunnelError:
            sessions = {}
        views = []
        for name, record in sorted(self.records.items()):
            view = self._peer_view(name, sessions)
            view |= {
                "asn": int(record["asn"]),
                "proof": record.get("proof"),
                "applied": record.get("applied"),
            }
            views.append(view)
        return views


def watch(applier: Applier, *, stop: Callable[[], bool] = lambda: False) -> None:
    """The apply unit's loop: restore, then the spool every SPOOL_POLL seconds and the
    session states every STATUS_EVERY seconds."""
    while not stop():
        try:
            applier.restore()
            break
        except (IbgpTunnelError, OSError) as error:
            # BIRD not up yet, say: nothing is applied until the state is whole.
            applier.log(f"restore failed, retrying: {error}")
            time.sleep(STATUS_EVERY)
    last_status = 0.0
    while not stop():
        # The state may change under the loop (the operator, a registry refresh):
        # what cannot be done now is said and tried again, never the unit's end.
        try:
            applier.drain()
            if time.monotonic() - last_status >= STATUS_EVERY:
                with applier.config.state.locked():
                    applier.fresh()
                    applier.write_statuses()
                last_status = time.monotonic()
        except (IbgpTunnelError, OSError) as error:
            applier.log(f"retrying: {error}")
            last_status = time.monotonic()
        time.sleep(SPOOL_POLL)
