"""`ibgp-tunnel dn42 autopeer ...`: the operator's view of self-service peering
(list, show, remove) and the privileged unit's commands (apply, apply --watch,
restore)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from ibgp_tunnel.autopeer import apply as ap
from ibgp_tunnel.autopeer import state as st
from ibgp_tunnel.autopeer.birdinclude import Bird
from ibgp_tunnel.autopeer.registry_refresh import refresh_registry, refresh_summary
from ibgp_tunnel.autopeer.serve import serve_command
from ibgp_tunnel.errors import IbgpTunnelError

autopeer_app = typer.Typer(
    help="Self-service DN42 peering: applied peerings, and the units' commands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

StateOption = Annotated[Path, typer.Option("--state-dir", help="The autopeer state directory.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(error: IbgpTunnelError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(error.exit_code)


def _applier(
    state_dir: Path,
    spec: Path,
    bird_conf: Path,
    bird_socket: Path,
    bird: str,
    birdc: str,
    registry: Path | None,
    nft_table: str,
    userspace_wireguard: bool,
    log: bool = True,
) -> ap.Applier:
    directory = st.StateDir(state_dir)
    config = ap.ApplyConfig(
        state=directory,
        spec_file=spec,
        bird=Bird(bird_conf, bird_socket, bird, birdc),
        registry_dir=registry or directory.registry,
        nft_table=nft_table,
        userspace_wireguard=userspace_wireguard,
    )
    return ap.Applier(config, log=(lambda line: typer.echo(line, err=True)) if log else ap._quiet)


SpecOption = Annotated[
    Path, typer.Option("--spec", help="The host's spec (JSON) the core renders autopeers for.")
]
BirdConfOption = Annotated[
    Path, typer.Option("--bird-conf", help="The bird.conf BIRD runs (it includes the autopeers).")
]
SocketOption = Annotated[Path, typer.Option("--bird-socket", help="BIRD's control socket.")]
BirdOption = Annotated[str, typer.Option("--bird", help="The bird binary (for `bird -p`).")]
BirdcOption = Annotated[str, typer.Option("--birdc", help="The birdc binary.")]
RegistryOption = Annotated[
    Path | None,
    typer.Option("--registry", help="The DN42 registry checkout (default: STATE/registry)."),
]
TableOption = Annotated[str, typer.Option("--nft-table", help="Our inet nftables table.")]
UserspaceOption = Annotated[
    bool,
    typer.Option("--wireguard-go", help="Run wireguard-go (no kernel WireGuard, as in the lab)."),
]


def _records(state_dir: Path) -> list[dict[str, Any]]:
    directory = st.StateDir(state_dir)
    found = []
    for name, record in st.read_peers(directory).items():
        status = st.read_status(directory, int(record["asn"])) or {}
        session = next(
            (p.get("session") for p in status.get("peers", []) if p.get("name") == name), None
        )
        found.append(
            {
                "name": name,
                "asn": int(record["asn"]),
                "interface": record.get("interface"),
                "applied": record.get("applied"),
                "maintainer": (record.get("proof") or {}).get("maintainer"),
                "session": session or "unknown",
                "request": record.get("request"),
            }
        )
    return found


@autopeer_app.command("list", short_help="The applied autopeerings.")
def list_command(
    state_dir: StateOption = st.DEFAULT_STATE_DIR, json_output: JsonOption = False
) -> None:
    """Every applied peering: name, ASN, interface, session state (as the apply unit
    last saw it), the maintainer whose key signed it."""
    records = _records(state_dir)
    if json_output:
        typer.echo(json.dumps(records, indent=2))
        return
    if not records:
        typer.echo("no autopeerings")
    for r in records:
        typer.echo(
            f"{r['name']:<14} AS{r['asn']:<11} {r['interface'] or '-':<15} "
            f"{r['session']:<12} {r['maintainer'] or '-'}"
        )


@autopeer_app.command("show", short_help="One ASN's peering and its status.")
def show_command(
    asn: Annotated[int, typer.Argument(help="The peer's ASN.")],
    state_dir: StateOption = st.DEFAULT_STATE_DIR,
    json_output: JsonOption = False,
) -> None:
    """The ASN's applied peerings and its status file (what the requester sees)."""
    records = [r for r in _records(state_dir) if r["asn"] == asn]
    status = st.read_status(st.StateDir(state_dir), asn)
    if not records and status is None:
        raise _fail(IbgpTunnelError(f"AS{asn} has no autopeering and no status here"))
    data = {"asn": asn, "peers": records, "status": status}
    if json_output:
        typer.echo(json.dumps(data, indent=2))
        return
    if status:
        typer.echo(f"AS{asn}: {status.get('state')} {status.get('message') or ''}".rstrip())
    for r in records:
        typer.echo(f"  {r['name']} on {r['interface']}: session {r['session']}")
        typer.echo(f"  request: {json.dumps(r['request'], sort_keys=True)}")


@autopeer_app.command("remove", short_help="Tear down an ASN's autopeering (operator).")
def remove_command(
    asn: Annotated[int, typer.Argument(help="The peer's ASN.")],
    spec: SpecOption,
    bird_conf: BirdConfOption,
    bird_socket: SocketOption,
    state_dir: StateOption = st.DEFAULT_STATE_DIR,
    bird: BirdOption = "bird",
    birdc: BirdcOption = "birdc",
    registry: RegistryOption = None,
    nft_table: TableOption = "ibgp-tunnel",
    userspace_wireguard: UserspaceOption = False,
) -> None:
    """BIRD session, interface, firewall elements and state of the ASN's peerings."""
    applier = _applier(
        state_dir,
        spec,
        bird_conf,
        bird_socket,
        bird,
        birdc,
        registry,
        nft_table,
        userspace_wireguard,
    )
    try:
        with applier.config.state.locked():
            applier.load()
            removed = applier.remove(asn)
    except IbgpTunnelError as error:
        raise _fail(error) from None
    typer.echo(f"removed {', '.join(removed)}")


@autopeer_app.command("apply", short_help="Apply the spool (once, or --watch).")
def apply_command(
    spec: SpecOption,
    bird_conf: BirdConfOption,
    bird_socket: SocketOption,
    state_dir: StateOption = st.DEFAULT_STATE_DIR,
    bird: BirdOption = "bird",
    birdc: BirdcOption = "birdc",
    registry: RegistryOption = None,
    nft_table: TableOption = "ibgp-tunnel",
    userspace_wireguard: UserspaceOption = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Restore, then keep applying (the apply unit).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Check every spool entry again (signature, the core's rules) and apply it."""
    applier = _applier(
        state_dir,
        spec,
        bird_conf,
        bird_socket,
        bird,
        birdc,
        registry,
        nft_table,
        userspace_wireguard,
    )
    try:
        if watch:
            stopping: list[bool] = []
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stopping.append(True))
            ap.watch(applier, stop=lambda: bool(stopping))
            return
        applier.load()
        outcomes = applier.drain()
    except IbgpTunnelError as error:
        raise _fail(error) from None
    if json_output:
        typer.echo(json.dumps([o.__dict__ for o in outcomes], indent=2))
        return
    for o in outcomes:
        typer.echo(f"AS{o.asn}: {o.state} {o.message}".rstrip())


@autopeer_app.command("restore", short_help="Rebuild the applied peerings (at boot).")
def restore_command(
    spec: SpecOption,
    bird_conf: BirdConfOption,
    bird_socket: SocketOption,
    state_dir: StateOption = st.DEFAULT_STATE_DIR,
    bird: BirdOption = "bird",
    birdc: BirdcOption = "birdc",
    registry: RegistryOption = None,
    nft_table: TableOption = "ibgp-tunnel",
    userspace_wireguard: UserspaceOption = False,
) -> None:
    """Interfaces and firewall elements from peers/, the include as the core renders
    it now (peers the plan's static peers now collide with are dropped)."""
    applier = _applier(
        state_dir,
        spec,
        bird_conf,
        bird_socket,
        bird,
        birdc,
        registry,
        nft_table,
        userspace_wireguard,
    )
    try:
        target = applier.restore()
    except IbgpTunnelError as error:
        raise _fail(error) from None
    typer.echo(f"restored {len(target.peers)} autopeering(s)")


autopeer_app.command("serve", short_help="Serve the peering page and its JSON API (unprivileged).")(
    serve_command
)


@autopeer_app.command("registry-refresh", short_help="Fetch the DN42 registry copy (the timer's).")
def registry_refresh_command(
    registry_url: Annotated[
        str, typer.Option("--registry-url", help="The registry's git URL (https:// or file://).")
    ],
    registry: RegistryOption = None,
    state_dir: StateOption = st.DEFAULT_STATE_DIR,
) -> None:
    """Shallow-fetch the registry and make the checkout current only when it is whole
    (the old copy stays in use if anything fails)."""
    target = registry or st.StateDir(state_dir).registry
    try:
        done = refresh_registry(registry_url, target)
    except IbgpTunnelError as error:
        raise _fail(error) from None
    typer.echo(refresh_summary(done))
