"""The `ibgp-tunnel doctor` command (registered in ibgp_tunnel/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ibgp_tunnel.doctor import report, saved
from ibgp_tunnel.doctor.autopeer import pid_unit_state
from ibgp_tunnel.doctor.collect import Target
from ibgp_tunnel.doctor.result import Status
from ibgp_tunnel.doctor.run import diagnose, diagnose_snapshot, guess_host, lab_host, local_target
from ibgp_tunnel.doctor.sanitize import clean
from ibgp_tunnel.doctor.saved import require_new_directory
from ibgp_tunnel.errors import EXIT_BAD_INPUT, EXIT_FAILED, IbgpTunnelError

DEFAULT_PLAN = Path("hosts/plan.toml")
# What checks may raise on a recording whose tool outputs are well-formed files but
# not what the tools print: bad input (exit 2), not a crash.
_MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError)


def _refuse(message: str) -> typer.Exit:
    # Error text may quote a recording or a host: cleaned like every other line.
    typer.echo(f"error: {clean(message)}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def doctor_command(
    plan: Annotated[
        Path | None,
        typer.Argument(help="The plan (default: the lab's plan with --lab, else hosts/plan.toml)."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Which plan host this is (default: this machine's name)."),
    ] = None,
    lab: Annotated[
        str | None,
        typer.Option(
            "--lab",
            metavar="NAME",
            help="Diagnose the lab host NAME (its namespace) instead of this machine.",
        ),
    ] = None,
    lab_dir: Annotated[
        Path | None,
        typer.Option(
            help="The lab's state directory (default: $IBGP_TUNNEL_LAB_DIR, else "
            "/run/ibgp-tunnel-lab)."
        ),
    ] = None,
    bird_socket: Annotated[
        str | None,
        typer.Option(help="BIRD's control socket (default /run/bird/bird.ctl)."),
    ] = None,
    birdc: Annotated[str, typer.Option(help="The birdc to run.")] = "birdc",
    bird_config: Annotated[
        str | None,
        typer.Option(
            help="The config file BIRD runs from, compared with the plan's "
            "(default /etc/bird/bird.conf, NixOS's)."
        ),
    ] = None,
    autopeer_state: Annotated[
        Path | None,
        typer.Option(
            help="Self-service peering's state directory, whose applied peerings doctor "
            "checks too (default: the lab host's with --lab, else "
            "/var/lib/ibgp-tunnel/autopeer).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    save_outputs: Annotated[
        Path | None,
        typer.Option(
            help="Also write every tool's raw output to this new directory (private keys "
            "and PSKs removed), for a bug report.",
        ),
    ] = None,
    from_outputs: Annotated[
        Path | None,
        typer.Option(
            help="Diagnose outputs saved earlier with --save-outputs, reading nothing live."
        ),
    ] = None,
) -> None:
    """Diagnose a live host against the plan: BIRD, the WireGuard tunnel, keys,
    handshakes, firewall ports, sessions (with BIRD's reason), BFD, graceful restart,
    kernel routes, forwarding/NAT/reverse-path rules, the IPv6 next hop, overlaps,
    MTU, import limits, and drift (BIRD's config file, WireGuard's peers and our
    nftables table against what the plan renders).

    Prints one line per check (ok, warn, fail, skip) with what it saw and the fix;
    the first failing line is the one to act on. Only reads: it changes nothing.
    Exit 0 when nothing fails, 1 when a check fails, 2 when the input is unusable.
    """
    try:
        if save_outputs is not None:
            require_new_directory(save_outputs)
        keys = None
        units = None
        target: Target
        if lab is not None:
            found = lab_host(lab, lab_dir, birdc)
            target, plan_path, name = found.target, plan or found.plan, host or lab
            keys = found.generated_keys
            autopeer_state = autopeer_state or found.autopeer_state
            if found.autopeer_daemons is not None:
                units = pid_unit_state(found.autopeer_daemons)
        else:
            plan_path = plan or DEFAULT_PLAN
            name = host or guess_host(plan_path)
            target = local_target(bird_socket, birdc, bird_config)
        if from_outputs is not None:
            snapshot = saved.load(from_outputs)
            try:
                checks = diagnose_snapshot(plan_path, name, snapshot, autopeer_state)
            except _MALFORMED as error:
                raise _refuse(
                    f"the outputs saved in {from_outputs} are not what the tools print "
                    f"({type(error).__name__}: {error}); save them again with --save-outputs"
                ) from None
            where = f"outputs saved in {from_outputs}"
        else:
            diagnosis = diagnose(plan_path, name, target, keys, autopeer_state, units)
            checks, where = diagnosis.checks, diagnosis.target
            if save_outputs is not None:
                saved.save(diagnosis.snapshot, save_outputs)
    except IbgpTunnelError as error:
        # Whatever stopped doctor before it could look (a plan the core refuses, no
        # lab, unreadable saved outputs) is unusable input, not a failed check.
        raise _refuse(str(error)) from None
    except OSError as error:
        raise _refuse(str(error)) from None
    if json_output:
        typer.echo(report.as_json(name, str(plan_path), where, checks), nl=False)
    else:
        typer.echo(report.as_text(name, where, checks), nl=False)
    if any(c.status is Status.FAIL for c in checks):
        raise typer.Exit(EXIT_FAILED)
