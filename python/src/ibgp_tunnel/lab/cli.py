"""`ibgp-tunnel lab ...`: thin commands over the lab library."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ibgp_tunnel.errors import IbgpTunnelError
from ibgp_tunnel.lab import location, netns, state
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.status import lab_status
from ibgp_tunnel.lab.up import require_root, up

lab_app = typer.Typer(
    help="Bring a whole plan up in network namespaces on this machine, with real BIRD, "
    "wireguard-go and nftables running the rendered configuration. Needs root.",
    no_args_is_help=True,
)

T = TypeVar("T")


@lab_app.callback()
def lab_options(
    lab_dir: Annotated[
        Path | None,
        typer.Option(
            "--lab-dir",
            envvar=location.LAB_DIR_ENV,
            help="The lab's state directory: a second lab (the tests' own, say) lives in "
            "another one. `up` creates it (it must not exist) and `down` removes only a "
            f"directory `up` made. Default: {location.DEFAULT_LAB_DIR}.",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            envvar=location.PREFIX_ENV,
            help="What the lab's namespace names start with, so two labs never share "
            f"one. Default: {location.DEFAULT_PREFIX}.",
        ),
    ] = None,
    bird_dir: Annotated[
        Path | None,
        typer.Option(
            "--bird-dir",
            envvar=location.BIRD_DIR_ENV,
            help="Directory with the `bird` and `birdc` to run (scripts/setup puts BIRD 3 "
            "in .cache/bird/bird3/bin). Default: PATH's; a lab that is up keeps the one "
            "it started with.",
        ),
    ] = None,
) -> None:
    """Options shared by every lab command; they travel as environment variables, so
    helpers started from here see the same lab."""
    if lab_dir is not None:
        os.environ[location.LAB_DIR_ENV] = str(lab_dir)
    if prefix is not None:
        os.environ[location.PREFIX_ENV] = prefix
    if bird_dir is not None:
        os.environ[location.BIRD_DIR_ENV] = str(bird_dir.resolve())


def _load_running() -> state.LabState:
    """The lab that is up; its commands then use the BIRD it was started with."""
    st = state.load()
    if st is None:
        raise LabError("no lab is up; start one with `ibgp-tunnel lab up [PLAN]`")
    if st.bird_dir and not os.environ.get(location.BIRD_DIR_ENV):
        os.environ[location.BIRD_DIR_ENV] = st.bird_dir
    return st


def _guard(action: Callable[[], T]) -> T:
    """Run a command body; turn our errors into a message and an exit code."""
    try:
        return action()
    except IbgpTunnelError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(error.exit_code) from None


def _progress(message: str) -> None:
    typer.secho(f"  {message}", err=True, dim=True)


def _sessions_cell(host: dict[str, Any]) -> str:
    sessions = host.get("sessions")
    if sessions is None:
        return host.get("error", "")
    return "\n".join(f"{s['name']}: {s['info'] or s['state']}" for s in sessions)


def _routes_cell(host: dict[str, Any]) -> str:
    parts = [f"{table}: {count}" for table, count in host.get("routes", {}).items()]
    kernel = host.get("kernel_routes")
    if kernel:
        parts.append(f"kernel (proto bird): {kernel['ipv4']} v4, {kernel['ipv6']} v6")
    return "\n".join(parts)


def _handshake_cell(host: dict[str, Any]) -> str:
    lines = []
    for peer in host.get("wireguard", []):
        age = peer["handshake_age"]
        when = "never" if age is None else f"{age} s ago"
        lines.append(f"{peer['interface']}: handshake {when}")
    return "\n".join(lines)


def print_summary(status: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lab: {status['plan']}")
    for column in ("host", "kind", "BGP sessions", "routes per table", "WireGuard"):
        table.add_column(column)
    for host in status["hosts"]:
        table.add_row(
            host["name"],
            host["kind"],
            _sessions_cell(host),
            _routes_cell(host),
            _handshake_cell(host),
        )
    console = Console()
    console.print(table)
    for warning in status.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _status_with_warnings(st: state.LabState) -> dict[str, Any]:
    return lab_status(st) | {"warnings": st.warnings}


@lab_app.command("up")
def up_command(
    plan: Annotated[Path, typer.Argument(help="The plan to bring up.")] = Path("hosts/plan.toml"),
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the lab to settle: every BGP session "
            "Established, every kernel holding its routes."
        ),
    ] = 60.0,
    secrets: Annotated[
        Path | None,
        typer.Option(
            help="Directory of the hosts' sops files (default: secrets/ or secrets/test/ "
            "beside the plan's directory). Keys that do not decrypt are generated for the lab."
        ),
    ] = None,
    plain_tuning: Annotated[
        bool,
        typer.Option(
            "--plain-tuning",
            help="Run the seed's plain BGP sessions (no BFD, no graceful restart, BIRD's "
            "default timers) instead of the plan's tuning, to compare the two.",
        ),
    ] = False,
) -> None:
    """Create the lab for PLAN (a no-op if it is up already) and wait for BGP."""

    def body() -> None:
        st = up(
            plan,
            progress=_progress,
            timeout=timeout,
            secrets_dir=secrets,
            plain_tuning=plain_tuning,
        )
        print_summary(_status_with_warnings(st))

    _guard(body)


@lab_app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """BGP sessions, route counts and WireGuard handshakes of the running lab."""

    def body() -> None:
        require_root()
        st = _load_running()
        status = _status_with_warnings(st)
        if as_json:
            typer.echo(json.dumps(status, indent=2))
        else:
            print_summary(status)

    _guard(body)


@lab_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_command(
    host: Annotated[str, typer.Argument(help="A lab host: a plan host, inet, dn42, lan-HOST.")],
    command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
) -> None:
    """Run a command inside a lab host, e.g. `lab exec dmz -- birdc show protocols`.

    Plan hosts and the DN42 peer see their own /run, so plain `birdc` and `wg`
    talk to that host's daemons."""

    def body() -> list[str]:
        require_root()
        st = _load_running()
        if st.bird_dir:  # plain `birdc` inside the host is the lab's
            os.environ["PATH"] = f"{st.bird_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        node = st.nodes.get(host)
        if node is None:
            raise LabError(f"no lab host {host!r}; the lab has: {', '.join(st.nodes)}")
        return netns.ns_argv(node["netns"], command, Path(node["run_dir"]))

    argv = _guard(body)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@lab_app.command("down")
def down_command() -> None:
    """Stop every daemon and delete every namespace the lab created (safe to repeat).

    Refuses (exit 2), touching nothing, a directory `lab up` did not make."""

    def body() -> None:
        require_root()
        if down(progress=_progress):
            typer.echo("lab removed")
        else:
            typer.echo("no lab was up")

    _guard(body)
