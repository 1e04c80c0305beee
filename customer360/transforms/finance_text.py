"""The byte- and text-level rules of finance files: lines, UTF-8, the header contract, amounts.

Kept apart from the parser (customer360/transforms/finance.py) so each rule is small and
testable on its own.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REQUIRED = ("cid", "spend")
OPTIONAL = ("month", "income")
CONTRACT = REQUIRED + OPTIONAL
EXPECTED_HEADER = f"{', '.join(REQUIRED)} (required), {', '.join(OPTIONAL)} (optional)"

_AMOUNT = r"^[0-9]{1,16}(\.[0-9]{1,2})?$"
# Thousands separators only when they cannot be a decimal comma: with a decimal point after
# them ("1,234.50") or in two groups or more ("1,234,567").
_GROUPED = r"^[0-9]{1,3}(,[0-9]{3})+\.[0-9]{1,2}$|^[0-9]{1,3}(,[0-9]{3}){2,}$"
_NEGATIVE = r"^-[0-9][0-9,]*(\.[0-9]+)?$"


class FileRejected(ValueError):
    """The whole file is set aside: `line` and `raw` say where (1 and the header text for a
    header that breaks the contract)."""

    def __init__(self, message: str, *, line: int = 0, raw: str = "") -> None:
        super().__init__(message)
        self.line = line
        self.raw = raw


@dataclass(frozen=True)
class Lines:
    """The non-empty physical lines of a file (CR, LF or CRLF endings): 1-based numbers and
    byte spans, in order. pyarrow numbers rows by non-empty lines; these map them back."""

    numbers: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def text(self, data: bytes, index: int) -> str:
        """The original text of the `index`-th non-empty line (invalid bytes as U+FFFD)."""
        return data[int(self.starts[index]) : int(self.ends[index])].decode("utf-8", "replace")


def line_spans(data: bytes) -> Lines:
    """Every physical line's span; the empty ones left out."""
    raw = np.frombuffer(data, dtype=np.uint8)
    is_cr = raw == 13
    is_lf = raw == 10
    crlf = is_lf & np.concatenate(([False], is_cr[:-1]))  # the LF of a CRLF ends nothing new
    ends = np.flatnonzero(is_cr | (is_lf & ~crlf))
    after = ends + 1
    if len(raw):
        after = after + crlf[np.minimum(ends + 1, len(raw) - 1)]
    starts = np.concatenate(([0], after)).astype(np.int64)
    ends = np.concatenate((ends, [len(raw)])).astype(np.int64)
    starts = starts[: len(ends)]
    non_empty = np.flatnonzero(ends - starts > 0)
    return Lines(non_empty + 1, starts[non_empty], ends[non_empty])


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based physical line
    raw: str  # its text, invalid bytes as U+FFFD
    reason: str


def invalid_utf8_lines(data: bytes, lines: Lines, source_file: str) -> list[BadLine]:
    """The lines holding bytes that are not UTF-8, each with the byte offset (in the file) of
    the first bad byte. Only called when the whole file does not decode."""
    bad = []
    for index in range(len(lines.numbers)):
        start, end = int(lines.starts[index]), int(lines.ends[index])
        try:
            data[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = start + exc.start
            reason = (
                f"{source_file}: not valid UTF-8 at byte offset {offset} of the file "
                f"(byte {exc.start + 1} of line {int(lines.numbers[index])}: "
                f"0x{data[offset]:02x})"
            )
            bad.append(BadLine(int(lines.numbers[index]), lines.text(data, index), reason))
    return bad


def unbalanced_quote_lines(data: bytes, lines: Lines) -> list[BadLine]:
    """The lines with an odd number of '"': a quoted field left open (finance files have no
    multi-line values), which the CSV reader would otherwise close silently at the line end."""
    if b'"' not in data:
        return []
    bad = []
    for index in range(len(lines.numbers)):
        if data.count(b'"', int(lines.starts[index]), int(lines.ends[index])) % 2:
            reason = "unterminated quoted field: the closing quote is missing"
            bad.append(BadLine(int(lines.numbers[index]), lines.text(data, index), reason))
    return bad


def blank_lines(data: bytes, lines: Lines, indexes: list[int]) -> bytes:
    """`data` with the given non-empty lines emptied (their line breaks kept, so the other
    lines keep their numbers; the CSV reader skips empty lines)."""
    out = bytearray(data)
    for index in sorted(indexes, reverse=True):
        del out[int(lines.starts[index]) : int(lines.ends[index])]
    return bytes(out)


def check_header(header_text: str, source_file: str) -> tuple[list[str], list[str]]:
    """The normalised column names (trimmed, lower case) and the extra ones. Raises
    FileRejected naming the file, the header found and the one expected when a required column
    is missing, a name repeats, or an unknown name looks like a misspelt contract column."""
    names = [n.strip().lower() for n in next(csv.reader([header_text]), [])]

    def reject(problem: str) -> FileRejected:
        return FileRejected(
            f"{source_file}: header [{', '.join(names)}] {problem}; "
            f"expected header: {EXPECTED_HEADER}",
            line=1,
            raw=header_text,
        )

    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise reject(f"repeats column(s) {', '.join(repeated)}")
    extra = [n for n in names if n not in CONTRACT]
    misspelt = {
        n: close[0] for n in extra if (close := difflib.get_close_matches(n, CONTRACT, 1, 0.7))
    }
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        hint = "".join(f" ('{n}' looks like '{c}')" for n, c in misspelt.items())
        raise reject(f"lacks required column(s) {', '.join(missing)}{hint}")
    if misspelt:
        what = ", ".join(f"'{n}' (did you mean '{c}'?)" for n, c in misspelt.items())
        raise reject(f"has misspelt column(s) {what}")
    return names, extra


def amount_problem(original: pa.Array, column: str) -> tuple[pa.Array, pa.Array]:
    """(the amounts as plain digits, per row the reason or null). Quotes the ORIGINAL field
    text. A comma is read only as an unambiguous thousands separator; anything else with a
    comma ("12,3", "1,234") is a reject, never guessed."""
    values = pc.utf8_trim_whitespace(original)
    grouped = pc.match_substring_regex(values, _GROUPED)
    plain = pc.if_else(grouped, pc.replace_substring(values, ",", ""), values)
    ok = pc.or_(pc.match_substring_regex(plain, _AMOUNT), pc.equal(values, ""))
    message = pc.if_else(
        pc.match_substring_regex(values, _NEGATIVE),
        "must be a non-negative amount",
        pc.if_else(
            pc.match_substring_regex(values, r"^[0-9.,]*,[0-9.,]*$"),
            "has a ',' that cannot be read unambiguously (decimal comma or thousands "
            "separator?); amounts use '.' for decimals",
            "is not an amount (max 2 decimals)",
        ),
    )
    text = pc.binary_join_element_wise(f"{column} '", original, "' ", message, "")
    return plain, pc.if_else(ok, pa.scalar(None, pa.string()), text)


def pattern_problem(
    original: pa.Array, column: str, pattern: str, message: str, allow_blank: bool
) -> pa.Array:
    """Per row: null when the trimmed value matches, else the reason quoting the original."""
    values = pc.utf8_trim_whitespace(original)
    ok = pc.match_substring_regex(values, pattern)
    if allow_blank:
        ok = pc.or_(ok, pc.equal(values, ""))
    text = pc.binary_join_element_wise(f"{column} '", original, f"' {message}", "")
    return pc.if_else(ok, pa.scalar(None, pa.string()), text)
