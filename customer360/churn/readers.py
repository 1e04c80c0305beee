"""Spark readers for the Kaggle KKBox files: typed good rows and rejected rows with a reason.

Every reader has the shape `read_<file>(spark, path) -> (good_df, rejected_df)`:
- the CSV is read with an all-string schema (so Spark never guesses or silently nulls a value),
  then each column is validated and cast explicitly;
- a row with any problem goes to `rejected_df` with its raw values, `source_file`, `raw_line` and
  a `reason` naming every problem found (`"bd is not an integer: 'x'; registration_init_time ..."`);
- nothing is dropped: `good.count() + rejected.count()` equals the number of data lines.

Both DataFrames are lazy views over the same files; a caller that needs both should persist the
raw read or accept that the CSV is parsed twice (cheap compared with holding 400M rows).
The header of each file must be exactly Kaggle's; anything else raises `KKBoxFileError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from customer360.churn.schemas import (
    BD_MAX,
    BD_MIN,
    MEMBERS_COLUMNS,
    TRAIN_COLUMNS,
    TRANSACTIONS_COLUMNS,
    USER_LOGS_COLUMNS,
)

_CORRUPT = "_corrupt_record"
_TYPED = "_typed_"


class KKBoxFileError(ValueError):
    """A KKBox file cannot be read at all (missing, empty, or not Kaggle's header)."""


@dataclass(frozen=True)
class _Field:
    """How one column is validated and typed."""

    name: str
    kind: str  # "string" | "int" | "flag" | "date" | "double"
    required: bool = True
    non_negative: bool = False
    allowed: tuple[str, ...] | None = None  # for strings: the accepted values (blank → NULL)


def read_members(spark: SparkSession, path: str | Path) -> tuple[DataFrame, DataFrame]:
    """`members_v3.csv` → (msno, city, bd, gender, registered_via, registration_init_time).

    `bd` outside 10–70 becomes NULL (KKBox ages run from -7000 to 2015); a blank gender becomes
    NULL; city/bd/registered_via/registration_init_time may be blank (NULL) but never malformed.
    """
    fields = [
        _Field("msno", "string"),
        _Field("city", "int", required=False),
        _Field("bd", "int", required=False),
        _Field("gender", "string", required=False, allowed=("male", "female")),
        _Field("registered_via", "int", required=False),
        _Field("registration_init_time", "date", required=False),
    ]
    good, rejected = _read_validated(spark, path, MEMBERS_COLUMNS, fields)
    bd_in_range = F.col("bd").between(BD_MIN, BD_MAX)
    good = good.withColumn("bd", F.when(bd_in_range, F.col("bd")).cast("int"))
    return good, rejected


def read_transactions(spark: SparkSession, path: str | Path) -> tuple[DataFrame, DataFrame]:
    """`transactions.csv` / `transactions_v2.csv` → typed transactions (dates as DateType).

    All nine columns are required; amounts and plan days must be non-negative integers and the
    two flags 0/1. A `membership_expire_date` before `transaction_date` is kept (KKBox has them;
    `subscription_windows` floors it).
    """
    fields = [
        _Field("msno", "string"),
        _Field("payment_method_id", "int"),
        _Field("payment_plan_days", "int", non_negative=True),
        _Field("plan_list_price", "int", non_negative=True),
        _Field("actual_amount_paid", "int", non_negative=True),
        _Field("is_auto_renew", "flag"),
        _Field("transaction_date", "date"),
        _Field("membership_expire_date", "date"),
        _Field("is_cancel", "flag"),
    ]
    return _read_validated(spark, path, TRANSACTIONS_COLUMNS, fields)


def read_user_logs(spark: SparkSession, path: str | Path) -> tuple[DataFrame, DataFrame]:
    """`user_logs.csv` / `user_logs_v2.csv` → typed daily listening rows.

    Counts must be non-negative integers and `total_secs` a non-negative number: the real file has
    a few rows with total_secs near -9.2e15, which are rejected (with that reason), not clipped.
    """
    count_fields = [
        _Field(name, "int", non_negative=True)
        for name in ("num_25", "num_50", "num_75", "num_985", "num_100", "num_unq")
    ]
    fields = [
        _Field("msno", "string"),
        _Field("date", "date"),
        *count_fields,
        _Field("total_secs", "double", non_negative=True),
    ]
    return _read_validated(spark, path, USER_LOGS_COLUMNS, fields)


def read_train(spark: SparkSession, path: str | Path) -> tuple[DataFrame, DataFrame]:
    """`train.csv`, `train_v2.csv` or a sample submission → (msno, is_churn), is_churn 0/1."""
    fields = [_Field("msno", "string"), _Field("is_churn", "flag")]
    return _read_validated(spark, path, TRAIN_COLUMNS, fields)


#: Kaggle file stem → reader, for callers that walk `landing/kkbox/`.
READERS: dict[str, Callable[[SparkSession, str | Path], tuple[DataFrame, DataFrame]]] = {
    "members_v3": read_members,
    "transactions": read_transactions,
    "transactions_v2": read_transactions,
    "user_logs": read_user_logs,
    "user_logs_v2": read_user_logs,
    "train": read_train,
    "train_v2": read_train,
    "sample_submission_zero": read_train,
    "sample_submission_v2": read_train,
}


def _read_validated(
    spark: SparkSession, path: str | Path, columns: Sequence[str], fields: Sequence[_Field]
) -> tuple[DataFrame, DataFrame]:
    path_str = str(path)
    _check_header(spark, path_str, columns)
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in columns]
        + [T.StructField(_CORRUPT, T.StringType())]
    )
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", _CORRUPT)
        # Spark re-checks every file's header against the schema when it reads it.
        .option("enforceSchema", False)
        .schema(schema)
        .csv(path_str)
    )
    # Each value is parsed once (`_typed`); a problem is "not blank, yet did not parse" or a
    # range check on the parsed value, so validation costs no extra parsing or regex.
    staged = raw.select(
        *columns,
        _CORRUPT,
        F.col("_metadata.file_path").alias("source_file"),
        *[_typed(f).alias(_TYPED + f.name) for f in fields],
    )
    problems = [problem for field in fields for problem in _problems(field)]
    malformed = F.col(_CORRUPT).isNotNull()
    # A cheap boolean decides good vs rejected; the reason text is built for rejected rows only.
    any_problem = malformed
    for bad, _ in problems:
        any_problem = any_problem | F.coalesce(bad, F.lit(False))
    good = staged.where(~any_problem).select(
        *[F.col(_TYPED + f.name).alias(f.name) for f in fields]
    )
    reason = F.when(
        malformed, F.lit(f"malformed line: expected {len(columns)} comma-separated fields")
    ).otherwise(F.concat_ws("; ", *[F.when(bad, message) for bad, message in problems]))
    raw_line = F.coalesce(
        F.col(_CORRUPT), F.concat_ws(",", *[F.coalesce(F.col(c), F.lit("")) for c in columns])
    )
    rejected = staged.where(any_problem).select(
        *columns, "source_file", raw_line.alias("raw_line"), reason.alias("reason")
    )
    return good, rejected


def _check_header(spark: SparkSession, path: str, columns: Sequence[str]) -> None:
    """Fail early, naming the file, when a header is not Kaggle's (Spark would fail later).

    Local paths are checked in Python (every matching file, no Spark job); remote ones
    (abfss://, s3a://, …) by reading the first line through Spark.
    """
    local = _local_files(path)
    if local is not None:
        if not local:
            raise KKBoxFileError(f"{path}: cannot be read (no such file)")
        for file in local:
            with file.open("r", encoding="utf-8", errors="replace") as handle:
                _compare_header(str(file), handle.readline(), columns)
        return
    try:
        first = spark.read.text(path).select("value", "_metadata.file_path").first()
    except Exception as exc:  # Spark's AnalysisException for a missing path
        raise KKBoxFileError(f"{path}: cannot be read ({type(exc).__name__})") from exc
    _compare_header(first["file_path"] if first else path, first["value"] if first else "", columns)


def _local_files(path: str) -> list[Path] | None:
    """The files a local path (file, directory or glob) names; None for a remote URI."""
    if "://" in path and not path.startswith("file://"):
        return None
    local = Path(path.removeprefix("file://"))
    if any(ch in local.name for ch in "*?["):
        return sorted(p for p in local.parent.glob(local.name) if p.is_file())
    if local.is_dir():
        # Spark skips files starting with "_" or "." in a directory.
        return sorted(p for p in local.iterdir() if p.is_file() and p.name[0] not in "_.")
    return [local] if local.is_file() else []


def _compare_header(file: str, line: str, columns: Sequence[str]) -> None:
    header = line.lstrip("\ufeff").strip()
    if not header:
        raise KKBoxFileError(f"{file}: is empty; expected the header {','.join(columns)}")
    found = [c.strip().strip('"') for c in header.split(",")]
    if found != list(columns):
        raise KKBoxFileError(f"{file}: header is {header!r}; expected {','.join(columns)!r}")


def _problems(field: _Field) -> list[tuple[Column, Column]]:
    """(is this problem present?, its message) for each check of one column."""
    raw = F.col(field.name)
    blank = raw.isNull() | (F.trim(raw) == "")
    typed = F.col(_TYPED + field.name)
    shown = F.concat(F.lit("'"), F.substring(raw, 1, 40), F.lit("'"))
    unparsed = ~blank & typed.isNull()

    def says(text: str) -> Column:
        return F.concat(F.lit(f"{field.name} {text}: "), shown)

    out: list[tuple[Column, Column]] = []
    if field.required:
        out.append((blank, F.lit(f"{field.name} is blank")))
    if field.kind == "int":
        out.append((unparsed, says("is not an integer")))
    elif field.kind == "flag":
        out.append((unparsed, says("is not 0 or 1")))
    elif field.kind == "date":
        out.append((unparsed, says("is not a yyyymmdd date")))
    elif field.kind == "double":
        not_finite = unparsed | F.isnan(typed) | (F.abs(typed) == float("inf"))
        out.append((not_finite, says("is not a number")))
    elif field.allowed is not None:
        out.append((unparsed, says(f"must be {' or '.join(field.allowed)} or blank")))
    if field.non_negative:
        out.append((typed < 0, says("is negative")))
    return out


def _typed(field: _Field) -> Column:
    """The parsed value of a raw string column: NULL when blank or when it does not parse."""
    value = F.trim(F.col(field.name))
    value = F.when(value != "", value)  # blank → NULL
    if field.kind == "int":
        return value.try_cast("int")
    if field.kind == "flag":
        return F.when(value.isin("0", "1"), value.cast("int"))
    if field.kind == "date":
        # try_to_date is strict: 8 digits of a real calendar day, nothing else.
        return F.try_to_date(value, "yyyyMMdd")
    if field.kind == "double":
        return value.try_cast("double")
    if field.allowed is not None:
        return F.when(value.isin(*field.allowed), value)
    return value
