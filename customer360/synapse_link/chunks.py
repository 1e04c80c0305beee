"""A CSV partition file as chunks of Arrow string columns (empty field → null) with line numbers.

Two ways to get there, same result:

- the stdlib ``csv`` parser (``csv_records``): the reference. It handles everything: multi-line
  values, blank lines, short rows (columns added later), long rows, quoting errors, bad UTF-8;
- pyarrow's multi-threaded CSV parser, used only when the file is provably simple: valid UTF-8,
  every record has exactly the model's field count, the records' line breaks add up to the
  file's physical lines (so each record's lines are known: no blank lines), and every record
  is well-formed strict CSV (checked with one RE2 pass). Anything else — or any doubt — goes to
  the stdlib parser, so both paths accept and reject exactly the same files.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from customer360.synapse_link.csv_records import Problem, Records, SourceText, iter_records

_SEPARATOR = "\x00"
_MAX_JOINED_CHARS = 1 << 29  # keeps a joined column below Arrow's 2 GiB string offsets
_ARROW_BLOCK_SIZE = 8 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
# One strict CSV field: quoted (inner quotes doubled, then a delimiter or the end), or unquoted
# and not starting with a quote (a quote later in an unquoted field is literal, as in csv).
_FIELD = r'(?:"(?:[^"]|"")*"|[^,"\r\n][^,\r\n]*|)'
_STRICT_RECORD = rf"^{_FIELD}(?:,{_FIELD})*$"


@dataclass
class StringChunk:
    """Rows ``[0, row_count)`` of a chunk as string columns in model order."""

    columns: list[pa.Array]
    row_count: int
    first_line: int = 1  # physical line of row 0 when ``starts`` is None (one line per row)
    starts: list[int] | None = None
    ends: list[int] | None = None
    problems: list[Problem] = field(default_factory=list)

    def start_line(self, index: int) -> int:
        return self.first_line + index if self.starts is None else self.starts[index]

    def end_line(self, index: int) -> int:
        return self.start_line(index) if self.ends is None else self.ends[index]


def string_chunks(
    source: SourceText, field_count: int, min_fields: int | None = None
) -> Iterator[StringChunk]:
    """The chunks of one file, through pyarrow when it is provably simple, else the stdlib.
    Records need ``min_fields`` fields at least (default: all ``field_count``)."""
    fast = _arrow_chunks(source.data, field_count)
    if fast is not None:
        yield from fast
        return
    for records in iter_records(source, field_count, min_fields=min_fields):
        yield _transpose(records, field_count)


# ---------------------------------------------------------------------------------------------
# stdlib path


def _transpose(records: Records, field_count: int) -> StringChunk:
    row_count = len(records.rows)
    columns = list(zip(*records.rows, strict=True)) or [()] * field_count
    records.rows = []  # free the row lists while the columns are built
    arrays = []
    for position in range(field_count):
        arrays.append(empty_as_null(string_array(columns[position])))
        columns[position] = ()
    return StringChunk(
        arrays,
        row_count,
        first_line=records.first_line,
        starts=records.starts,
        ends=records.ends,
        problems=records.problems,
    )


def string_array(values: tuple[str, ...] | list[str]) -> pa.Array:
    """A non-null Arrow string array from Python strings (joined once, split in C++)."""
    if not values:
        return pa.array([], pa.string())
    joined = _SEPARATOR.join(values)
    if len(joined) > _MAX_JOINED_CHARS or joined.count(_SEPARATOR) != len(values) - 1:
        return pa.array(values, pa.string())  # a value holds NUL, or the column is huge
    return pc.split_pattern(pa.array([joined], pa.string()), _SEPARATOR).flatten()


def empty_as_null(strings: pa.Array) -> pa.Array:
    """Empty strings become nulls (an empty CSV field is a null in Synapse Link exports)."""
    return pc.if_else(pc.not_equal(strings, ""), strings, pa.scalar(None, strings.type))


# ---------------------------------------------------------------------------------------------
# pyarrow path


def _arrow_chunks(data: bytes, field_count: int) -> list[StringChunk] | None:
    buffer = pa.py_buffer(data)
    if data.startswith(_UTF8_BOM):
        if data.startswith(_UTF8_BOM, len(_UTF8_BOM)):
            return None  # Arrow would drop a second BOM too; the stdlib keeps it as text
        buffer = buffer.slice(len(_UTF8_BOM))
    if buffer.size == 0:
        return []
    names = [f"c{i}" for i in range(field_count)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(buffer),
            read_options=pacsv.ReadOptions(column_names=names, block_size=_ARROW_BLOCK_SIZE),
            parse_options=pacsv.ParseOptions(
                delimiter=",",
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                check_utf8=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # ragged rows, bad UTF-8, ...: the stdlib parser says exactly what
    lines = _physical_lines(buffer, has_cr=b"\r" in data)
    if len(lines) == table.num_rows:  # one line per record: line i + 1 is row i
        starts = None
        records = lines
    else:
        # A record spans 1 + (line breaks inside its quoted values) lines. If that does not add
        # up (a blank line was skipped, say), the stdlib parser takes over.
        breaks = functools.reduce(
            pc.add,
            [
                pc.fill_null(pc.count_substring_regex(column, r"\r\n|\r|\n"), 0)
                for column in table.columns
            ],
        )
        spans = pc.add(breaks, 1).to_numpy()
        ends = np.cumsum(spans)
        if not ends.size or int(ends[-1]) != len(lines):
            return None
        offsets = pa.array(np.concatenate([[0], ends]).astype(np.int32))
        records = pc.binary_join(pa.ListArray.from_arrays(offsets, lines), "\n")
        starts = (ends - spans + 1).tolist()
    if b'"' in data and not pc.all(pc.match_substring_regex(records, _STRICT_RECORD)).as_py():
        return None  # a stray character after a closing quote, an unterminated quote
    chunks = []
    row = 0
    for batch in table.to_batches():
        rows = batch.num_rows
        if starts is None:
            chunk = StringChunk(list(batch.columns), rows, first_line=row + 1)
        else:
            chunk = StringChunk(
                list(batch.columns),
                rows,
                starts=starts[row : row + rows],
                ends=[int(end) for end in ends[row : row + rows]],
            )
        chunks.append(chunk)
        row += rows
    return chunks


def _physical_lines(buffer: pa.Buffer, *, has_cr: bool) -> pa.Array:
    """The file's lines without their CR / LF / CRLF endings (validated UTF-8 by now)."""
    large = buffer.size >= 2**31 - 1
    offsets = np.array([0, buffer.size], dtype=np.int64 if large else np.int32)
    whole = pa.Array.from_buffers(
        pa.large_string() if large else pa.string(), 1, [None, pa.py_buffer(offsets), buffer]
    )
    if has_cr:
        lines = pc.split_pattern_regex(whole, r"\r\n|\r|\n").flatten()
    else:
        lines = pc.split_pattern(whole, "\n").flatten()
    last = lines[len(lines) - 1].as_py()
    return lines.slice(0, len(lines) - 1) if last == "" else lines
