"""The option reference in docs/options.md, generated from the module's option
declarations through nixpkgs' lib.optionAttrSetToDocList (nixpkgs' lib from
the verified flake-input cache, see pinned.py).

    python python/tests/optionsdoc.py --write
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pinned

REPO = Path(__file__).resolve().parents[2]
OPTIONS_DOC = REPO / "docs" / "options.md"
BEGIN = "<!-- options:begin -->"
END = "<!-- options:end -->"


def option_list(hidden: bool = False) -> list[dict[str, Any]]:
    """The module's options (with `hidden`, the invisible ones too)."""
    shown = "true" if hidden else "o.visible"
    expression = f"""
      let
        lib = import {pinned.NIXPKGS_LIB};
        eval = import {REPO}/checks/lib/evaluate.nix {{
          inherit lib;
          modules = [ {pinned.SOPS_MODULE} {REPO}/modules/ibgp-tunnel ];
        }};
      in
      builtins.filter (o: {shown} && !o.internal)
        (lib.optionAttrSetToDocList eval.options.services.ibgpTunnel)
    """
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expression],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def _value(value: Any) -> str:
    if isinstance(value, dict) and "text" in value:
        return value["text"].strip()
    return json.dumps(value)


def _field(label: str, value: str) -> list[str]:
    if "\n" in value:
        return [
            f"- {label}:",
            "",
            "  ```nix",
            *(f"  {line}" for line in value.splitlines()),
            "  ```",
        ]
    return [f"- {label}: `{value}`"]


def markdown(options: list[dict[str, Any]]) -> str:
    lines = [BEGIN]
    for option in options:
        lines += ["", f"### `{option['name']}`", "", option["description"].strip(), ""]
        lines.append(f"- type: {option['type']}")
        for field in ("default", "example"):
            if field in option:
                lines += _field(field, _value(option[field]))
    lines += ["", END]
    return "\n".join(lines)


def generated_section(text: str) -> str:
    start = text.index(BEGIN)
    return text[start : text.index(END, start) + len(END)]


def main() -> int:
    if not pinned.present():
        print(pinned.MISSING_REASON, file=sys.stderr)
        return 2
    generated = markdown(option_list())
    text = OPTIONS_DOC.read_text()
    if "--write" in sys.argv:
        OPTIONS_DOC.write_text(text.replace(generated_section(text), generated))
        return 0
    print(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
