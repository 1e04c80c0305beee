"""Reading one table of a KKBox drop by its layout: every file of that kind, unioned, typed.

The bronze assets and the bench read a drop the same way: `read_drop_table(spark, directory,
"transactions")` reads `transactions.csv` and, in Kaggle's second release, `transactions_v2.csv`,
and tags each row with the file it came from where the label months are decided per file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from customer360.churn.layout import (
    LABEL_FILES,
    LOG_FILES,
    MEMBERS_FILE,
    TRANSACTION_FILES,
    KKBoxLayout,
    layout_of_directory,
)
from customer360.churn.readers import read_members, read_train, read_transactions, read_user_logs

#: Kaggle's files per bronze table, in order; which are present decides the layout.
TABLE_FILES: dict[str, tuple[str, ...]] = {
    "members": (MEMBERS_FILE,),
    "transactions": TRANSACTION_FILES,
    "user_logs": LOG_FILES,
    "train_labels": tuple(LABEL_FILES),
}
TABLE_READERS: dict[str, Callable[[SparkSession, str], tuple[DataFrame, DataFrame]]] = {
    "members": read_members,
    "transactions": read_transactions,
    "user_logs": read_user_logs,
    "train_labels": read_train,
}
#: Tables whose rows keep the file they came from (label months are decided per file).
WITH_SOURCE_FILE = frozenset({"transactions", "train_labels"})


def layout_files(layout: KKBoxLayout, table: str) -> tuple[str, ...]:
    """The files of `table` present in a drop of `layout` (none: a label-less drop's labels)."""
    if table not in TABLE_FILES:
        raise ValueError(f"unknown KKBox table {table!r}; one of {', '.join(TABLE_FILES)}")
    return {
        "members": (layout.members,),
        "transactions": layout.transactions,
        "user_logs": layout.user_logs,
        "train_labels": layout.label_files,
    }[table]


def read_drop_table(
    spark: SparkSession, directory: str | Path, table: str
) -> tuple[DataFrame, DataFrame]:
    """(good rows, rejected rows) of `table` over every file of it in the drop at `directory`.

    A label-less drop gives an empty label table (msno, is_churn, source_file), so a graph
    stays uniform whatever the layout. Raises `KKBoxLayoutError` when a required file lacks."""
    root = Path(directory)
    names = layout_files(layout_of_directory(root), table)
    good = bad = None
    for name in names:
        g, b = TABLE_READERS[table](spark, str(root / name))
        if table in WITH_SOURCE_FILE:
            g = g.withColumn("source_file", F.lit(name))
        good = g if good is None else good.unionByName(g)
        bad = b if bad is None else bad.unionByName(b, allowMissingColumns=True)
    if good is None or bad is None:
        good = spark.createDataFrame([], "msno string, is_churn int, source_file string")
        bad = spark.createDataFrame(
            [], "source_file string, raw_line string, reason string, msno string"
        )
    return good, bad
