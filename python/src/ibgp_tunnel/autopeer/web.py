"""What the web service does with a request, without HTTP: issue a challenge for
an op on an ASN, take the signed answer (signature checked against the
registry, challenge consumed once) into the spool, and say what the status
files say. Unprivileged: it never touches BIRD, WireGuard or nft; the apply
unit checks every spool entry again before it does.

Every refusal is a `Refusal`: an HTTP status, a message for the requester and
the field it is about; no input is echoed beyond what names the field."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer import precheck, spool
from ibgp_tunnel.autopeer.challenge import ChallengeStore
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.ratelimit import RateLimit
from ibgp_tunnel.autopeer.registry import aut_num
from ibgp_tunnel.autopeer.render import render_autopeers
from ibgp_tunnel.autopeer.request import PeeringRequest, parse_request
from ibgp_tunnel.autopeer.signature import NAMESPACE, signature_kind, verify
from ibgp_tunnel.autopeer.state import StateDir, read_status
from ibgp_tunnel.paths import defaults

OPS = ("add", "update", "remove")
# A remove carries no request; its challenge is bound to this digest (sha256 of
# the canonical JSON of the absent request, `null`), which apply checks likewise.
REMOVE_DIGEST = hashlib.sha256(b"null").hexdigest()
# Caps on what a stranger may send (the spool model's own limits).
MAX_SIGNATURE = 16 * 1024
MAX_PGP_KEY = 32 * 1024
ASN_MAX = 4294967295
_CHALLENGE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ARMOR = re.compile(r"[\x20-\x7e\n\r\t]*")


class Refusal(Exception):
    """A request refused: `status` (4xx), a message for the requester, the field."""

    def __init__(self, status: int, message: str, field: str = "", retry_after: float = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after = retry_after


@dataclass(frozen=True)
class WebConfig:
    """The service's settings (services.ibgpTunnel.autopeer.* on a host)."""

    state_dir: Path
    host_name: str = "localhost"
    challenge_ttl: int = 300
    rate_limit: int = 10  # requests per minute per client address
    asn_rate_limit: int = 10  # requests per minute naming one ASN
    total_rate_limit: int = 120  # requests per minute from everyone together
    max_peers: int = 32
    max_per_asn: int = 1
    # The registry checkout when it is not the state directory's (the lab's fixture).
    registry_dir: Path | None = None
    # The host's spec (JSON): when given, a request is also rendered by the core
    # before a challenge is issued, so its rules (collisions with static peers,
    # our own addresses, link-local) refuse it at once instead of in the status.
    spec_file: Path | None = None

    @property
    def spool(self) -> Path:
        return self._dir("spool_dir")

    @property
    def status(self) -> Path:
        return self._dir("status_dir")

    @property
    def challenges(self) -> Path:
        return self._dir("challenges_dir")

    @property
    def registry(self) -> Path:
        return self.registry_dir or self._dir("registry_checkout")

    def _dir(self, key: str) -> Path:
        """The layout of base/defaults.toml [autopeer] (the one place the core and
        the apply unit read it too), under this state directory."""
        layout = _layout()
        return self.state_dir / Path(layout[key]).relative_to(layout["state_dir"])


@cache
def _layout() -> dict[str, str]:
    return dict(defaults()["autopeer"])


@dataclass(frozen=True)
class Pending:
    """A challenge issued and not yet answered: what it is for."""

    asn: int
    op: str
    request: dict[str, Any] | None
    digest: str
    text: str
    expires: float


@dataclass
class Web:
    config: WebConfig
    store: ChallengeStore = field(init=False)
    by_client: RateLimit = field(init=False)
    by_asn: RateLimit = field(init=False)
    total: RateLimit = field(init=False)
    reads: RateLimit = field(init=False)
    _pending: dict[str, Pending] = field(default_factory=dict)
    # ASN -> when its last entry was spooled (shown as pending until a newer status).
    _spooled: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.store = ChallengeStore(self.config.challenges, host=self.config.host_name)
        self.by_client = RateLimit(self.config.rate_limit)
        self.by_asn = RateLimit(self.config.asn_rate_limit)
        self.total = RateLimit(self.config.total_rate_limit)
        # Reading a status is cheap and the page polls it: a looser limit.
        self.reads = RateLimit(6 * self.config.rate_limit)

    # --- limits -----------------------------------------------------------
    def limit(self, bucket: RateLimit, key: str, now: float, what: str) -> None:
        wait = bucket.allow(key, now)
        if wait:
            raise Refusal(
                429, f"too many requests {what}: try again in {int(wait) + 1} s", "", wait
            )

    def admit(self, client: str, now: float) -> None:
        """The per-client and the overall limit, before any work is done."""
        self.limit(self.by_client, client, now, "from your address")
        self.limit(self.total, "*", now, "to this service")

    def admit_read(self, client: str, now: float) -> None:
        self.limit(self.reads, client, now, "from your address")

    # --- POST /api/challenge ---------------------------------------------
    def challenge(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        _only(body, ("op", "asn", "request"))
        op = body.get("op")
        if op not in OPS:
            raise Refusal(422, "op: give one of add, update, remove", "op")
        asn = _asn(body.get("asn"), "asn")
        self.limit(self.by_asn, str(asn), now, "for this ASN")
        request = body.get("request")
        if op == "remove":
            if request is not None:
                raise Refusal(422, "request: a remove carries no request; send null", "request")
            checked, digest = None, REMOVE_DIGEST
        else:
            checked = _refused_as(422, precheck.check_request, request, asn)
            parsed = _refused_as(422, parse_request, checked)
            digest = parsed.digest()
            if self.config.spec_file is not None:
                self._check_core(parsed)
        self._check_registry(asn)
        self._check_limits(op, asn)
        issued = _refused_as(422, self.store.issue, asn, op, digest, now, self.config.challenge_ttl)
        expires = _epoch(issued.expires)
        with self._lock:
            self._forget_expired(now)
            self._pending[issued.id] = Pending(asn, op, checked, digest, issued.text, expires)
        return {
            "id": issued.id,
            "text": issued.text,
            "expires": _iso(expires),
            "sign_command": sign_command(),
            "sign_command_pgp": "gpg --armor --detach-sign challenge.txt",
        }

    def _check_core(self, request: PeeringRequest) -> None:
        """The core's answer for this request alone (the limits are the web's own
        check, which counts what is applied and pending)."""
        try:
            render_autopeers(self.config.spec_file, [request])  # type: ignore[arg-type]
        except AutopeerRefused as error:
            field = (
                f"request.{error.field}" if error.field in precheck.REQUEST_FIELDS else "request"
            )
            raise Refusal(422, f"request.{error}", field) from None

    def _check_registry(self, asn: int) -> None:
        try:
            aut_num(self.config.registry, asn)
        except AutopeerRefused as error:
            raise Refusal(422, str(error), "asn") from None

    def _check_limits(self, op: str, asn: int) -> None:
        peers = self.peer_counts()
        mine = peers.get(asn, 0)
        if op == "add" and mine >= self.config.max_per_asn:
            raise Refusal(
                409,
                f"asn: AS{asn} has {mine} peering(s) here, the most one ASN may have; "
                "use op update or remove",
                "asn",
            )
        if op == "add" and sum(peers.values()) >= self.config.max_peers:
            raise Refusal(409, "this host takes no more peerings (its limit is reached)", "")
        if op in ("update", "remove") and mine == 0:
            raise Refusal(404, f"asn: AS{asn} has no peering here to {op}", "asn")

    def peer_counts(self) -> dict[int, int]:
        """Peerings per ASN: applied ones from the status files (`peers`), plus adds spooled
        and not yet answered by a newer status (so a burst cannot pass the limits)."""
        counts: dict[int, int] = {}
        try:
            names = [p for p in os.listdir(self.config.status) if p.endswith(".json")]
        except FileNotFoundError:
            names = []
        for name in names:
            if not name[:-5].isdigit():
                continue
            status = self.read_status(int(name[:-5]))
            # The apply unit lists the ASN's applied peers whatever its last state.
            peers = status.get("peers") if status else None
            if isinstance(peers, list) and peers:
                counts[int(name[:-5])] = len(peers)
        with self._lock:
            for asn, pending in self._pending_adds().items():
                counts[asn] = max(counts.get(asn, 0), pending)
        return counts

    def _pending_adds(self) -> dict[int, int]:
        return {asn: 1 for asn, when in self._spooled.items() if self._newer_than_status(asn, when)}

    def _newer_than_status(self, asn: int, when: float) -> bool:
        try:
            return os.stat(self.config.status / f"{asn}.json").st_mtime < when
        except FileNotFoundError:
            return True

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, p in self._pending.items() if p.expires <= now]:
            del self._pending[key]

    # --- POST /api/peerings ----------------------------------------------
    def submit(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        _only(body, ("challenge_id", "signature", "signature_kind", "pgp_public_key"))
        challenge_id = body.get("challenge_id")
        if not isinstance(challenge_id, str) or not _CHALLENGE_ID.fullmatch(challenge_id):
            raise Refusal(422, "challenge_id: give the id the challenge came with", "challenge_id")
        kind = body.get("signature_kind")
        if kind not in ("ssh", "pgp"):
            raise Refusal(422, "signature_kind: give ssh or pgp", "signature_kind")
        signature = _text(body.get("signature"), "signature", MAX_SIGNATURE)
        pgp_key = body.get("pgp_public_key")
        if kind == "pgp":
            pgp_key = _text(pgp_key, "pgp_public_key", MAX_PGP_KEY)
        elif pgp_key is not None:
            raise Refusal(422, "pgp_public_key: only with signature_kind pgp", "pgp_public_key")
        # The armor says what the signature is; the entry must say the same.
        if _refused_as(422, signature_kind, signature) != kind:
            raise Refusal(
                422,
                f"signature_kind: the signature is not {kind}; say which it is",
                "signature_kind",
            )
        with self._lock:
            pending = self._pending.get(challenge_id)
        if pending is None or pending.expires <= now:
            raise Refusal(
                410, "challenge_id: unknown or expired; request a new challenge", "challenge_id"
            )
        self.limit(self.by_asn, str(pending.asn), now, "for this ASN")
        text = pending.text
        _refused_as(
            403,
            verify,
            self.config.registry,
            pending.asn,
            text.encode(),
            signature,
            pgp_key,
            field="signature",
        )
        # Single use, atomically: of two answers to one challenge only one gets here.
        _refused_as(
            409,
            self.store.consume,
            challenge_id,
            pending.asn,
            pending.op,
            pending.digest,
            now,
            field="challenge_id",
        )
        entry = {
            "version": spool.SPOOL_VERSION,
            "op": pending.op,
            "asn": pending.asn,
            "request": pending.request,
            "challenge": {"id": challenge_id, "text": text},
            "signature": signature,
            "signature_kind": kind,
            "pgp_public_key": pgp_key,
            "received": _iso(now),
        }
        _refused_as(422, spool.write_request, self.config.spool, entry)
        with self._lock:
            self._spooled[pending.asn] = now
        return {"asn": pending.asn, "op": pending.op, "status": "pending"}

    # --- GET /api/peerings/<asn> -----------------------------------------
    def status(self, asn_text: str) -> dict[str, Any]:
        if not asn_text.isascii() or not asn_text.isdigit() or len(asn_text) > 10:
            raise Refusal(404, "give an AS number: /api/peerings/<asn>", "asn")
        asn = _asn(int(asn_text), "asn")
        status = self.read_status(asn)
        with self._lock:
            spooled = self._spooled.get(asn)
        if spooled is not None and self._newer_than_status(asn, spooled):
            return {
                "asn": asn,
                "state": "pending",
                "message": "accepted; the host applies it within seconds",
                "peers": (status or {}).get("peers", []),
            }
        if status is None:
            raise Refusal(404, f"asn: no peering request of AS{asn} is known here", "asn")
        return status

    def read_status(self, asn: int) -> dict[str, Any] | None:
        return read_status(StateDir(self.config.state_dir), asn)


def sign_command() -> str:
    return f"ssh-keygen -Y sign -n {NAMESPACE} -f ~/.ssh/id_ed25519 challenge.txt"


def _only(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in body:
        if key not in keys:
            shown = precheck.shown_name(key)
            raise Refusal(
                422, f"{shown}: not a field here; the fields are {', '.join(keys)}", shown
            )


def _asn(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= ASN_MAX:
        raise Refusal(422, f"{name}: give an AS number (a whole number, 1 to {ASN_MAX})", name)
    return value


def _text(value: object, name: str, cap: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refusal(422, f"{name}: required (ASCII armored text)", name)
    if len(value) > cap:
        raise Refusal(413, f"{name}: longer than {cap} characters", name)
    if not _ARMOR.fullmatch(value):
        raise Refusal(422, f"{name}: give the armored text only (printable ASCII)", name)
    return value


def _refused_as(status: int, call: Any, *args: Any, field: str | None = None) -> Any:
    try:
        return call(*args)
    except AutopeerRefused as error:
        raise Refusal(status, str(error), error.field or field or "") from None


def _epoch(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)  # type: ignore[arg-type]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
