"""Text from hosts and recordings, made safe to print on a terminal.

Doctor quotes what tools printed (BIRD's reasons, error lines, rule text), and
`--from-outputs` reads recordings anyone may have written. A terminal obeys the
escape sequences in such text: it could recolour or hide lines, forge an "ok",
retitle the window or (some terminals) write files. Every line doctor prints goes
through `clean` first.
"""

from __future__ import annotations

import re

# Whole sequences first, so their parameters do not survive as stray text.
_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase line
    r"|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]"  # other two-byte escapes (charset, reset)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x9c)?"  # 8-bit OSC, DCS, SOS, PM, APC
)
# Then any control left: C0 but newline and tab, DEL, C1, and the bidirectional
# overrides that make a line read differently from what it holds.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """`text` without terminal escape sequences and control characters (but \\n, \\t)."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))
