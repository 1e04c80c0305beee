"""Which KKBox files a drop holds (Kaggle's first or second release, or no label files) and which
month each label file labels; the date ranges the periods are detected from.

Kaggle v1: members_v3, transactions, user_logs, train.csv (labels of the last month of
transactions.csv), optional sample_submission_zero.csv (the month after). Kaggle v2 adds
transactions_v2, user_logs_v2, train_v2.csv (labels of the last month of transactions_v2.csv)
and sample_submission_v2.csv. A label file labels the expiries of the last month of its
transaction file: that is how Kaggle built them, and it holds for drops of other months too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.churn.periods import DataFacts, month_of

MEMBERS_FILE = "members_v3.csv"
TRANSACTION_FILES = ("transactions.csv", "transactions_v2.csv")
LOG_FILES = ("user_logs.csv", "user_logs_v2.csv")
#: Label file → the transaction file whose last month it labels.
LABEL_FILES = {"train.csv": "transactions.csv", "train_v2.csv": "transactions_v2.csv"}
SUBMISSION_FILES = ("sample_submission_zero.csv", "sample_submission_v2.csv")


class KKBoxLayoutError(ValueError):
    """The drop lacks a file every layout needs."""


@dataclass(frozen=True)
class KKBoxLayout:
    """The files found in a drop, by kind (names only, in Kaggle's order)."""

    name: str  # "kaggle-v1", "kaggle-v2" or "label-less"
    members: str
    transactions: tuple[str, ...]
    user_logs: tuple[str, ...]
    label_files: tuple[str, ...]
    submissions: tuple[str, ...]


def detect_layout(names: set[str] | list[str]) -> KKBoxLayout:
    """The layout of a drop from its file names (e.g. `os.listdir(landing/kkbox)`).

    Raises `KKBoxLayoutError` naming what is missing: members_v3.csv, a transaction file and
    a user-log file are required; labels and submissions are optional."""
    present = set(names)
    missing = [
        what
        for what, options in (
            (MEMBERS_FILE, (MEMBERS_FILE,)),
            ("transactions.csv or transactions_v2.csv", TRANSACTION_FILES),
            ("user_logs.csv or user_logs_v2.csv", LOG_FILES),
        )
        if not present.intersection(options)
    ]
    if missing:
        raise KKBoxLayoutError(f"the KKBox drop lacks {', '.join(missing)}")
    transactions = tuple(n for n in TRANSACTION_FILES if n in present)
    labels = tuple(n for n in LABEL_FILES if n in present)
    v2 = any(n.endswith("_v2.csv") for n in present)
    name = "label-less" if not labels else ("kaggle-v2" if v2 else "kaggle-v1")
    return KKBoxLayout(
        name=name,
        members=MEMBERS_FILE,
        transactions=transactions,
        user_logs=tuple(n for n in LOG_FILES if n in present),
        label_files=labels,
        submissions=tuple(n for n in SUBMISSION_FILES if n in present),
    )


def layout_of_directory(directory: str | Path) -> KKBoxLayout:
    return detect_layout({p.name for p in Path(directory).glob("*.csv")})


def label_file_months(
    label_files: tuple[str, ...] | list[str], last_by_file: Mapping[str, dt.date]
) -> dict[str, dt.date]:
    """{label file: the month it labels}: the last month of its transaction file (or of all
    transactions when that file is absent)."""
    if not last_by_file:
        return {}
    overall = max(last_by_file.values())
    return {
        name: month_of(last_by_file.get(LABEL_FILES[name], overall))
        for name in label_files
        if name in LABEL_FILES
    }


def data_facts(
    transactions: DataFrame, user_logs: DataFrame, label_files: tuple[str, ...] | list[str]
) -> DataFacts:
    """Date ranges of the drop: two small aggregations (transactions need `source_file`)."""
    by_file = {
        r["source_file"]: (r["first"], r["last"])
        for r in transactions.groupBy("source_file")
        .agg(F.min("transaction_date").alias("first"), F.max("transaction_date").alias("last"))
        .collect()
    }
    if not by_file:
        raise KKBoxLayoutError("the KKBox transactions are empty: no month can be labelled")
    logs = user_logs.agg(F.min("date").alias("first"), F.max("date").alias("last")).first()
    return DataFacts(
        transactions_first=min(v[0] for v in by_file.values()),
        transactions_last=max(v[1] for v in by_file.values()),
        logs_first=logs["first"] if logs else None,
        logs_last=logs["last"] if logs else None,
        label_files=label_file_months(label_files, {k: v[1] for k, v in by_file.items()}),
    )
