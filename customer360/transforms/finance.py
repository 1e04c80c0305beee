"""Customer finance files: parse dropped CSVs (bytes → typed Arrow + rejected rows) and shape
them into one row per customer and month (Spark)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

MONEY = pa.decimal128(18, 2)
BRONZE_SCHEMA = pa.schema(
    [
        pa.field("cid", pa.int64()),
        pa.field("month", pa.string()),  # yyyy-MM, or null when the file has no month column
        pa.field("income", MONEY),
        pa.field("spend", MONEY),
        pa.field("_source_file", pa.string()),
        pa.field("_source_line", pa.int64()),
    ]
)
REQUIRED = ("cid",)
KNOWN = ("cid", "month", "income", "spend")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class RejectedFinanceRow:
    file: str
    line: int
    raw: str
    reason: str


def _money(text: str, column: str) -> Decimal | None:
    if text == "":
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{column} {text!r} must be a non-negative amount")
    if abs(value) >= Decimal(10) ** 16:
        raise ValueError(f"{column} {text!r} is too large for decimal(18,2)")
    return value.quantize(Decimal("0.01"))


def _month(text: str) -> str | None:
    if text == "":
        return None
    match = _MONTH.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month {text!r} is not yyyy-MM")
    return text


def parse_finance_csv(data: bytes, source_file: str) -> tuple[pa.Table, list[RejectedFinanceRow]]:
    """Parse one finance file (header row with `cid` and any of month, income, spend; CR, LF or
    CRLF line endings). Bad rows are returned with file, line and reason, never dropped."""
    text = data.decode("utf-8-sig", errors="strict")
    lines = text.splitlines()  # CR-only files (the sample's customer_spend.csv) split too
    reader = csv.reader(io.StringIO("\n".join(lines), newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return BRONZE_SCHEMA.empty_table(), []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"{source_file}: header {header} lacks required column(s) {missing}")
    index = {c: header.index(c) for c in KNOWN if c in header}
    rows, rejected = [], []
    for record in reader:
        line = reader.line_num
        if not any(v.strip() for v in record):
            continue  # blank line
        try:
            if len(record) != len(header):
                raise ValueError(f"has {len(record)} fields, the header has {len(header)}")
            value = {c: record[i].strip() for c, i in index.items()}
            if not re.fullmatch(r"-?\d+", value["cid"]):
                raise ValueError(f"cid {value['cid']!r} is not an integer")
            rows.append(
                {
                    "cid": int(value["cid"]),
                    "month": _month(value.get("month", "")),
                    "income": _money(value.get("income", ""), "income"),
                    "spend": _money(value.get("spend", ""), "spend"),
                    "_source_file": source_file,
                    "_source_line": line,
                }
            )
        except ValueError as exc:
            rejected.append(RejectedFinanceRow(source_file, line, ",".join(record), str(exc)))
    return pa.Table.from_pylist(rows, schema=BRONZE_SCHEMA), rejected


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
