"""`ibgp-tunnel dn42 autopeer serve`: run the web service (unprivileged) until
stopped. autopeer_cli.py mounts `serve_command` as its `serve` command."""

from __future__ import annotations

import socket
import sys
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer

from ibgp_tunnel import fieldtable
from ibgp_tunnel.autopeer.server import AutopeerServer
from ibgp_tunnel.autopeer.web import Web, WebConfig
from ibgp_tunnel.paths import defaults

DEFAULT_STATE_DIR = Path(defaults()["autopeer"]["state_dir"])


@cache
def _field(key: str) -> dict[str, Any]:
    """The field table's entry for hosts.<h>.autopeer.<key> (its default and range)."""
    [table] = [f for f in fieldtable.of("host") if f["key"] == "autopeer"]
    [field] = [f for f in table["fields"] if f["key"] == key]
    return field


def _number(key: str, help_text: str) -> Any:
    field = _field(key)
    return typer.Option(
        min=field["low"], max=field["high"], help=f"{help_text} (the plan's {key})."
    )


def serve_command(
    state_dir: Annotated[
        Path,
        typer.Option(
            help="The autopeer state directory (spool/, status/, challenges/, registry/)."
        ),
    ] = DEFAULT_STATE_DIR,
    registry: Annotated[
        Path | None,
        typer.Option("--registry", help="The DN42 registry checkout (default: STATE/registry)."),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="The host's spec (JSON): requests are then checked by the core before a "
            "challenge is issued (the apply unit checks them again either way).",
        ),
    ] = None,
    listen_address: Annotated[
        str, typer.Option(help="The address to listen on (the plan's listen_address).")
    ] = _field("listen_address")["default"],
    listen_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="The port (0: any free one; the plan's listen_port)."),
    ] = _field("listen_port")["default"],
    host_name: Annotated[
        str | None,
        typer.Option(
            help="This host's name, written into every challenge text (default: hostname)."
        ),
    ] = None,
    challenge_ttl: Annotated[int, _number("challenge_ttl", "Seconds a challenge lives")] = _field(
        "challenge_ttl"
    )["default"],
    rate_limit: Annotated[
        int,
        _number(
            "rate_limit",
            "Requests per minute from one client address (IPv6: one /64) and naming one ASN",
        ),
    ] = _field("rate_limit")["default"],
    total_rate_limit: Annotated[
        int, typer.Option(min=1, help="Requests per minute from all clients together.")
    ] = 120,
    max_peers: Annotated[int, _number("max_peers", "Autopeered sessions in total")] = _field(
        "max_peers"
    )["default"],
    max_per_asn: Annotated[int, _number("max_per_asn", "Autopeered sessions per ASN")] = _field(
        "max_per_asn"
    )["default"],
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
        registry_dir=registry,
        spec_file=spec,
        host_name=host_name or socket.gethostname(),
        challenge_ttl=challenge_ttl,
        rate_limit=rate_limit,
        asn_rate_limit=rate_limit,
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
