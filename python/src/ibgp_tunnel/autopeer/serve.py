"""`ibgp-tunnel dn42 autopeer serve`: run the web service (unprivileged) until
stopped. autopeer_cli.py mounts `serve_command` as its `serve` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ibgp_tunnel.autopeer.server import AutopeerServer
from ibgp_tunnel.autopeer.web import Web, WebConfig

DEFAULT_STATE_DIR = Path("/var/lib/ibgp-tunnel/autopeer")


def serve_command(
    state_dir: Annotated[
        Path,
        typer.Option(
            help="The autopeer state directory (spool/, status/, challenges/, registry/)."
        ),
    ] = DEFAULT_STATE_DIR,
    listen_address: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    listen_port: Annotated[
        int, typer.Option(min=0, max=65535, help="The port (0: any free one).")
    ] = 8042,
    host_name: Annotated[
        str, typer.Option(help="This host's name, written into every challenge text.")
    ] = "localhost",
    challenge_ttl: Annotated[
        int, typer.Option(min=10, max=3600, help="Seconds a challenge lives.")
    ] = 300,
    rate_limit: Annotated[
        int,
        typer.Option(min=1, help="Requests per minute from one client address (IPv6: one /64)."),
    ] = 10,
    asn_rate_limit: Annotated[
        int, typer.Option(min=1, help="Requests per minute naming one ASN.")
    ] = 10,
    total_rate_limit: Annotated[
        int, typer.Option(min=1, help="Requests per minute from all clients together.")
    ] = 120,
    max_peers: Annotated[int, typer.Option(min=0, help="Autopeered sessions in total.")] = 32,
    max_per_asn: Annotated[int, typer.Option(min=1, help="Autopeered sessions per ASN.")] = 1,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="A reverse proxy's address whose X-Forwarded-For names the client "
            "(repeat for several; default: none, the socket's address counts)."
        ),
    ] = None,
) -> None:
    """Serve the self-service peering page and its JSON API (for the host's reverse
    proxy). It issues challenges, checks signatures against the registry copy and
    spools accepted requests for the privileged apply unit; it applies nothing."""
    config = WebConfig(
        state_dir=state_dir,
        host_name=host_name,
        challenge_ttl=challenge_ttl,
        rate_limit=rate_limit,
        asn_rate_limit=asn_rate_limit,
        total_rate_limit=total_rate_limit,
        max_peers=max_peers,
        max_per_asn=max_per_asn,
    )
    try:
        server = AutopeerServer((listen_address, listen_port), Web(config), trusted_proxy or ())
    except OSError as error:
        typer.echo(
            f"error: cannot listen on {listen_address} port {listen_port}: {error.strerror}",
            err=True,
        )
        raise typer.Exit(2) from None
    host, port = server.server_address[:2]
    # The first line says where it listens (tests and the lab read the port from it).
    print(
        f"listening on http://{host}:{port}/"
        if ":" not in str(host)
        else f"listening on http://[{host}]:{port}/",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)
