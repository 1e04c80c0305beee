"""OData 4.0 literals, resource paths and key predicates as Dataverse reads them.

Strings are single-quoted with `''` for a literal quote; GUIDs, numbers, booleans, dates and
date-times are bare. The path arrives percent-decoded (ASGI `scope["path"]`), which is safe
because a quote inside a string literal is always doubled whether it was sent as `'` or `%27`:
splitting on `/`, `(`, `,` and `=` happens only outside quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})"
)
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


class LiteralError(ValueError):
    """A literal could not be read; `position` is 0-based in the text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Literal:
    """A parsed literal: kind is string|guid|int|decimal|double|bool|null|date|datetime."""

    kind: str
    value: object


def read_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string starting at text[start] == "'"; return (value, index after it)."""
    assert text[start] == "'"
    parts: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        j = text.find("'", i)
        if j < 0:
            break
        parts.append(text[i:j])
        if j + 1 < n and text[j + 1] == "'":
            parts.append("'")
            i = j + 2
            continue
        return "".join(parts), j + 1
    # ODataLib reports the position where it ran out of text (the example in filter-rows.md).
    raise LiteralError(
        f"There is an unterminated literal at position {len(text)} in '{text}'.", len(text)
    )


def read_literal(text: str, start: int) -> tuple[Literal, int]:
    """Read one literal at text[start:]; return it and the index after it."""
    if start >= len(text):
        raise LiteralError(f"Expected a literal at position {start} in '{text}'.", start)
    ch = text[start]
    if ch == "'":
        value, end = read_string(text, start)
        return Literal("string", value), end
    for pattern, kind in ((GUID_RE, "guid"), (DATETIME_RE, "datetime"), (DATE_RE, "date")):
        match = pattern.match(text, start)
        if match and not _continues_word(text, match.end()):
            raw = match.group(0)
            return Literal(kind, raw.lower() if kind == "guid" else raw), match.end()
    match = NUMBER_RE.match(text, start)
    if match and not _continues_word(text, match.end()):
        raw = match.group(0)
        if "e" in raw or "E" in raw:
            return Literal("double", float(raw)), match.end()
        if "." in raw:
            return Literal("decimal", Decimal(raw)), match.end()
        return Literal("int", int(raw)), match.end()
    for word, lit in (
        ("true", Literal("bool", True)),
        ("false", Literal("bool", False)),
        ("null", Literal("null", None)),
    ):
        if text.startswith(word, start) and not _continues_word(text, start + len(word)):
            return lit, start + len(word)
    raise LiteralError(f"Syntax error at position {start} in '{text}'.", start)


def _continues_word(text: str, index: int) -> bool:
    return index < len(text) and (text[index].isalnum() or text[index] in "_")


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on a one-character separator that is not inside a quoted string or parentheses."""
    if "'" not in text and (separator == "/" or "(" not in text):
        return text.split(separator)  # nothing quoted or nested: the common, fast case
    parts: list[str] = []
    depth = 0
    current = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            _, i = read_string(text, i)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(text[current:i])
            current = i + 1
        i += 1
    parts.append(text[current:])
    return parts


@dataclass(frozen=True)
class Segment:
    """One path segment: `name` or `name(<predicate>)`; predicate is the raw text inside."""

    name: str
    predicate: str | None


def parse_segment(raw: str) -> Segment:
    paren = raw.find("(")
    if paren < 0:
        return Segment(raw, None)
    if not raw.endswith(")"):
        raise LiteralError(f"Bad segment '{raw}'.", len(raw))
    return Segment(raw[:paren], raw[paren + 1 : -1])


def split_path(path: str) -> list[Segment]:
    """Split a decoded resource path (after the service root) into segments."""
    if not path:
        return []
    return [parse_segment(part) for part in split_outside_quotes(path, "/") if part != ""]


@dataclass(frozen=True)
class KeyPredicate:
    """Either a bare primary key value or named key parts (`name=literal,...`)."""

    primary: Literal | None
    parts: dict[str, Literal]


def parse_key_predicate(text: str) -> KeyPredicate:
    """Parse the inside of `set(...)`: a bare value, or `name=value` pairs."""
    items = split_outside_quotes(text, ",")
    if len(items) == 1 and "=" not in (_outside_quotes(items[0]) if "'" in text else text):
        literal, end = read_literal(items[0].strip(), 0)
        if end != len(items[0].strip()):
            raise LiteralError(f"Syntax error at position {end} in '{text}'.", end)
        return KeyPredicate(literal, {})
    parts: dict[str, Literal] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        value = value.strip()
        if not sep or not name or not value:
            raise LiteralError(f"Syntax error in key '{text}'.", 0)
        literal, end = read_literal(value, 0)
        if end != len(value):
            raise LiteralError(f"Syntax error at position {end} in '{text}'.", end)
        if name in parts:
            raise LiteralError(f"Duplicate key property '{name}' in '{text}'.", 0)
        parts[name] = literal
    return KeyPredicate(None, parts)


def _outside_quotes(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "'":
            _, i = read_string(text, i)
            out.append("''")
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def quote_string(value: str) -> str:
    """OData string literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def format_literal(value: object) -> str:
    """Format a Python value as an OData literal (strings quoted, others bare)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value if GUID_RE.fullmatch(value) else quote_string(value)
    return str(value)


def format_key_predicate(parts: dict[str, object]) -> str:
    """`name=literal,...` as it appears inside `set(...)` (not percent-encoded)."""
    return ",".join(f"{name}={format_literal(value)}" for name, value in parts.items())


def encode_path_literal(text: str) -> str:
    """Percent-encode a key predicate for a URL path (keeps OData punctuation readable)."""
    return quote(text, safe="'(),=-_.~:")
