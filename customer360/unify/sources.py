"""Any CRM-style CSV export → typed-as-text Arrow rows (bytes in, no I/O), and silver rows of
any source → the `records` frame that matching reads."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.unify.config import CsvSourceMapping
from customer360.unify.schema import (
    RECORD_ATTRIBUTES,
    RECORD_COLUMNS,
    SOURCE_NAME,
    check_source_name,
)

# Columns read_crm_csv adds besides the mapped targets.
KEY_COLUMN = "source_key"
MODIFIED_COLUMN = "modified"
LINEAGE_COLUMNS = ("_source_file", "_source_line")


@dataclass(frozen=True)
class RejectedCsvRow:
    file: str
    line: int
    raw: str
    reason: str


def csv_output_schema(mapping: CsvSourceMapping) -> pa.Schema:
    """source_key, the mapped targets, `modified` (if mapped): all strings; then lineage."""
    names = [KEY_COLUMN, *mapping.columns]
    if mapping.modified:
        names.append(MODIFIED_COLUMN)
    fields = [pa.field(n, pa.string()) for n in names]
    return pa.schema(
        [*fields, pa.field("_source_file", pa.string()), pa.field("_source_line", pa.int64())]
    )


def _decode(data: bytes, source_file: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source_file}: not UTF-8 (byte {exc.start})") from None
    # CR-only files (old Mac exports) become LF; CRLF and quoted newlines are left to csv.
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    return text


def _check_date(value: str, column: str) -> None:
    try:
        if len(value) <= 10:
            dt.date.fromisoformat(value)
        else:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{column} {value!r} is not an ISO date") from None


def read_crm_csv(
    data: bytes, source_file: str, mapping: CsvSourceMapping
) -> tuple[pa.Table, list[RejectedCsvRow]]:
    """Parse one CSV export with a header row into `csv_output_schema(mapping)`.

    Values stay text, trimmed (standardize_customers types them); blank → null. A row is
    rejected, with file, line and reason, when its field count differs from the header's, its key
    is blank or repeats an earlier row's key, a `required` target is blank, or a date column is
    not ISO. Blank lines are skipped. A header without a mapped column raises ValueError.
    """
    check_source_name(mapping.source)
    reader = csv.reader(io.StringIO(_decode(data, source_file), newline=""))
    schema = csv_output_schema(mapping)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return schema.empty_table(), []
    position = {h.lower(): i for i, h in enumerate(header)}
    wanted = {KEY_COLUMN: mapping.key, **mapping.columns}
    if mapping.modified:
        wanted[MODIFIED_COLUMN] = mapping.modified
    missing = sorted({h for h in wanted.values() if h.lower() not in position})
    if missing:
        raise ValueError(
            f"{source_file}: header lacks column(s) {missing} that source "
            f"{mapping.source!r} maps (header: {header})"
        )
    index = {target: position[h.lower()] for target, h in wanted.items()}
    dates = [c for c in mapping.date_columns if c in index]
    if mapping.modified:
        dates.append(MODIFIED_COLUMN)
    rows: list[dict] = []
    rejected: list[RejectedCsvRow] = []
    first_line_of_key: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not any(v.strip() for v in record):
            continue
        try:
            if len(record) != len(header):
                raise ValueError(f"has {len(record)} fields, the header has {len(header)}")
            row = {t: (record[i].strip() or None) for t, i in index.items()}
            key = row[KEY_COLUMN]
            if key is None:
                raise ValueError(f"key column {mapping.key!r} is blank")
            problems = [f"{c} is blank" for c in mapping.required if row.get(c) is None]
            for column in dates:
                if row.get(column) is not None:
                    try:
                        _check_date(row[column], column)
                    except ValueError as exc:
                        problems.append(str(exc))
            if key in first_line_of_key:
                problems.append(f"duplicate key {key!r} (first at line {first_line_of_key[key]})")
            if problems:
                raise ValueError("; ".join(problems))
            first_line_of_key[key] = line
            rows.append({**row, "_source_file": source_file, "_source_line": line})
        except ValueError as exc:
            rejected.append(RejectedCsvRow(source_file, line, ",".join(record), str(exc)))
    return pa.Table.from_pylist(rows, schema=schema), rejected


def to_records(
    silver: DataFrame, source: str, key_column: str, modified_column: str | None = None
) -> DataFrame:
    """Silver rows of one source → `records` (schema.RECORD_COLUMNS), lazily.

    `key_column` becomes `source_key` (as text); `modified_column` (timestamp, date or ISO text)
    becomes `modified_at`. Record attributes the source lacks are null. Union the results of
    several sources with unionByName.
    """
    check_source_name(source)
    present = set(silver.columns)
    if key_column not in present:
        raise ValueError(f"source {source!r}: no key column {key_column!r} in {silver.columns}")
    if modified_column is not None and modified_column not in present:
        raise ValueError(f"source {source!r}: no column {modified_column!r} in {silver.columns}")
    kinds = {"dateofbirth": "date"}
    attributes = [
        (F.col(c) if c in present else F.lit(None)).cast(kinds.get(c, "string")).alias(c)
        for c in RECORD_ATTRIBUTES
    ]
    modified = F.lit(None).cast("timestamp")
    if modified_column is not None:
        modified = F.col(modified_column).cast("timestamp")
    out = silver.select(
        F.lit(source).alias("source"),
        F.col(key_column).cast("string").alias("source_key"),
        *attributes,
        modified.alias("modified_at"),
    )
    return out.select(*RECORD_COLUMNS)


def validate_records(records: DataFrame, sample: int = 5) -> None:
    """Raise ValueError when a record has no source or source_key, a source name is invalid, or
    a (source, source_key) repeats: identity would be ambiguous. One Spark job. The message
    names sources and keys only (never attribute values, which are personal data)."""
    per_key = records.groupBy("source", "source_key").agg(F.count("*").alias("n"))
    missing = F.col("source").isNull() | F.col("source_key").isNull()
    repeated = ~missing & (F.col("n") > 1)
    stats = per_key.agg(
        F.collect_list(F.when(missing, F.struct("source", "n"))).alias("missing"),
        F.sum(F.when(repeated, 1).otherwise(0)).alias("repeated"),
        F.slice(
            F.sort_array(F.collect_list(F.when(repeated, F.struct("source", "source_key", "n")))),
            1,
            sample,
        ).alias("repeated_sample"),
        F.collect_set(F.when(~F.col("source").rlike(SOURCE_NAME.pattern), F.col("source"))).alias(
            "bad_names"
        ),
    ).first()
    _raise_problems(
        bad_names=stats.bad_names,
        missing={m.source: m.n for m in stats.missing},
        repeated=stats.repeated,
        repeated_sample=[(r.source, r.source_key, r.n) for r in stats.repeated_sample],
    )


def validate_record_table(records: pa.Table, sample: int = 5) -> None:
    """validate_records on Arrow (DuckDB), with the same checks and message."""
    per_key = arrow_query(
        "SELECT source, source_key, count(*) AS n FROM records GROUP BY ALL", records=records
    )
    missing = arrow_query(
        "SELECT source, n FROM per_key WHERE source IS NULL OR source_key IS NULL",
        per_key=per_key,
    ).to_pylist()
    repeated = arrow_query(
        "SELECT source, source_key, n FROM per_key WHERE source IS NOT NULL "
        "AND source_key IS NOT NULL AND n > 1 ORDER BY source, source_key, n",
        per_key=per_key,
    ).to_pylist()
    sources = {s for s in per_key["source"].to_pylist() if s is not None}
    _raise_problems(
        bad_names=[s for s in sources if not SOURCE_NAME.fullmatch(s)],
        missing={r["source"]: r["n"] for r in missing},
        repeated=len(repeated),
        repeated_sample=[(r["source"], r["source_key"], r["n"]) for r in repeated[:sample]],
    )


def _raise_problems(
    bad_names: list[str],
    missing: dict[str | None, int],
    repeated: int,
    repeated_sample: list[tuple[str, str, int]],
) -> None:
    problems = []
    if bad_names:
        problems.append(f"invalid source names {sorted(bad_names)} (letters, digits, _ . - only)")
    if missing:
        problems.append(f"records without source or source_key (count per source): {missing}")
    if repeated:
        problems.append(
            f"{repeated} (source, source_key) repeated, e.g. (source, key, count) {repeated_sample}"
        )
    if problems:
        raise ValueError("records: " + "; ".join(problems))
