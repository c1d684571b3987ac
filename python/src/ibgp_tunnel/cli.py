"""The `ibgp-tunnel` command line: thin commands over the library modules.

Exit codes: 0 ok, 1 a check failed (or the Nix core refused), 2 unusable input.
Library errors are typed (errors.py) and caught here, at the boundary, so bad
input gives a message and never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ibgp_tunnel import __version__, formats, schema, vmtest
from ibgp_tunnel.check import check_file
from ibgp_tunnel.errors import EXIT_BAD_INPUT, EXIT_FAILED, IbgpTunnelError, PlanError
from ibgp_tunnel.findings import Finding, Severity, errors
from ibgp_tunnel.render import host_spec, render_host
from ibgp_tunnel.scaffold import init_project, next_steps

DEFAULT_PLAN = Path("hosts/plan.toml")
F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="ibgp-tunnel",
    help="Plan, check, key and render an iBGP-over-WireGuard network (reflector VPS, "
    "client routers, DN42 peering) for NixOS. The plan, hosts/plan.toml, is the single "
    "source of truth; exit codes: 0 ok, 1 check failed, 2 unusable input.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts mention TOML tables like [hosts]: print them, do not parse markup.
    rich_markup_mode=None,
)


def _say(text: str, *, err: bool = False) -> None:
    typer.echo(text, err=err, nl=not text.endswith("\n"))


def _print_findings(findings: Sequence[Finding]) -> None:
    for finding in findings:
        _say(finding.line())


class _Run:
    """Per-invocation switches; the app's callback resets them on every run."""

    verbose = False


def _verbose() -> bool:
    return _Run.verbose


def _report(error: IbgpTunnelError) -> None:
    """The message (fix first); a tool's full output only with --verbose."""
    if not error.details:
        _say(f"error: {error}", err=True)
    elif _verbose():
        _say(f"error: {error}", err=True)
        _say(error.details, err=True)
    else:
        _say(f"error: {error} (--verbose shows sops's output)", err=True)


def reported(command: F) -> F:
    """Turn the library's typed errors into a message on stderr and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PlanError as error:
            _print_findings(error.findings)
            _say(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
        except IbgpTunnelError as error:
            _report(error)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        _say(f"ibgp-tunnel {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="On errors, also print what the tools (sops) said in full."
        ),
    ] = False,
) -> None:
    """Plan, check, key and render an iBGP-over-WireGuard network for NixOS."""
    _Run.verbose = verbose


# --- check -------------------------------------------------------------------


def _summary(plan: Path, findings: Sequence[Finding]) -> str:
    n_errors = len(errors(findings))
    n_warnings = sum(1 for f in findings if f.severity is Severity.WARNING)
    counts = f"{n_errors} error{'s' * (n_errors != 1)}, {n_warnings} warning" + "s" * (
        n_warnings != 1
    )
    return f"{plan}: {'invalid' if n_errors else 'valid'} ({counts})"


@app.command(short_help="Validate a plan: shape, then network rules.")
def check(
    plan: Annotated[Path, typer.Argument(help="The plan file.", show_default=True)] = DEFAULT_PLAN,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the findings as JSON instead of lines.")
    ] = False,
) -> None:
    """Validate a plan: its shape against the JSON Schema, then the network rules.

    Prints one line per finding (severity, TOML path, what to do) and exits 0 when
    the plan is valid (warnings allowed), 1 when it is not, 2 when the file cannot
    be used (missing, unreadable, not TOML).
    """
    try:
        findings = check_file(plan)
    except IbgpTunnelError as error:
        if json_output:
            _say(json.dumps({"plan": str(plan), "valid": False, "error": str(error)}))
        else:
            _say(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    valid = not errors(findings)
    if json_output:
        data = {"plan": str(plan), "valid": valid, "findings": [f.as_dict() for f in findings]}
        _say(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print_findings(findings)
        _say(_summary(plan, findings))
    if not valid:
        raise typer.Exit(EXIT_FAILED)


# --- schema ------------------------------------------------------------------


@app.command("schema", short_help="Print the plan's JSON Schema.")
def schema_command() -> None:
    """Print the plan's JSON Schema, generated from the pydantic models.

    The committed copy (python/src/ibgp_tunnel/plan.schema.json) is what `check`
    and editors use (a plan's first line `#:schema <path>` points taplo / VS Code
    at it); after changing the models, refresh it with
    `ibgp-tunnel schema > python/src/ibgp_tunnel/plan.schema.json`.
    """
    _say(schema.to_text(schema.generate()))


# --- init --------------------------------------------------------------------


@app.command(short_help="Start a host flake: flake.nix, plan, hosts, .sops.yaml.")
@reported
def init(
    directory: Annotated[
        Path, typer.Argument(help="Project directory to create the files in.")
    ] = Path("."),
    age_recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--age-recipient",
            metavar="AGE1...",
            help="An age recipient (age1...) that may decrypt the secrets; repeat for several. "
            "Without it .sops.yaml holds a placeholder to replace.",
        ),
    ] = None,
) -> None:
    """Start a host flake: the files `nix flake init -t <ibgp-tunnel>` writes.

    flake.nix (one nixosConfiguration and one deploy-rs node per host of the plan),
    a commented hosts/plan.toml with one reflector and one client joined by one link
    (its IPv6 a fresh random ULA), hosts/common.nix and hosts/<name>/ for each host,
    and a .sops.yaml that makes sops encrypt secrets/*.yaml for your age recipients.
    Existing files are never overwritten (exit 2, naming the file; nothing written).
    """
    written = init_project(directory, list(age_recipient or []))
    for path in written.files:
        _say(f"wrote {path}")
    _say("next:")
    for number, step in enumerate(next_steps(directory, written, bool(age_recipient)), start=1):
        _say(f"  {number}. {step}")


# --- render ------------------------------------------------------------------


class Format(StrEnum):
    json = "json"
    bird = "bird"
    nft = "nft"
    wg = "wg"
    spec = "spec"


@app.command(short_help="Show a host's configuration, from the Nix core.")
@reported
def render(
    plan: Annotated[Path, typer.Argument(help="The plan file.")],
    host: Annotated[str, typer.Argument(help="A host name from the plan's [hosts].")],
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="json: every artifact; bird: bird.conf; nft: the nftables table; "
            "wg: wg setconf-style text per interface; spec: the host spec (module options).",
        ),
    ] = Format.json,
    skip_check: Annotated[
        bool, typer.Option("--no-check", help="Render even if `check` finds errors.")
    ] = False,
) -> None:
    """Show what a host will run, as the Nix core renders it (needs nix-instantiate).

    The plan is checked first; errors stop the render (exit 1) unless --no-check.
    """
    if not skip_check:
        findings = check_file(plan)
        if errors(findings):
            raise PlanError(f"{plan} does not pass `ibgp-tunnel check`; fix it first", findings)
    if output_format is Format.spec:
        _say(formats.as_json(host_spec(plan, host)))
        return
    _say(formats.FORMATS[output_format.value](render_host(plan, host)))


# --- keys, age-recipient (keys/: generate, sops, age_recipient) ---------------
# These commands wrap the key modules; their errors are IbgpTunnelError
# subclasses except age_recipient.AgeKeyError (a ValueError), caught below.

from ibgp_tunnel import keys  # noqa: E402
from ibgp_tunnel.keys import age_recipient  # noqa: E402
from ibgp_tunnel.paths import defaults  # noqa: E402

# Built from defaults.toml so the secret names are written down once.
_KEYS_HELP = f"""Create missing WireGuard keys and PSKs, encrypted with sops.

Per host a private key in secrets/<host>.yaml ({defaults()["secret_private_key"]}),
per link a PSK in both ends' files ({defaults()["secret_psk_prefix"]}<link>); public
keys go into the plan, comments kept. A host with DN42 tunnels (dn42_peers with a
public_key) also gets its DN42 key (wg_dn42/private_key) and, per peer with
preshared_key = true, a PSK (wg_dn42/psk/<peer>), and our DN42 public key goes
into the plan (hosts.<host>.dn42_public_key); the run names each DN42 peer to be
given a new public key or PSK (`ibgp-tunnel dn42 peer-info` prints the rest).
Existing keys are kept unless --rotate names them: host:NAME and link:NAME the
iBGP ones, dn42:HOST our DN42 key on HOST, dn42:HOST:PEER the PSK with PEER
(a host rotation leaves its DN42 key alone: DN42 peers must be told).
Plaintext never touches the disk: every value sops returns must be ciphertext,
or nothing is written (a .sops.yaml rule with encrypted_regex and the like is
named, with the fix). One run per project at a time; a run replaces
all its files or none, and the next run finishes or rolls back one that was
killed.
"""


@app.command("keys", short_help="Create missing keys and PSKs (sops).", help=_KEYS_HELP)
@reported
def keys_command(
    plan: Annotated[Path, typer.Argument(help="The plan file.")] = DEFAULT_PLAN,
    rotate: Annotated[
        list[str] | None,
        typer.Option(
            "--rotate",
            metavar="NAME",
            help="Replace on purpose the key of a host or the PSK of a link: NAME, "
            "host:NAME or link:NAME; our DN42 key on a host: dn42:HOST, a DN42 PSK: "
            "dn42:HOST:PEER; repeat for several.",
        ),
    ] = None,
    secrets_dir: Annotated[
        Path | None,
        typer.Option(help="Where secrets/<host>.yaml live (default: next to .sops.yaml)."),
    ] = None,
    sops_config: Annotated[
        Path | None,
        typer.Option(help="The .sops.yaml to use (default: the nearest above the plan)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print what was done as JSON.")
    ] = False,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            metavar="SECONDS",
            min=0,
            help="How long to wait for another `keys` run on the same project before "
            "giving up (exit 2, nothing changed).",
        ),
    ] = keys.DEFAULT_LOCK_TIMEOUT,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="On errors, also print sops's full output."),
    ] = False,
) -> None:
    _Run.verbose = _Run.verbose or verbose
    default_secrets, default_sops = keys.project_layout(plan)
    report = keys.generate_keys(
        plan,
        secrets_dir or default_secrets,
        sops_config or default_sops,
        rotate=list(rotate or []),
        lock_timeout=lock_timeout,
        on_wait=lambda message: _say(f"{message}…", err=True),
    )
    if json_output:
        _say(json.dumps(report.to_dict(), indent=2))
        return
    if report.recovered:
        _say(f"recovered: {report.recovered}")
    for action in report.secrets:
        _say(f"{action.action}: {action.host}: {action.secret}")
    for path in report.files_written:
        _say(f"wrote {path}")
    if not report.files_written:
        _say("nothing to do: every key and PSK exists")
    for notice in report.dn42_notices:
        _say(_dn42_notice_line(plan, notice))


def _dn42_notice_line(plan: Path, notice: keys.Dn42Notice) -> str:
    # The PSK is named, never printed: it goes to the peer out of band.
    given = []
    if notice.public_key:
        given.append(f"our new DN42 public key {notice.public_key}")
    if notice.psk:
        given.append(f"the new PSK ({notice.psk_secret} in the host's sops file)")
    return (
        f"tell DN42 peer {notice.peer} of {notice.host}: {' and '.join(given)}; "
        f"`ibgp-tunnel dn42 peer-info {plan} {notice.host} {notice.peer}` prints every "
        "detail and how to read the PSK; until the peer has them its tunnel is down"
    )


@app.command("age-recipient", short_help="The age recipient of an SSH host key.")
@reported
def age_recipient_command(
    ssh_key: Annotated[
        Path,
        typer.Option(
            "--ssh-key",
            help="An ed25519 SSH public key file, e.g. a host's "
            "/etc/ssh/ssh_host_ed25519_key.pub ('-' reads stdin).",
        ),
    ],
) -> None:
    """Print the age recipient (age1...) for an ed25519 SSH public key.

    sops-nix decrypts on the host with its SSH host key (sops.age.sshKeyPaths);
    put this recipient into .sops.yaml so `keys` encrypts for that host.
    """
    try:
        text = sys.stdin.read() if str(ssh_key) == "-" else ssh_key.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        _say(f"error: cannot read {ssh_key}: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    try:
        _say(age_recipient.ssh_to_age(text))
    except age_recipient.AgeKeyError as error:
        _say(f"error: {ssh_key}: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


# --- vmtest ------------------------------------------------------------------


@app.command("vmtest", short_help="Run the flake's NixOS VM test (Nix + KVM).")
@reported
def vmtest_command(
    flake: Annotated[Path, typer.Option(help="The ibgp-tunnel flake checkout.")] = Path("."),
    check: Annotated[str, typer.Option(help="Which of the flake's checks to build.")] = "vm",
) -> None:
    """Build the flake's NixOS VM test (two VMs: the reflector and the client, a LAN
    host and a host in an announced prefix) and stream its log. Needs Nix with
    flakes, a reachable or cached nixpkgs, and /dev/kvm; exit 2 says which is missing."""
    vmtest.run_vm_test(flake, check)


# --- lab: the namespace lab (root only); its commands live in lab/cli.py -------

from ibgp_tunnel.lab.cli import lab_app  # noqa: E402

app.add_typer(
    lab_app,
    name="lab",
    help=lab_app.info.help,
    short_help="Run a plan in network namespaces (root).",
)

# --- flake-inputs: the verified cache module evaluation reads (flake_inputs_cli.py)

from ibgp_tunnel.flake_inputs_cli import flake_inputs_app  # noqa: E402

app.add_typer(
    flake_inputs_app,
    name="flake-inputs",
    help=flake_inputs_app.info.help,
    short_help="Development: the verified cache of pinned flake inputs.",
)

# --- doctor: diagnose a live host against the plan (doctor/cli.py) -------------

from ibgp_tunnel.doctor.cli import doctor_command  # noqa: E402

app.command("doctor", short_help="Diagnose a live host (or lab host) against the plan.")(
    doctor_command
)

# --- graph: a picture of the plan, coloured by doctor's results (graph/cli.py) ---

from ibgp_tunnel.graph.cli import graph_command  # noqa: E402

app.command("graph", short_help="Draw the plan as an SVG (graphviz), coloured by doctor.")(
    graph_command
)


# --- dn42: DN42 peering commands (dn42_cli.py: peer-info) -----------------------

from ibgp_tunnel.dn42_cli import dn42_app  # noqa: E402

app.add_typer(dn42_app, name="dn42", help=dn42_app.info.help, short_help="DN42 peering details.")


if __name__ == "__main__":  # `python -m ibgp_tunnel.cli`, as the lab tests run it
    app()
