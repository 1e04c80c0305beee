"""Split a headerless Synapse Link CSV text into records of string fields, with line numbers.

Uses the stdlib ``csv`` module over ``io.StringIO(text, newline="")``, which treats CR, LF and
CRLF as line ends (also CR-only files) and keeps line breaks inside quoted values. ``strict``
mode makes an unterminated quote or a stray character after a closing quote an error instead of
silently swallowing the rest of the file.

Records come in chunks (bounded memory: a chunk's Python strings are freed once its columns are
in Arrow), each parsed by one C-level ``list(islice(reader, n))``. When every record of a chunk
is one physical line, line numbers are implicit; otherwise each record's lines are found by
counting the line breaks inside its values. After a quoting error the rest of the file is
parsed record by record, so the error and every later record get their own line.
"""

from __future__ import annotations

import csv
import gc
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Dataverse multi-line text columns hold up to 1,048,576 characters; the csv default is 128 KiB.
_FIELD_SIZE_LIMIT = 1 << 30
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)
CHUNK_ROWS = 100_000


@dataclass
class Problem:
    """A record that could not be split into fields (physical lines ``start``..``end``)."""

    start: int
    end: int
    reason: str


@dataclass
class Records:
    """A chunk of records, each padded to the model's field count with ``""``."""

    rows: list[list[str]]
    first_line: int = 1  # line of rows[0] when ``starts`` is None (one line per record)
    starts: list[int] | None = None  # 1-based physical line where each row starts
    ends: list[int] | None = None  # ... and ends (None: same as the start)
    problems: list[Problem] = field(default_factory=list)

    def start_line(self, index: int) -> int:
        return self.first_line + index if self.starts is None else self.starts[index]

    def end_line(self, index: int) -> int:
        return self.start_line(index) if self.ends is None else self.ends[index]


class SourceText:
    """A file's bytes and, decoded on first use, its text and its physical lines.

    Bytes that are not UTF-8 are kept as lone surrogates (``surrogateescape``) so that only the
    records holding them are rejected; ``undecodable`` says whether that happened.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._text: str | None = None
        self.undecodable = False
        self._lines: list[str] | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            try:
                self._text = self.data.decode("utf-8-sig")
            except UnicodeDecodeError:
                self._text = self.data.decode("utf-8-sig", "surrogateescape")
                self.undecodable = True
        return self._text

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = io.StringIO(self.text, newline="").readlines()
        return self._lines

    def raw(self, start: int, end: int) -> str:
        """Lines ``start``..``end`` (1-based, inclusive) without the final line break."""
        text = "".join(self.lines[start - 1 : end])
        if text.endswith("\r\n"):
            return text[:-2]
        if text.endswith(("\r", "\n")):
            return text[:-1]
        return text


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: building millions of small lists triggers it for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def iter_records(
    source: SourceText,
    field_count: int,
    *,
    chunk_rows: int = CHUNK_ROWS,
    min_fields: int | None = None,
) -> Iterator[Records]:
    """Chunks of records of exactly ``field_count`` string fields.

    Records with at least ``min_fields`` (default ``field_count``) but fewer than
    ``field_count`` fields (rows written before columns were added) are padded with ``""``;
    blank lines are skipped; shorter or longer records, quoting errors and records holding
    bytes that are not UTF-8 become :class:`Problem` entries.
    """
    fit = _Fit(field_count, field_count if min_fields is None else min_fields)
    for records in _iter_records(source, fit, chunk_rows):
        yield _without_undecodable(records) if source.undecodable else records


def _iter_records(source: SourceText, fit: _Fit, chunk_rows: int) -> Iterator[Records]:
    field_count = fit.field_count
    if csv.field_size_limit() < _FIELD_SIZE_LIMIT:
        csv.field_size_limit(_FIELD_SIZE_LIMIT)
    reader = csv.reader(io.StringIO(source.text, newline=""), strict=True)
    consumed = 0  # physical lines read so far
    while True:
        try:
            rows = list(islice(reader, chunk_rows))
        except csv.Error:
            break  # re-read this chunk record by record to place the error
        if not rows:
            return
        if reader.line_num - consumed == len(rows):  # one line per record
            if all(length == field_count for length in set(map(len, rows))):
                yield Records(rows, first_line=consumed + 1)
            else:
                first = consumed + 1
                lines = list(range(first, first + len(rows)))
                yield _fit_rows(rows, fit, lines, lines)
        else:
            # A record spans 1 + (line breaks inside its quoted values) physical lines; unquoted
            # fields cannot hold one, so counting them places every record without a Python
            # step per record.
            try:
                joined = pa.array(["\x1f".join(row) for row in rows], pa.string())
            except (UnicodeEncodeError, pa.ArrowInvalid):
                break  # bytes that are not UTF-8: place records one by one instead
            spans = pc.add(pc.count_substring_regex(joined, r"\r\n|\r|\n"), 1)
            ends = np.cumsum(spans.to_numpy(zero_copy_only=False)) + consumed
            if not ends.size or int(ends[-1]) != reader.line_num:  # cannot happen; be safe
                break
            starts = ends - spans.to_numpy(zero_copy_only=False) + 1
            yield _fit_rows(rows, fit, starts.tolist(), ends.tolist())
        consumed = reader.line_num
    yield from _iter_tracking_lines(source, fit, consumed, chunk_rows)


def _fit_rows(rows: list[list[str]], fit: _Fit, starts: list[int], ends: list[int]) -> Records:
    kept = Records([], starts=[], ends=[])
    for index, row in enumerate(rows):
        verdict = fit(row)
        if verdict is None:
            kept.rows.append(row)
            kept.starts.append(starts[index])  # type: ignore[union-attr]
            kept.ends.append(ends[index])  # type: ignore[union-attr]
        elif verdict:
            kept.problems.append(Problem(starts[index], ends[index], verdict))
    return kept


def _iter_tracking_lines(
    source: SourceText, fit: _Fit, skip_lines: int, chunk_rows: int
) -> Iterator[Records]:
    """Record by record from line ``skip_lines + 1``, noting the lines each record spans."""
    reader = csv.reader(iter(source.lines[skip_lines:]), strict=True)
    chunk = Records([], starts=[], ends=[])
    previous_end = skip_lines
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = skip_lines + reader.line_num
            chunk.problems.append(Problem(previous_end + 1, max(end, previous_end + 1), _why(exc)))
            if end <= previous_end:  # no progress: the rest cannot be parsed
                break
            previous_end = end
            continue
        start, previous_end = previous_end + 1, skip_lines + reader.line_num
        verdict = fit(row)
        if verdict is None:
            chunk.rows.append(row)
            chunk.starts.append(start)  # type: ignore[union-attr]
            chunk.ends.append(previous_end)  # type: ignore[union-attr]
        elif verdict:
            chunk.problems.append(Problem(start, previous_end, verdict))
        if len(chunk.rows) >= chunk_rows:
            yield chunk
            chunk = Records([], starts=[], ends=[])
    if chunk.rows or chunk.problems:
        yield chunk


def _without_undecodable(records: Records) -> Records:
    kept = Records([], starts=[], ends=[], problems=records.problems)
    for index, row in enumerate(records.rows):
        start, end = records.start_line(index), records.end_line(index)
        bad = [str(n) for n, value in enumerate(row, start=1) if _UNDECODABLE.search(value)]
        if bad:
            kept.problems.append(Problem(start, end, f"field {', '.join(bad)}: not valid UTF-8"))
        else:
            kept.rows.append(row)
            kept.starts.append(start)  # type: ignore[union-attr]
            kept.ends.append(end)  # type: ignore[union-attr]
    kept.problems.sort(key=lambda problem: problem.start)
    return kept


@dataclass(frozen=True)
class _Fit:
    """How many fields a record must have: ``field_count`` (the model read with), of which
    ``min_fields`` at least (the folder's own model; Synapse Link writes every attribute of it)."""

    field_count: int
    min_fields: int

    def __call__(self, row: list[str]) -> str | None:
        """Pad a short row in place; None = keep, "" = skip (blank line), text = reject reason."""
        count, field_count = len(row), self.field_count
        if count == field_count:
            return None
        if count == 0:
            return ""
        if count < self.min_fields:
            return (
                f"{count} fields, but the folder's model.json declares {self.min_fields} attributes"
            )
        if count < field_count:
            row.extend([""] * (field_count - count))
            return None
        return f"{count} fields, but the model has only {field_count} attributes"


def _why(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return "unterminated quoted field: the closing quote is missing"
    if "expected after" in message:
        return "malformed quoting: a closing quote must be followed by ',' or the end of line"
    return f"malformed CSV: {message}"
