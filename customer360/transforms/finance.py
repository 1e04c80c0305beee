"""Customer finance files: parse dropped CSVs (bytes → typed Arrow + rejected rows) and shape
them into one row per customer and month (Spark)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from customer360.bronze.drops import CONTENT_HASH_COLUMN, EXTRA_COLUMNS_COLUMN
from customer360.transforms.finance_text import (
    FileRejected,
    Lines,
    amount_problem,
    blank_lines,
    check_header,
    invalid_utf8_lines,
    line_spans,
    pattern_problem,
    unbalanced_quote_lines,
)

MONEY = pa.decimal128(18, 2)
BRONZE_SCHEMA = pa.schema(
    [
        pa.field("cid", pa.int64()),
        pa.field("month", pa.string()),  # yyyy-MM, or null when the file has no month column
        pa.field("income", MONEY),
        pa.field("spend", MONEY),
        pa.field("_source_file", pa.string()),
        pa.field("_source_line", pa.int64()),
        # Columns the contract does not know, as a JSON object per row (null when none).
        pa.field(EXTRA_COLUMNS_COLUMN, pa.string()),
        pa.field(CONTENT_HASH_COLUMN, pa.string()),  # set by ingestion (a re-sent file once)
    ]
)
PARSED_SCHEMA = pa.schema([f for f in BRONZE_SCHEMA if f.name != CONTENT_HASH_COLUMN])


@dataclass(frozen=True)
class RejectedFinanceRow:
    file: str
    line: int
    raw: str  # the line as it is in the file (invalid bytes as U+FFFD)
    reason: str  # quotes the field as it is in the file


_INTEGER = r"^-?[0-9]+$"
_MONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def parse_finance_csv(data: bytes, source_file: str) -> tuple[pa.Table, list[RejectedFinanceRow]]:
    """Parse one finance file (header row per the contract: `cid` and `spend`, optionally
    `month` and `income`, other columns kept as extras; CR, LF or CRLF line endings; no
    multi-line values). Vectorised with pyarrow, so a 12-million-row file is seconds.

    Bad rows come back with file, line, the line's original text and the reason, never
    dropped. Lines with bytes that are not UTF-8 are rejected one by one (file, line, byte
    offset) and the file's other lines are read. A header that breaks the contract raises
    FileRejected: the file is set aside whole."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = line_spans(data)
    if len(lines.numbers) == 0:
        return PARSED_SCHEMA.empty_table(), []
    data, lines, rejected = _set_aside_unreadable_lines(data, lines, source_file)
    names, extra = check_header(lines.text(data, 0), source_file)
    table, invalid = _read_strings(data, len(names), source_file)
    table = table.rename_columns(names)
    row_lines = _row_lines(table.num_rows, [number for number, _ in invalid])
    rejected += [
        RejectedFinanceRow(source_file, int(lines.numbers[n - 1]), lines.text(data, n - 1), why)
        for n, why in invalid
    ]
    out, bad_rows = _typed(table, names, extra, source_file, lines.numbers[row_lines])
    rejected += [
        RejectedFinanceRow(
            source_file, int(lines.numbers[row_lines[i]]), lines.text(data, row_lines[i]), why
        )
        for i, why in bad_rows
    ]
    rejected.sort(key=lambda r: r.line)
    return out, rejected


def _set_aside_unreadable_lines(
    data: bytes, lines: Lines, source_file: str
) -> tuple[bytes, Lines, list[RejectedFinanceRow]]:
    """Reject the lines that are not UTF-8 or leave a quote open, and empty them (the others
    keep their numbers). Each line is a record of its own, so the rest of the file is sound;
    a bad header makes the whole file unreadable (FileRejected)."""
    try:
        data.decode("utf-8")
        bad = []
    except UnicodeDecodeError:
        bad = invalid_utf8_lines(data, lines, source_file)
    located = {b.line for b in bad}
    bad += [b for b in unbalanced_quote_lines(data, lines) if b.line not in located]
    if not bad:
        return data, lines, []
    bad.sort(key=lambda b: b.line)
    if bad[0].line == int(lines.numbers[0]):
        raise FileRejected(f"{bad[0].reason}; the header cannot be read", line=bad[0].line,
                           raw=bad[0].raw)  # fmt: skip
    numbers = list(lines.numbers)
    data = blank_lines(data, lines, [numbers.index(b.line) for b in bad])
    return (
        data,
        line_spans(data),
        [RejectedFinanceRow(source_file, b.line, b.raw, b.reason) for b in bad],
    )


def _read_strings(data: bytes, width: int, source_file: str) -> tuple[pa.Table, list]:
    """Every field as text, and the rows with the wrong field count as (pyarrow row number
    counting non-empty lines with the header as 1, reason)."""
    invalid: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        invalid.append(
            (row.number, f"has {row.actual_columns} fields, the header has {row.expected_columns}")
        )
        return "skip"

    columns = [f"c{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                use_threads=False, block_size=64 << 20, column_names=columns
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise FileRejected(f"{source_file}: not a readable CSV ({exc})") from None
    return table.slice(1), invalid  # row 0 is the header (checked before)


def _row_lines(rows: int, invalid: list[int]) -> np.ndarray:
    """Index (into the non-empty lines) of each parsed row: pyarrow numbers rows by non-empty
    lines, the header being 1, and skips the invalid ones."""
    skipped = set(invalid)
    numbers = np.array([i for i in range(2, rows + len(invalid) + 2) if i not in skipped])
    return (numbers - 1).astype(np.int64) if rows else np.array([], dtype=np.int64)


def _typed(
    table: pa.Table, names: list[str], extra: list[str], source_file: str, line_of: np.ndarray
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The typed rows that pass, and (row index, reason) for the others; `line_of` is each
    row's physical line."""
    n = table.num_rows

    def col(name: str) -> pa.Array:
        return table[name].combine_chunks() if name in names else pa.array([""] * n, pa.string())

    cid, month = pc.utf8_trim_whitespace(col("cid")), pc.utf8_trim_whitespace(col("month"))
    income, income_problem = amount_problem(col("income"), "income")
    spend, spend_problem = amount_problem(col("spend"), "spend")
    reason = pc.coalesce(
        pattern_problem(col("cid"), "cid", _INTEGER, "is not an integer", allow_blank=False),
        pattern_problem(col("month"), "month", _MONTH_RE, "is not yyyy-MM", allow_blank=True),
        income_problem,
        spend_problem,
    )
    bad = pc.is_valid(reason)
    bad_rows = [
        (int(i), reason[i].as_py()) for i in np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    ]
    keep = pc.invert(bad)
    kept = int(pc.sum(keep.cast(pa.int64())).as_py() or 0)

    def blank_as_null(values: pa.Array) -> pa.Array:
        # Blank → null before a cast (if_else evaluates both branches).
        values = values.filter(keep)
        return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)

    out = pa.table(
        {
            "cid": cid.filter(keep).cast(pa.int64()),
            "month": blank_as_null(month),
            "income": blank_as_null(income).cast(MONEY),
            "spend": blank_as_null(spend).cast(MONEY),
            "_source_file": pa.array([source_file] * kept, pa.string()),
            "_source_line": pa.array(line_of[keep.to_numpy(zero_copy_only=False)], pa.int64()),
            EXTRA_COLUMNS_COLUMN: _extras(table.filter(keep), extra, kept),
        },
        schema=PARSED_SCHEMA,
    )
    return out, bad_rows


def _extras(table: pa.Table, extra: list[str], rows: int) -> pa.Array:
    """Per row, the extra columns' values as a JSON object (null when the file has none)."""
    if not extra:
        return pa.nulls(rows, pa.string())
    values = zip(*(table[name].to_pylist() for name in extra), strict=True)
    return pa.array([json.dumps(dict(zip(extra, row, strict=True))) for row in values])


def monthly_finance(bronze: DataFrame) -> DataFrame:
    """One row per customer and month. A file without months counts for the month it was
    dropped; when several drops cover the same customer-month, the latest drop wins."""
    with_month = bronze.withColumn(
        "month", F.coalesce(F.col("month"), F.date_format(F.to_date("_drop_day"), "yyyy-MM"))
    )
    latest = Window.partitionBy("cid", "month").orderBy(
        F.col("_drop_day").desc(), F.col("_source_file").desc(), F.col("_source_line").desc()
    )
    return (
        with_month.withColumn("_rank", F.row_number().over(latest))
        .filter("_rank = 1")
        .select(
            "cid",
            "month",
            F.to_date(F.concat(F.col("month"), F.lit("-01"))).alias("month_start"),
            "income",
            "spend",
            F.col("_source_file").alias("source_file"),
        )
    )
