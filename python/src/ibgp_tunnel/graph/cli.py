"""The `ibgp-tunnel graph` command (registered in ibgp_tunnel/cli.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ibgp_tunnel.doctor.result import Check
from ibgp_tunnel.doctor.sanitize import clean
from ibgp_tunnel.errors import EXIT_BAD_INPUT, IbgpTunnelError, InputError, PlanError
from ibgp_tunnel.graph import lab, results, source
from ibgp_tunnel.graph.dot import to_dot
from ibgp_tunnel.graph.output import write_atomically
from ibgp_tunnel.graph.svg import render_svg

DEFAULT_PLAN = Path("hosts/plan.toml")


class Format(StrEnum):
    svg = "svg"
    dot = "dot"


def _fail(message: str, code: int) -> typer.Exit:
    # Messages may quote a doctor file or a lab host: cleaned like doctor's lines.
    typer.echo(f"error: {clean(message)}", err=True)
    return typer.Exit(code)


def _drawing(
    plan: Path | None,
    use_lab: bool,
    lab_dir: Path | None,
    birdc: str,
    doctor_json: list[Path],
    output_format: Format,
) -> str:
    if use_lab and doctor_json:
        raise InputError("give --lab or --doctor-json, not both")
    if output_format is Format.svg:
        from ibgp_tunnel.graph.svg import dot_binary

        dot_binary()  # no dot: say so before anything slow runs
    plan_path = plan or (lab.lab_plan_and_hosts(lab_dir)[0] if use_lab else DEFAULT_PLAN)
    graph = source.load(plan_path)
    found: dict[str, list[Check]] | None = None
    if use_lab:
        found = lab.lab_results(lab_dir, birdc, plan, (h.name for h in graph.hosts))
    elif doctor_json:
        found = results.load(doctor_json, (h.name for h in graph.hosts))
    text = to_dot(graph, found)
    return render_svg(text) if output_format is Format.svg else text


def graph_command(
    plan: Annotated[
        Path | None,
        typer.Argument(help="The plan (default: the lab's plan with --lab, else hosts/plan.toml)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (default: standard output)."),
    ] = None,
    use_lab: Annotated[
        bool,
        typer.Option(
            "--lab", help="Colour by doctor's results on every host of the running lab (root)."
        ),
    ] = False,
    lab_dir: Annotated[
        Path | None,
        typer.Option(
            help="The lab's state directory (default: $IBGP_TUNNEL_LAB_DIR, else "
            "/run/ibgp-tunnel-lab)."
        ),
    ] = None,
    birdc: Annotated[str, typer.Option(help="The birdc to run (with --lab).")] = "birdc",
    doctor_json: Annotated[
        list[Path] | None,
        typer.Option(
            "--doctor-json",
            metavar="FILE",
            help="Colour by `doctor --json` output saved on a host; repeat it, one file per host.",
        ),
    ] = None,
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="svg: drawn by graphviz's dot; dot: the DOT text."),
    ] = Format.svg,
) -> None:
    """Draw the plan: reflectors, clients and DN42 peers, each link with its
    interface, UDP port and tunnel subnets, the BGP sessions over them, and what
    each host announces. Needs graphviz (`dot`) for SVG.

    With --lab or --doctor-json, each link, session and host is coloured by
    doctor's results (ok green, warn orange, fail red, unknown grey); hover over
    a line in the SVG for the checks that decided its colour.
    Exit 0 when drawn, 1 when the plan does not pass `check`, 2 on unusable input.
    """
    try:
        drawing = _drawing(plan, use_lab, lab_dir, birdc, doctor_json or [], output_format)
        if output is None:
            typer.echo(drawing, nl=False)
        else:
            write_atomically(output, drawing)
    except PlanError as error:
        # On stderr: standard output is the picture's place (`graph > plan.svg`).
        for finding in error.findings:
            typer.echo(clean(finding.line()), err=True)
        raise _fail(str(error), error.exit_code) from None
    except IbgpTunnelError as error:
        raise _fail(str(error), error.exit_code) from None
    except OSError as error:
        raise _fail(str(error), EXIT_BAD_INPUT) from None
