"""DOT text to SVG with graphviz's `dot`."""

from __future__ import annotations

import shutil
import subprocess

from ibgp_tunnel.errors import InputError, RenderError

DOT = "dot"
TIMEOUT_SECONDS = 60


def dot_binary() -> str:
    found = shutil.which(DOT)
    if found is None:
        raise InputError(
            "graphviz's `dot` is not on PATH; install graphviz (Debian: apt install graphviz, "
            "Nix: nix shell nixpkgs#graphviz, or run `nix run` of this flake, which brings it)"
        )
    return found


def render_svg(dot_text: str) -> str:
    """The SVG graphviz draws from `dot_text`."""
    try:
        done = subprocess.run(
            [dot_binary(), "-Tsvg"],
            input=dot_text,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(f"graphviz's dot took longer than {TIMEOUT_SECONDS}s; gave up") from None
    except OSError as error:
        raise InputError(f"cannot run {DOT}: {error.strerror or error}") from None
    if done.returncode != 0 or not done.stdout.lstrip().startswith("<"):
        said = done.stderr.strip() or "no output"
        raise RenderError(f"graphviz's dot could not draw the plan: {said}")
    return done.stdout
