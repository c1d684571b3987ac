"""`ibgp-tunnel dn42 ...`: DN42 commands (peer-info: what a peer is given)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ibgp_tunnel import peerinfo
from ibgp_tunnel.autopeer_cli import autopeer_app
from ibgp_tunnel.errors import IbgpTunnelError, PlanError
from ibgp_tunnel.keys import project_layout

dn42_app = typer.Typer(
    help="DN42 peering: what to tell a peer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
dn42_app.add_typer(autopeer_app, name="autopeer")


@dn42_app.command("peer-info", short_help="What a DN42 peer is given (no secrets).")
def peer_info_command(
    plan: Annotated[Path, typer.Argument(help="The plan file.")],
    host: Annotated[str, typer.Argument(help="Our host (a reflector with dn42_peers).")],
    peer: Annotated[str, typer.Argument(help="The peer's name in hosts.<host>.dn42_peers.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the details as JSON.")] = False,
    secrets_dir: Annotated[
        Path | None,
        typer.Option(help="Where secrets/<host>.yaml live (default: next to .sops.yaml)."),
    ] = None,
) -> None:
    """Print what a DN42 peer asks for: our ASN, the endpoint and port to dial, our
    WireGuard public key, link-local and IPv4 addresses, MTU, and whether a PSK is
    used and how to hand it over. No secret is read or printed."""
    try:
        directory = secrets_dir or project_layout(plan)[0]
        info = peerinfo.peer_info(plan, host, peer, directory / f"{host}.yaml")
    except PlanError as error:
        for finding in error.findings:
            typer.echo(finding.line())
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    except IbgpTunnelError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    typer.echo(json.dumps(info.to_dict(), indent=2) if json_output else peerinfo.as_text(info))
