"""Typed errors raised by the library and turned into exit codes by the CLI.

Messages are written for the person at the terminal: what to do about it first,
then what is wrong, in a line or two and without a traceback. The CLI prints
`str(error)` (and `error.details` with --verbose) and exits with `error.exit_code`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ibgp_tunnel.findings import Finding

EXIT_OK = 0
EXIT_FAILED = 1  # the input was read, and it is wrong (a check failed)
EXIT_BAD_INPUT = 2  # the input could not be used at all


class IbgpTunnelError(Exception):
    """Base class: every error the CLI reports cleanly.

    ``str(error)`` is short and starts with the fix; ``details`` holds what a
    tool printed (e.g. sops's full stderr), shown by the CLI only with --verbose.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str = "", *args: object, details: str = "") -> None:
        super().__init__(message, *args)
        self.details = details


class InputError(IbgpTunnelError):
    """Unusable input: a missing or unreadable file, not TOML, a tool not installed."""

    exit_code = EXIT_BAD_INPUT


class PlanError(IbgpTunnelError):
    """The plan was read but breaks rules; `findings` lists every problem."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings = list(findings)


class RenderError(IbgpTunnelError):
    """The Nix core refused to render (it threw, or evaluation failed)."""

    exit_code = EXIT_FAILED
