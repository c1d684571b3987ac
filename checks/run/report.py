"""How each part of scripts/flake-checks ends: what it ran here, and, said
every time, what only a real `nix flake check` (nixpkgs, the build sandbox,
KVM) can show. A part that could not run says why instead of passing."""

from __future__ import annotations

from collections.abc import Iterable


def section(title: str, lines: Iterable[str]) -> None:
    print(f"  {title}:")
    for line in lines:
        print(f"    - {line}")


def report(part: str, ran: Iterable[str], only_nix: Iterable[str]) -> None:
    print(f"checks.{part}:")
    section("ran here", ran)
    section("only a real `nix flake check` can show", only_nix)


def could_not_run(part: str, why: str, only_nix: Iterable[str]) -> int:
    """Prints why the part did not run; the exit code of a part that did not run."""
    print(f"checks.{part}: could not run here: {why}")
    section("only a real `nix flake check` can show", only_nix)
    return 1
