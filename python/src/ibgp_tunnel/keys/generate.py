"""WireGuard keys and PSKs for a plan, kept in sops files; public keys in the plan.

What the CLI calls (everything else here is a small helper they are built from):

    generate_keys(plan_path: Path, secrets_dir: Path, sops_config: Path,
                  rotate: Sequence[str] = (), secret_names: SecretNames | None = None,
                  lock_timeout: float = 30.0, on_wait: Callable[[str], None] | None = None)
        -> KeysReport
        Per host a private key in ``secrets/<host>.yaml`` at ``wg_ibgp/private_key``,
        per link one PSK at ``wg_ibgp/psk/<link>`` in *both* ends' files, public keys
        into ``hosts.<name>.public_key`` of the plan (every other byte kept: ``plantext``).
        A host with DN42 tunnels (``dn42_peers.<peer>.public_key``) also gets its DN42 key at
        ``wg_dn42/private_key`` and, per peer with ``preshared_key = true``, a PSK at
        ``wg_dn42/psk/<peer>`` (names from modules/lib/dn42-defaults.toml), and our DN42
        public key goes into ``hosts.<name>.dn42_public_key``. Existing keys are kept;
        ``rotate`` names hosts/links (``NAME``, ``host:NAME``, ``link:NAME``) whose
        key/PSK is replaced on purpose, ``dn42:HOST`` our DN42 key on HOST and
        ``dn42:HOST:PEER`` the PSK with PEER (the report's ``dn42_notices`` name the
        DN42 peers to be given the new public key / PSK). Nothing is written for a plan
        `ibgp-tunnel check` rejects (host and link names become file names and
        sops keys: the core's name rule decides), and no secrets file outside the
        secrets directory is read or written, whatever symlinks say. Runs under
        the project's lock (``lock``), first finishing or rolling back a killed
        run (``transaction``; a journal `keys` did not write is refused and kept).
        Raises only errors.IbgpTunnelError subclasses (print str(error), exit with
        error.exit_code): KeysError (exit 2: bad plan, bad --rotate, inconsistent
        secrets, a key already stored in plaintext), lock.LockBusyError and
        lock.LockFileError (exit 2), journal.UntrustedJournalError (exit 2),
        sops.SopsNotFoundError, sops.SopsConfigError (exit 2: no sops, unusable
        .sops.yaml, a rule that would leave a value in plaintext), sops.SopsKeyError
        (exit 2: no key opens a file), sops.SopsError (exit 1: sops failed),
        transaction.DiskFullError (exit 2), atomic.AtomicWriteError (exit 1: a
        file could not be written). In every case no file is left half-written and
        the files of one run change together.
    KeysReport.to_dict() -> dict[str, Any]          # for --json
    project_layout(plan_path: Path) -> tuple[Path, Path]   # default (secrets_dir, sops_config)
    generate_private_key() -> str                   # like `wg genkey`
    public_key_of(private_b64: str) -> str          # like `wg pubkey`
    generate_psk() -> str                           # like `wg genpsk`
    age_recipient.ssh_to_age(ssh_pubkey_text: str) -> str   # for `age-recipient`

Nothing here writes plaintext: secrets go to sops through a pipe and only the
ciphertext is written, once every value was seen to be ciphertext (``sops``,
``ciphertext``); a run's files are replaced all or none (``transaction``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_bytes
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ibgp_tunnel import paths, planfile
from ibgp_tunnel.check import check_data
from ibgp_tunnel.errors import InputError
from ibgp_tunnel.findings import errors
from ibgp_tunnel.keys import sops, transaction
from ibgp_tunnel.keys.ciphertext import stored_in_plaintext
from ibgp_tunnel.keys.journal import inside
from ibgp_tunnel.keys.lock import project_lock
from ibgp_tunnel.keys.plantext import PlanTextError, with_public_keys

KEY_BYTES = 32
DN42_PLAN_KEY = "dn42_public_key"  # hosts.<h>.dn42_public_key: our DN42 WireGuard key
DEFAULT_LOCK_TIMEOUT = 30.0  # seconds a second run waits for the first


class KeysError(InputError):
    """Bad input for key generation (exit 2): the message names the problem and the fix."""


# --- WireGuard key material ------------------------------------------------


def _clamp(raw: bytes) -> bytes:
    # The X25519 clamping `wg genkey` applies, so our files are byte-for-byte the
    # same format (OpenSSL clamps too, but we do not rely on a backend detail).
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def generate_private_key() -> str:
    """A new WireGuard private key, base64, as `wg genkey` prints it (without newline)."""
    raw = X25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(_clamp(raw)).decode()


def generate_psk() -> str:
    """A new WireGuard preshared key: 32 random bytes, base64 (`wg genpsk`)."""
    # Plain CSPRNG bytes: unlike a private key, a PSK is not clamped.
    return base64.b64encode(token_bytes(KEY_BYTES)).decode()


def decode_key(value: object, what: str) -> bytes:
    """The 32 bytes of a base64 WireGuard key, or KeysError saying what is wrong."""
    if not isinstance(value, str):
        raise KeysError(f"{what} must be a base64 string, not {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise KeysError(f"{what} is not valid base64: {exc}") from exc
    if len(raw) != KEY_BYTES:
        raise KeysError(f"{what} decodes to {len(raw)} bytes, a WireGuard key has 32")
    return raw


def public_key_of(private_b64: str) -> str:
    """The base64 public key of a base64 private key, as `wg pubkey` prints it."""
    raw = decode_key(private_b64, "the private key")
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return base64.b64encode(public).decode()


# --- secret names (sops-nix `key`: nested YAML keys joined by "/") ---------


@dataclass(frozen=True)
class SecretNames:
    """The sops-nix secret names, from modules/lib/base/defaults.toml."""

    private_key: str
    psk_prefix: str

    def psk(self, link: str) -> str:
        return f"{self.psk_prefix}{link}"

    @classmethod
    def from_defaults(cls, defaults: Mapping[str, Any]) -> SecretNames:
        return cls(defaults["secret_private_key"], defaults["secret_psk_prefix"])


def default_secret_names() -> SecretNames:
    """The names from modules/lib/base/defaults.toml (one fact, one place)."""
    try:
        return SecretNames.from_defaults(paths.defaults())
    except KeyError as exc:
        raise KeysError(f"the shared defaults.toml lacks {exc}; it is incomplete") from exc


def get_secret(data: Mapping[str, Any], name: str) -> Any:
    """The value at a sops-nix secret name (``a/b/c`` → data["a"]["b"]["c"]), or None."""
    node: Any = data
    for part in name.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def set_secret(data: dict[str, Any], name: str, value: str, where: str) -> None:
    """Set a nested value in place, creating the intermediate mappings."""
    *parents, leaf = name.split("/")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise KeysError(
                f"{where}: '{part}' on the way to {name} is a {type(child).__name__}, "
                "not a mapping; fix the file with `sops` first"
            )
        node = child
    node[leaf] = value


# --- what the plan says ----------------------------------------------------


@dataclass(frozen=True)
class KeyPlan:
    """The part of a plan keys need: host names and each link's two ends."""

    hosts: tuple[str, ...]
    links: Mapping[str, tuple[str, str]]  # link -> (reflector, client)
    # host -> its DN42 peers with a tunnel: (peer, whether it uses a PSK)
    dn42: Mapping[str, tuple[tuple[str, bool], ...]] = field(default_factory=dict)


def key_plan_from_doc(doc: Mapping[str, Any], where: str) -> KeyPlan:
    """Extract hosts and links; checks only what key generation relies on."""
    hosts = doc.get("hosts")
    if not isinstance(hosts, Mapping) or not hosts:
        raise KeysError(f"{where}: no [hosts.<name>] tables; run `ibgp-tunnel check {where}`")
    for name, host in hosts.items():
        if not isinstance(host, Mapping):
            raise KeysError(f"{where}: hosts.{name} must be a table")
    raw_links = doc.get("links", {})
    if not isinstance(raw_links, Mapping):
        raise KeysError(f"{where}: links must be a table of [links.<name>] tables")
    links: dict[str, tuple[str, str]] = {}
    for name, link in raw_links.items():
        if not isinstance(link, Mapping):
            raise KeysError(f"{where}: links.{name} must be a table")
        ends = (link.get("reflector"), link.get("client"))
        for role, end in zip(("reflector", "client"), ends, strict=True):
            if end not in hosts:
                raise KeysError(
                    f"{where}: links.{name}.{role} = {end!r} is not a host of the plan; "
                    f"use one of {', '.join(sorted(hosts))}"
                )
        if ends[0] == ends[1]:
            raise KeysError(f"{where}: links.{name} joins {ends[0]} to itself")
        links[str(name)] = (str(ends[0]), str(ends[1]))
    dn42: dict[str, tuple[tuple[str, bool], ...]] = {}
    for name, host in hosts.items():
        peers = host.get("dn42_peers", {})
        if not isinstance(peers, Mapping):
            raise KeysError(f"{where}: hosts.{name}.dn42_peers must be a table")
        tunnels = tuple(
            (str(peer), peer_table.get("preshared_key") is True)
            for peer, peer_table in peers.items()
            if isinstance(peer_table, Mapping) and "public_key" in peer_table
        )
        if tunnels:
            dn42[str(name)] = tunnels
    return KeyPlan(tuple(str(h) for h in hosts), links, dn42)


@dataclass(frozen=True)
class Dn42SecretNames:
    """The sops-nix names of a host's DN42 WireGuard key and PSKs (dn42-defaults.toml)."""

    private_key: str = "wg_dn42/private_key"
    psk_prefix: str = "wg_dn42/psk/"

    def psk(self, peer: str) -> str:
        return f"{self.psk_prefix}{peer}"


def dn42_secret_names() -> Dn42SecretNames:
    try:
        data = paths.dn42_defaults()
        return Dn42SecretNames(data["secret_private_key"], data["secret_psk_prefix"])
    except (InputError, KeyError) as exc:
        raise KeysError(f"the core's dn42-defaults.toml is unusable: {exc}") from exc


def _dn42_names(host: str, plan: KeyPlan, names: Dn42SecretNames) -> list[str]:
    tunnels = plan.dn42.get(host, ())
    if not tunnels:
        return []
    return [names.private_key] + [names.psk(peer) for peer, psk in tunnels if psk]


@dataclass(frozen=True)
class Rotation:
    hosts: frozenset[str] = frozenset()
    links: frozenset[str] = frozenset()
    dn42_keys: frozenset[str] = frozenset()  # hosts whose DN42 key is replaced
    dn42_psks: frozenset[tuple[str, str]] = frozenset()  # (host, peer) PSKs replaced


def _resolve_dn42(request: str, name: str, plan: KeyPlan) -> tuple[str, str | None]:
    """``dn42:HOST`` (our DN42 key there) or ``dn42:HOST:PEER`` (the PSK with PEER)."""
    host, sep, peer = name.partition(":")
    tunnels = dict(plan.dn42.get(host, ()))
    if not tunnels:
        with_tunnels = ", ".join(sorted(plan.dn42)) or "(none)"
        raise KeysError(
            f"--rotate {request!r}: {host!r} is no host with DN42 tunnels "
            f"(dn42_peers with a public_key); those are: {with_tunnels}"
        )
    if not sep:
        return host, None
    if peer not in tunnels:
        raise KeysError(
            f"--rotate {request!r}: {peer!r} is no DN42 tunnel peer of {host}; "
            f"those are: {', '.join(sorted(tunnels))}"
        )
    if not tunnels[peer]:
        raise KeysError(
            f"--rotate {request}: {host}'s tunnel to {peer} uses no PSK (preshared_key is "
            f"not true in hosts.{host}.dn42_peers.{peer}); to replace our DN42 key write "
            f"--rotate dn42:{host}"
        )
    return host, peer


def resolve_rotation(requests: Sequence[str], plan: KeyPlan) -> Rotation:
    """Turn ``--rotate`` values into host and link sets.

    A bare name must be unambiguous: in the example plan the link to ``pve`` is
    itself called ``pve``, so there the user writes ``host:pve`` or ``link:pve``.
    """
    hosts: set[str] = set()
    links: set[str] = set()
    dn42_keys: set[str] = set()
    dn42_psks: set[tuple[str, str]] = set()
    for request in requests:
        kind, sep, name = request.partition(":")
        if not sep:
            kind, name = "", request
        if kind == "dn42":
            host, peer = _resolve_dn42(request, name, plan)
            if peer is None:
                dn42_keys.add(host)
            else:
                dn42_psks.add((host, peer))
            continue
        is_host, is_link = name in plan.hosts, name in plan.links
        if kind == "host" and is_host:
            hosts.add(name)
        elif kind == "link" and is_link:
            links.add(name)
        elif kind == "" and is_host and is_link:
            raise KeysError(
                f"--rotate {name}: both a host and a link are called {name!r}; "
                f"write host:{name} or link:{name}"
            )
        elif kind == "" and (is_host or is_link):
            (hosts if is_host else links).add(name)
        elif kind not in ("", "host", "link"):
            raise KeysError(
                f"--rotate {request!r}: the prefix must be host:, link: or dn42: "
                "(dn42:HOST for our DN42 key, dn42:HOST:PEER for a DN42 PSK)"
            )
        else:
            raise KeysError(
                f"--rotate {request}: no such {kind or 'host or link'}; hosts: "
                f"{', '.join(plan.hosts)}; links: {', '.join(plan.links) or '(none)'}"
            )
    return Rotation(frozenset(hosts), frozenset(links), frozenset(dn42_keys), frozenset(dn42_psks))


# --- deciding what to add, keep and rotate (pure but for the RNG) -----------

Action = Literal["added", "kept", "rotated", "copied"]


@dataclass(frozen=True)
class SecretAction:
    host: str
    secret: str  # the sops-nix name, e.g. wg_ibgp/psk/pve
    action: Action  # copied = PSK taken from the link's other end


def plan_secrets(
    plan: KeyPlan,
    existing: Mapping[str, Mapping[str, Any]],
    rotation: Rotation,
    names: SecretNames,
    new_private_key: Callable[[], str] = generate_private_key,
    new_psk: Callable[[], str] = generate_psk,
) -> tuple[dict[str, dict[str, Any]], list[SecretAction]]:
    """The new decrypted contents of every host's secrets file, and what changed.

    Other entries of an existing file are carried over untouched.
    """
    secrets = {host: copy.deepcopy(dict(existing.get(host, {}))) for host in plan.hosts}
    actions: list[SecretAction] = []

    for host in plan.hosts:
        where = f"secrets/{host}.yaml"
        current = get_secret(secrets[host], names.private_key)
        if host in rotation.hosts or current is None:
            set_secret(secrets[host], names.private_key, new_private_key(), where)
            action: Action = "added" if current is None else "rotated"
        else:
            _check_stored(current, f"{where} {names.private_key}", f"host:{host}")
            action = "kept"
        actions.append(SecretAction(host, names.private_key, action))

    for link, ends in plan.links.items():
        name = names.psk(link)
        stored = {host: get_secret(secrets[host], name) for host in ends}
        present = {host: value for host, value in stored.items() if value is not None}
        for host, value in present.items():
            _check_stored(value, f"secrets/{host}.yaml {name}", f"link:{link}")
        if link in rotation.links or not present:
            value = new_psk()
            for host in ends:
                set_secret(secrets[host], name, value, f"secrets/{host}.yaml")
                action = "rotated" if stored[host] is not None else "added"
                actions.append(SecretAction(host, name, action))
            continue
        if len(set(present.values())) > 1:
            raise KeysError(
                f"the two ends of link {link} hold different PSKs ({name} in "
                f"secrets/{ends[0]}.yaml and secrets/{ends[1]}.yaml), so the tunnel cannot "
                f"come up; replace both with --rotate link:{link}"
            )
        value = next(iter(present.values()))
        for host in ends:
            if stored[host] is None:
                set_secret(secrets[host], name, value, f"secrets/{host}.yaml")
                actions.append(SecretAction(host, name, "copied"))
            else:
                actions.append(SecretAction(host, name, "kept"))

    # DN42 tunnels: our key and each PSK live on this host only (the peer's
    # operator gets the PSK out of band). Kept once made; a host rotation
    # replaces the iBGP key only, as DN42 peers must be told of a new key: only
    # dn42:HOST / dn42:HOST:PEER replace them.
    dn42_names = dn42_secret_names() if plan.dn42 else Dn42SecretNames()
    for host in plan.hosts:
        where = f"secrets/{host}.yaml"
        for name in _dn42_names(host, plan, dn42_names):
            current = get_secret(secrets[host], name)
            target = _dn42_target(host, name, dn42_names)
            if current is None or _dn42_rotated(target, rotation):
                make = new_private_key if name == dn42_names.private_key else new_psk
                set_secret(secrets[host], name, make(), where)
                actions.append(SecretAction(host, name, "added" if current is None else "rotated"))
            else:
                _check_stored(current, f"{where} {name}", target)
                actions.append(SecretAction(host, name, "kept"))
    return secrets, actions


def _dn42_target(host: str, name: str, names: Dn42SecretNames) -> str:
    """The --rotate value that replaces a DN42 secret: dn42:HOST or dn42:HOST:PEER."""
    if name == names.private_key:
        return f"dn42:{host}"
    return f"dn42:{host}:{name.removeprefix(names.psk_prefix)}"


def _dn42_rotated(target: str, rotation: Rotation) -> bool:
    _, host, *peer = target.split(":")
    if peer:
        return (host, peer[0]) in rotation.dn42_psks
    return host in rotation.dn42_keys


def _check_stored(value: object, what: str, rotate_hint: str) -> None:
    try:
        decode_key(value, what)
    except KeysError as exc:
        raise KeysError(f"{exc}; replace it with --rotate {rotate_hint}") from exc


# --- the operation ----------------------------------------------------------


@dataclass(frozen=True)
class Dn42Notice:
    """A DN42 peer whose operator must be given a new value of ours (no secret in it)."""

    host: str
    peer: str
    public_key: str | None  # our new DN42 public key, when it changed
    psk: bool  # the PSK changed: hand it over out of band, never printed here
    psk_secret: str | None  # its sops key in secrets/<host>.yaml

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "peer": self.peer,
            "public_key": self.public_key,
            "psk": self.psk,
            "psk_secret": self.psk_secret,
        }


def dn42_notices(
    plan: KeyPlan, actions: Sequence[SecretAction], public_keys: Mapping[str, str]
) -> list[Dn42Notice]:
    """Which DN42 peers must be told what: every tunnel peer of a host whose DN42 key was
    added or rotated (the public key), each peer whose PSK was (the PSK)."""
    if not plan.dn42:
        return []
    names = dn42_secret_names()
    new = {(a.host, a.secret) for a in actions if a.action in ("added", "rotated")}
    notices = []
    for host, tunnels in plan.dn42.items():
        key_changed = (host, names.private_key) in new
        for peer, _ in tunnels:
            psk_changed = (host, names.psk(peer)) in new
            if key_changed or psk_changed:
                notices.append(
                    Dn42Notice(
                        host,
                        peer,
                        public_keys[host] if key_changed else None,
                        psk_changed,
                        names.psk(peer) if psk_changed else None,
                    )
                )
    return notices


@dataclass
class KeysReport:
    """What `keys` did, as data for --json and for the human summary."""

    secrets: list[SecretAction] = field(default_factory=list)
    files_written: list[str] = field(default_factory=list)
    public_keys: dict[str, str] = field(default_factory=dict)
    plan_updated_hosts: list[str] = field(default_factory=list)
    recovered: str | None = None  # what was done about a killed earlier run
    dn42_public_keys: dict[str, str] = field(default_factory=dict)  # host -> our DN42 key
    dn42_notices: list[Dn42Notice] = field(default_factory=list)  # peers to be told

    def count(self, action: Action) -> int:
        return sum(1 for s in self.secrets if s.action == action)

    def to_dict(self) -> dict[str, Any]:
        return {
            "secrets": [
                {"host": s.host, "secret": s.secret, "action": s.action} for s in self.secrets
            ],
            "files_written": list(self.files_written),
            "public_keys": dict(self.public_keys),
            "plan_updated_hosts": list(self.plan_updated_hosts),
            "recovered": self.recovered,
            "dn42_public_keys": dict(self.dn42_public_keys),
            "dn42_notices": [n.to_dict() for n in self.dn42_notices],
        }


def project_layout(plan_path: Path) -> tuple[Path, Path]:
    """The default ``(secrets_dir, sops_config)`` for a plan.

    The project root is the nearest directory at or above the plan holding a
    ``.sops.yaml`` (where sops itself would look); without one, the parent of
    ``hosts/`` when the plan lives there (``init``'s layout), else the plan's dir.
    """
    plan_dir = plan_path.resolve().parent
    for directory in (plan_dir, *plan_dir.parents):
        if (directory / ".sops.yaml").is_file():
            return directory / "secrets", directory / ".sops.yaml"
    root = plan_dir.parent if plan_dir.name == "hosts" else plan_dir
    return root / "secrets", root / ".sops.yaml"


def _checked_plan(text: str, plan_path: Path) -> KeyPlan:
    """The hosts and links of a plan that passes `ibgp-tunnel check`, else KeysError.

    Host and link names become file names and sops keys: the rule for them lives
    once, in the Nix core, and `check` asks it. `keys` writes nothing for a plan
    `check` rejects, so `../x` as a host name never becomes a path.
    """
    try:
        data = planfile.parse(text, plan_path)
        found = errors(check_data(data))
    except InputError as exc:
        raise KeysError(str(exc)) from None
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise KeysError(
            f"fix {plan_path} so that `ibgp-tunnel check` passes; `keys` changed nothing.\n"
            f"{found[0].line()}{more}"
        )
    return key_plan_from_doc(data, str(plan_path))


def _read_plan_text(plan_path: Path) -> str:
    try:
        return planfile.read_text(plan_path)
    except InputError as exc:
        raise KeysError(str(exc)) from None


def _secrets_files(secrets_dir: Path, hosts: Sequence[str]) -> dict[str, Path]:
    """secrets/<host>.yaml per host, each landing inside secrets/ as a regular file.

    A second line of defence behind the plan check: whatever a name or a planted
    symlink says, no secrets file is read or written outside the secrets directory.
    """
    home = secrets_dir.resolve()
    files = {}
    for host in hosts:
        path = secrets_dir / f"{host}.yaml"
        real = transaction.real_target(path)
        if path.parent.resolve() != home or not inside(home, real):
            raise KeysError(
                f"make {path} a file inside {home}: it leads to {real}, outside it; "
                "`keys` changed nothing."
            )
        if real.exists() and not real.is_file():
            raise KeysError(
                f"replace {path} with its sops file: it is not a regular file; "
                "`keys` changed nothing."
            )
        files[host] = path
    return files


def _key_paths(host: str, plan: KeyPlan, names: SecretNames) -> set[tuple[str, ...]]:
    """Where ``host``'s file keeps its private key and its links' PSKs."""
    wanted = [names.private_key]
    wanted += [names.psk(link) for link, ends in plan.links.items() if host in ends]
    if plan.dn42.get(host):
        wanted += _dn42_names(host, plan, dn42_secret_names())
    return {tuple(name.split("/")) for name in wanted}


def _refuse_stored_plaintext(
    plan: KeyPlan,
    raw: Mapping[str, Any],
    rotation: Rotation,
    names: SecretNames,
    files: Mapping[str, Path],
    sops_config: Path,
) -> None:
    """A key or PSK already on disk in plaintext (an older run under a bad rule) is leaked:
    keeping it would silently re-encrypt a compromised key, so it must be rotated."""
    needed: list[str] = []
    where = ""
    for host, document in raw.items():
        if not isinstance(document, Mapping) or "sops" not in document:
            continue  # not a sops file at all: decrypting it says so
        exposed = stored_in_plaintext(document) & _key_paths(host, plan, names)
        dn42 = set(_dn42_names(host, plan, dn42_secret_names())) if plan.dn42.get(host) else set()
        for path in sorted(exposed):
            name = "/".join(path)
            link = name.removeprefix(names.psk_prefix) if name != names.private_key else None
            if name in dn42:
                # Rotated like the iBGP keys; the DN42 peer is then told the new value.
                target = _dn42_target(host, name, dn42_secret_names())
                needed += [] if _dn42_rotated(target, rotation) else [target]
            elif link is None:
                needed += [] if host in rotation.hosts else [f"host:{host}"]
            else:
                needed += [] if link in rotation.links else [f"link:{link}"]
            if needed and not where:
                where = f"{files[host]} holds {name}"  # the first value still to rotate
    if needed:
        flags = " ".join(f"--rotate {n}" for n in dict.fromkeys(needed))
        tell = (
            " and give the DN42 peers it names the new values"
            if any(n.startswith("dn42:") for n in needed)
            else ""
        )
        raise KeysError(
            f"fix {sops_config} so that it encrypts every value, then run `ibgp-tunnel keys "
            f"{flags}`{tell}.\n{where} in plaintext: treat it as leaked (and purge it from "
            "git history)."
        )


def generate_keys(
    plan_path: Path,
    secrets_dir: Path,
    sops_config: Path,
    rotate: Sequence[str] = (),
    secret_names: SecretNames | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_wait: Callable[[str], None] | None = None,
) -> KeysReport:
    """Add missing keys/PSKs, rotate the requested ones, write secrets and the plan.

    Under the project's lock (secrets/.ibgp-tunnel-keys.lock): finish or roll back
    what a killed run left, decrypt what exists, decide, encrypt every changed
    file in memory and prove each value came back as ciphertext, then replace
    the secrets files and the plan all or none (``transaction``). A failure
    before the renames changes nothing.
    """
    names = secret_names or default_secret_names()
    # Bad input is reported before anything is created or locked.
    checked_text = _read_plan_text(plan_path)
    checked = _checked_plan(checked_text, plan_path)
    resolve_rotation(rotate, checked)
    try:
        secrets_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeysError(
            f"make {secrets_dir.parent} writable or pass --secrets-dir: cannot create the "
            f"secrets directory {secrets_dir}: {exc.strerror or exc}"
        ) from exc
    with project_lock(secrets_dir, lock_timeout, on_wait):
        files = _secrets_files(secrets_dir, checked.hosts)
        recovered = transaction.recover(secrets_dir, [plan_path, *files.values()])
        # Read again: the plan may be the one a finished interrupted run wrote,
        # or edited meanwhile; a changed plan is checked again.
        text = _read_plan_text(plan_path)
        plan = checked if text == checked_text else _checked_plan(text, plan_path)
        rotation = resolve_rotation(rotate, plan)
        files = _secrets_files(secrets_dir, plan.hosts)
        report = _generate(plan_path, text, plan, rotation, names, files, sops_config, secrets_dir)
        report.recovered = recovered
        return report


def _generate(
    plan_path: Path,
    plan_text: str,
    plan: KeyPlan,
    rotation: Rotation,
    names: SecretNames,
    files: Mapping[str, Path],
    sops_config: Path,
    secrets_dir: Path,
) -> KeysReport:
    # A dangling symlink counts as absent: the new file is created at its target.
    present = {host: f for host, f in files.items() if f.exists()}
    raw = {host: sops.read_raw(f) for host, f in present.items()}
    _refuse_stored_plaintext(plan, raw, rotation, names, files, sops_config)
    existing = {host: sops.decrypt_file(f) for host, f in present.items()}
    secrets, actions = plan_secrets(plan, existing, rotation, names)

    changed = [host for host in plan.hosts if secrets[host] != existing.get(host)]
    ciphertexts = {
        host: sops.encrypt(
            secrets[host],
            files[host],
            sops_config,
            # Values the user's own file already kept in plaintext may stay so;
            # keys and PSKs never.
            plaintext_ok=stored_in_plaintext(raw.get(host)) - _key_paths(host, plan, names),
        )
        for host in changed
    }

    public_keys = {
        host: public_key_of(get_secret(secrets[host], names.private_key)) for host in plan.hosts
    }
    dn42_public_keys = _dn42_public_keys(plan, secrets)
    try:
        new_plan, plan_updated = with_public_keys(plan_text, public_keys, str(plan_path))
        new_plan, dn42_updated = with_public_keys(
            new_plan, dn42_public_keys, str(plan_path), DN42_PLAN_KEY
        )
    except PlanTextError as exc:
        raise KeysError(str(exc)) from exc
    plan_updated = list(dict.fromkeys(plan_updated + dn42_updated))

    new_files = [transaction.NewFile(files[host], ciphertexts[host]) for host in changed]
    if plan_updated:
        # The plan is public: keep its mode (of the file a symlink points at).
        mode = stat.S_IMODE(transaction.real_target(plan_path).stat().st_mode)
        new_files.append(transaction.NewFile(plan_path, new_plan.encode(), mode, confined=False))
    transaction.replace_all(secrets_dir, new_files)

    written = [str(files[host]) for host in changed]
    if plan_updated:
        written.append(str(plan_path))
    return KeysReport(
        actions,
        written,
        public_keys,
        plan_updated,
        dn42_public_keys=dn42_public_keys,
        dn42_notices=dn42_notices(plan, actions, dn42_public_keys),
    )


def _dn42_public_keys(plan: KeyPlan, secrets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """hosts.<h>.dn42_public_key of each host with DN42 tunnels, from its DN42 key."""
    if not plan.dn42:
        return {}
    name = dn42_secret_names().private_key
    return {host: public_key_of(get_secret(secrets[host], name)) for host in plan.dn42}
