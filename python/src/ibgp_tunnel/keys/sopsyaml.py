"""A small reader for the block-style YAML that sops writes (and most .sops.yaml use).

Why not a YAML library: the helper has none among its dependencies, and all it
needs to read is (a) the encrypted files sops just produced, to prove every
secret value is ciphertext, and (b) ``.sops.yaml``, to name the rule that would
have left a value in plaintext. Both are block mappings and sequences of
scalars. Anything outside that subset (flow collections other than ``{}``/``[]``,
anchors, tags, multi-line plain scalars, complex keys) raises YamlSubsetError:
callers then fail closed (refuse to write) or fall back to a vaguer message,
never guess.

Scalars are returned as strings (``null``/``~``/empty as None); the caller only
compares text, so no type resolution is needed.

Functions:
    parse(text: str) -> Any        # dict / list / str / None
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class YamlSubsetError(ValueError):
    """The text uses YAML this reader does not handle (or is not YAML)."""


@dataclass
class _Line:
    number: int  # 1-based, for messages
    indent: int
    text: str  # without the indentation


_KEY_PLAIN = re.compile(r"([^\s#'\"\[\]{},&*!|>?%@`-][^#]*?|-[^\s#][^#]*?)\s*:(?:\s+|$)")
_NULLS = {"", "~", "null", "Null", "NULL"}


def _significant(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


class _Reader:
    def __init__(self, text: str) -> None:
        if re.search(r"^ *\t", text, re.MULTILINE):
            raise YamlSubsetError("tabs used for indentation")
        self.raw = text.splitlines()
        self.pos = 0

    def peek(self) -> _Line | None:
        while self.pos < len(self.raw):
            line = self.raw[self.pos]
            if _significant(line) and line.strip() not in ("---",):
                stripped = line.lstrip(" ")
                return _Line(self.pos + 1, len(line) - len(stripped), stripped.rstrip())
            self.pos += 1
        return None

    def fail(self, line: _Line | None, why: str) -> YamlSubsetError:
        where = f"line {line.number}" if line else "end of text"
        return YamlSubsetError(f"{where}: {why}")

    # --- nodes -------------------------------------------------------------

    def node(self, min_indent: int) -> Any:
        line = self.peek()
        if line is None or line.indent < min_indent:
            return None
        if line.text == "..." and line.indent == 0:
            return None
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(line.indent)
        if _split_key(line.text) is not None:
            return self.mapping(line.indent)
        self.pos += 1
        value = _scalar(line.text, line)
        if (after := self.peek()) is not None and after.indent >= min_indent and min_indent > 0:
            raise self.fail(after, "a multi-line plain scalar")
        return value

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while (line := self.peek()) is not None and line.indent == indent:
            split = _split_key(line.text)
            if split is None:
                raise self.fail(line, "expected 'key: value'")
            key, rest = split
            if key in result:
                raise self.fail(line, f"duplicate key {key!r}")
            self.pos += 1
            result[key] = self.value_after(rest, indent, line, in_mapping=True)
        if line is not None and line.indent > indent:
            raise self.fail(line, "unexpected indentation")
        return result

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while (line := self.peek()) is not None and line.indent == indent:
            if not (line.text == "-" or line.text.startswith("- ")):
                break
            rest = line.text[1:]
            inner = rest.lstrip(" ")
            if not inner or inner.startswith("#"):
                self.pos += 1
                result.append(self.node(indent + 1))
                continue
            column = indent + 1 + (len(rest) - len(inner))
            if _split_key(inner) is not None or inner == "-" or inner.startswith("- "):
                # "- key: value" / "- - item": a collection aligned with its first entry.
                self.raw[self.pos] = " " * column + inner
                result.append(self.node(column))
                continue
            self.pos += 1
            result.append(self.value_after(inner, indent, line, in_mapping=False))
        if line is not None and line.indent > indent:
            raise self.fail(line, "unexpected indentation")
        return result

    def value_after(self, rest: str, indent: int, line: _Line, *, in_mapping: bool) -> Any:
        rest = _strip_comment(rest)
        if rest[:1] in ("|", ">"):
            return self.block_scalar(rest, indent, line)
        if rest:
            value = _scalar(rest, line)
            after = self.peek()
            if after is not None and after.indent > indent:
                raise self.fail(after, "a multi-line plain scalar or unexpected indentation")
            return value
        after = self.peek()
        if after is None:
            return None
        if after.indent > indent:
            return self.node(indent + 1)
        if in_mapping and after.indent == indent and after.text.startswith("- "):
            return self.sequence(indent)  # "key:\n- item" (sequence not indented)
        return None

    def block_scalar(self, header: str, indent: int, line: _Line) -> str:
        match = re.fullmatch(r"([|>])([+-]?)([1-9]?)([+-]?)", header)
        if match is None:
            raise self.fail(line, f"block scalar header {header!r}")
        style, chomp = match.group(1), match.group(2) or match.group(4)
        lines: list[str] = []
        block_indent = int(match.group(3)) + indent if match.group(3) else None
        while self.pos < len(self.raw):
            raw = self.raw[self.pos]
            if raw.strip() == "":
                lines.append("")
                self.pos += 1
                continue
            current = len(raw) - len(raw.lstrip(" "))
            if block_indent is None:
                if current <= indent:
                    break
                block_indent = current
            if current < block_indent:
                break
            lines.append(raw[block_indent:])
            self.pos += 1
        body = lines
        while body and body[-1] == "":
            body = body[:-1]
        text = _fold(body) if style == ">" else "\n".join(body)
        if chomp == "-":
            return text
        if chomp == "+":
            return "\n".join(lines) + "\n"
        return text + "\n" if body else ""


def _fold(lines: list[str]) -> str:
    out = ""
    for index, line in enumerate(lines):
        if index == 0:
            out = line
        elif line == "" or lines[index - 1] == "" or line.startswith(" "):
            out += "\n" + line if line else "\n"
        else:
            out += " " + line
    return out


def _strip_comment(text: str) -> str:
    if text[:1] in ("'", '"'):
        end = _quoted_end(text, text[0])
        if end is not None and re.fullmatch(r"\s+#.*", text[end:]):
            return text[:end]
        return text.rstrip()
    match = re.search(r"(^|\s)#", text)
    return (text[: match.start()] if match else text).rstrip()


def _split_key(text: str) -> tuple[str, str] | None:
    """``key: rest`` → (key, rest); None when the line is not a mapping entry."""
    if text[:1] == '"':
        end = _quoted_end(text, '"')
        if end is not None and re.match(r"\s*:(\s|$)", text[end:]):
            colon = text.index(":", end)
            return _double_quoted(text[:end]), text[colon + 1 :].strip()
        return None
    if text[:1] == "'":
        end = _quoted_end(text, "'")
        if end is not None and re.match(r"\s*:(\s|$)", text[end:]):
            colon = text.index(":", end)
            return text[1 : end - 1].replace("''", "'"), text[colon + 1 :].strip()
        return None
    match = _KEY_PLAIN.match(text)
    if match is None or match.group(1).startswith(("? ", "- ")):
        return None
    return match.group(1), text[match.end() :].strip()


def _quoted_end(text: str, quote: str) -> int | None:
    """Index just past the closing quote of a scalar starting at text[0]."""
    index = 1
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and text[index + 1 : index + 2] == "'":
                index += 2
                continue
            return index + 1
        index += 1
    return None


def _double_quoted(token: str) -> str:
    try:
        value = json.loads(token)
    except json.JSONDecodeError as exc:
        raise YamlSubsetError(f"a double-quoted scalar this reader cannot decode: {token}") from exc
    if not isinstance(value, str):
        raise YamlSubsetError(f"not a string: {token}")
    return value


def _scalar(text: str, line: _Line) -> Any:
    text = _strip_comment(text)
    if text[:1] == '"':
        end = _quoted_end(text, '"')
        if end is None or text[end:].strip():
            raise YamlSubsetError(f"line {line.number}: unterminated or trailing text")
        return _double_quoted(text[:end])
    if text[:1] == "'":
        end = _quoted_end(text, "'")
        if end is None or text[end:].strip():
            raise YamlSubsetError(f"line {line.number}: unterminated or trailing text")
        return text[1 : end - 1].replace("''", "'")
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text[:1] in ("[", "{", "&", "*", "!", "|", ">", "%", "@", "`"):
        raise YamlSubsetError(f"line {line.number}: {text[:1]!r} (flow, anchor or tag)")
    if text in _NULLS:
        return None
    return text


def parse(text: str) -> Any:
    """The document as dict / list / str / None; YamlSubsetError outside the subset."""
    reader = _Reader(text)
    value = reader.node(0)
    rest = reader.peek()
    if rest is not None and not (rest.text == "..." and rest.indent == 0):
        raise reader.fail(rest, "text after the document's end (or bad indentation)")
    return value
