"""`ibgp-tunnel flake-inputs`: fill and show the verified cache of pinned flake
inputs (flake_inputs.py) that the module-evaluation tests read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ibgp_tunnel import flake_inputs
from ibgp_tunnel.errors import EXIT_FAILED, IbgpTunnelError, InputError

flake_inputs_app = typer.Typer(
    help="The verified cache of pinned flake inputs (nixpkgs' lib, sops-nix) that module "
    "evaluation reads: `add` accepts a tree only when its NAR hash is flake.lock's pin. "
    f"The cache is ${flake_inputs.CACHE_ENV}, else $XDG_CACHE_HOME/ibgp-tunnel/flake-inputs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ProjectOption = Annotated[
    Path,
    typer.Option("--project", help="The ibgp-tunnel checkout whose flake.lock pins the inputs."),
]


def _project(path: Path) -> Path:
    for candidate in [path.resolve(), *path.resolve().parents]:
        if (candidate / "flake.lock").is_file() and (candidate / flake_inputs.PINS_FILE).is_file():
            return candidate
    raise InputError(f"run inside an ibgp-tunnel checkout or pass --project: {path} is not in one")


def _fail(error: IbgpTunnelError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(error.exit_code)


@flake_inputs_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="nixpkgs-lib or sops-nix.")],
    source: Annotated[
        Path, typer.Argument(help="A tarball, an unpacked tree or a git directory of it.")
    ],
    project: ProjectOption = Path("."),
) -> None:
    """Verify SOURCE against the pin and copy it into the cache (read-only)."""
    try:
        pin, added = flake_inputs.add(_project(project), name, source)
    except IbgpTunnelError as error:
        raise _fail(error) from None
    verb = "added" if added else "already cached"
    typer.echo(f"{pin.name} {pin.rev}: {verb}, {pin.nar_hash} ({flake_inputs.cached_tree(pin)})")


@flake_inputs_app.command("list")
def list_command(
    project: ProjectOption = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """Each pinned input, where to get it, and whether the cache holds a verified copy.
    Exit 1 when one is missing or altered."""
    try:
        rows = flake_inputs.status(_project(project))
    except IbgpTunnelError as error:
        raise _fail(error) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            typer.echo(f"{row['name']}: {row['state']}\n  {row['source']} {row['rev']}")
            typer.echo(f"  {row['narHash']}\n  get: {row['tarball']}\n  cache: {row['path']}")
    if any(row["state"] != "verified" for row in rows):
        raise typer.Exit(EXIT_FAILED)
