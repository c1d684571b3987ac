"""The autopeers' BIRD include, replaced as a whole and only when BIRD accepts it:
the new text is parsed (`bird -p`) within a copy of the running bird.conf that
includes it in place of the live include, then renamed over it and loaded
(`birdc configure`); if BIRD refuses it after all, the old text goes back and is
loaded again, so the peers that were up stay up."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.autopeer.files import write_atomic
from ibgp_tunnel.autopeer.run import ApplyError, run

_CONFIGURED = ("Reconfigured", "Reconfiguration in progress")


class IncludeRefused(ApplyError):
    """BIRD refused the new include; the old one is in place and loaded."""


@dataclass(frozen=True)
class Bird:
    config: Path  # the bird.conf BIRD runs, which includes `include`
    socket: Path
    bird: str = "bird"
    birdc: str = "birdc"

    def configure(self) -> str:
        done = run([self.birdc, "-s", str(self.socket), "configure"], check=False, timeout=60)
        return (done.stdout + done.stderr).strip()


def include_line(path: Path) -> str:
    return f'include "{path}";'


def check(bird: Bird, include: Path, text: str) -> None:
    """`bird -p` on bird.conf with `text` in place of `include`; IncludeRefused with
    BIRD's message if it does not parse. Nothing live is touched."""
    config = bird.config.read_text(encoding="utf-8")
    line = include_line(include)
    if line not in config:
        raise ApplyError(
            f"{bird.config} does not include {include}: is autopeer enabled in the plan "
            "this host was built from?"
        )
    with tempfile.TemporaryDirectory(prefix=".check-", dir=include.parent) as directory:
        candidate = Path(directory) / include.name
        candidate.write_text(text, encoding="utf-8")
        copy = Path(directory) / "bird.conf"
        copy.write_text(config.replace(line, include_line(candidate)), encoding="utf-8")
        done = run([bird.bird, "-p", "-c", str(copy)], check=False)
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().replace(directory, str(include.parent))
            raise IncludeRefused(f"bird -p refused the autopeer include: {message}")


def swap(bird: Bird, include: Path, text: str) -> None:
    """Check `text`, put it in place, load it; roll back to the old text on refusal."""
    old = include.read_text(encoding="utf-8") if include.exists() else ""
    if old == text:
        return
    check(bird, include, text)
    write_atomic(include, text, 0o644)
    answer = bird.configure()
    if any(word in answer for word in _CONFIGURED):
        return
    write_atomic(include, old, 0o644)
    again = bird.configure()
    rolled = "rolled back" if any(w in again for w in _CONFIGURED) else f"rollback: {again}"
    raise IncludeRefused(f"birdc configure refused the autopeer include ({rolled}): {answer}")


def remove_temps(include: Path) -> None:
    """Leftovers of a check interrupted by a crash."""
    for path in include.parent.glob(".check-*"):
        with contextlib.suppress(OSError):
            for inner in path.iterdir():
                os.unlink(inner)
            path.rmdir()
