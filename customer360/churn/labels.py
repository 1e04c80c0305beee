"""Churn labels by KKBox's official rules (a port of WSDMChurnLabeller.scala), as Spark transforms.

For a period P (a calendar month) and typed transactions (the reader's output, duplicates kept):

1. History = transactions dated in the month before P. Each member's `last_expire` is the
   expiry of the last history transaction in `official_order`. Only members with history are
   candidates.
2. Plan-change rule (the official page's examples 2 and 3, which the Scala code alone does not
   reproduce): when the member makes an active cancel dated inside P, the expiry that counts is
   the one in force at the end of P: walking P's transactions in order, a subscription sets the
   expiry to its own, a cancel moves it earlier (never later). The renewal search then starts
   after P. Without a cancel in P the expiry is `last_expire` and the search starts at P.
3. In scope when that expiry falls inside P.
4. Walking the transactions from the search start in order, a cancel moves the reference
   expiry earlier; the first subscription defines gap = its date − the reference expiry.
   No such subscription → is_churn = 1; gap < 30 → 0; gap ≥ 30 → 1.

The three worked examples of the official data page are unit tests (tests/churn).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from customer360.churn.periods import add_months, period_bounds, periods_frame
from customer360.churn.transactions import official_order

#: A renewal less than this many days after the expiry is not churn (official definition).
RENEWAL_GRACE_DAYS = 30

LABEL_COLUMNS = ("msno", "period_start", "is_churn", "last_expire", "renewal_gap_days")


def label_period(transactions: DataFrame, period_start: dt.date) -> DataFrame:
    """Labels for the members whose membership expires in the period starting `period_start`.

    Returns (msno, period_start, is_churn 0/1, last_expire, renewal_gap_days); `last_expire`
    is the expiry the label refers to and `renewal_gap_days` is NULL when nothing was renewed.
    """
    return label_periods(transactions, [period_start])


def label_periods(transactions: DataFrame, periods: Sequence[dt.date]) -> DataFrame:
    """`label_period` for several periods in one Spark pass (rows tagged by period_start)."""
    bounds = F.broadcast(periods_frame(transactions.sparkSession, periods))
    day = F.col("transaction_date")
    start, end = F.col("period_start"), F.col("period_end")
    cancel = F.col("is_cancel") == 1
    in_history = day < start
    in_period = (day >= start) & (day <= end)

    member = Window.partitionBy("msno", "period_start")
    ordered = (
        transactions.join(bounds, day >= F.col("history_start"), "inner")
        .withColumn("_pos", F.row_number().over(member.orderBy(*official_order())))
        .withColumn("_period_cancel", F.max((in_period & cancel).cast("int")).over(member) == 1)
        # Position of the last subscription inside P (the plan-change walk restarts there).
        .withColumn(
            "_last_period_sub", F.max(F.when(in_period & ~cancel, F.col("_pos"))).over(member)
        )
    )
    search_start = F.when(F.col("_period_cancel"), F.date_add(end, 1)).otherwise(start)
    searched = day >= search_start
    ordered = ordered.withColumn(
        "_first_renewal", F.min(F.when(searched & ~cancel, F.col("_pos"))).over(member)
    )

    pos = F.col("_pos")
    last_sub = F.col("_last_period_sub")
    first_renewal = F.col("_first_renewal")
    expiry = F.col("membership_expire_date")
    after_last_sub = last_sub.isNull() | (pos > last_sub)
    before_renewal = first_renewal.isNull() | (pos < first_renewal)
    per_member = ordered.groupBy("msno", "period_start", "period_end").agg(
        F.max(F.when(in_history, F.struct("_pos", "membership_expire_date")))
        .getField("membership_expire_date")
        .alias("history_expire"),
        F.first("_period_cancel").alias("period_cancel"),
        F.max(F.when(pos == last_sub, expiry)).alias("period_sub_expire"),
        F.min(F.when(in_period & cancel & after_last_sub, expiry)).alias("period_cancel_expire"),
        F.min(F.when(searched & cancel & before_renewal, expiry)).alias("search_cancel_expire"),
        F.max(F.when(pos == first_renewal, day)).alias("renewal_date"),
    )
    plan_change_expire = F.least(
        F.coalesce(F.col("period_sub_expire"), F.col("history_expire")),
        F.col("period_cancel_expire"),
    )
    scope_expire = F.when(F.col("period_cancel"), plan_change_expire).otherwise(
        F.col("history_expire")
    )
    labelled = (
        per_member.where(F.col("history_expire").isNotNull())
        .withColumn("last_expire", scope_expire)
        .where((F.col("last_expire") >= start) & (F.col("last_expire") <= end))
    )
    reference_expire = F.least(F.col("last_expire"), F.col("search_cancel_expire"))
    gap = F.datediff(F.col("renewal_date"), reference_expire)
    is_churn = F.when(gap.isNull() | (gap >= RENEWAL_GRACE_DAYS), 1).otherwise(0)
    return labelled.select(
        "msno",
        "period_start",
        is_churn.cast("int").alias("is_churn"),
        "last_expire",
        gap.cast("int").alias("renewal_gap_days"),
    )


def scoring_candidates(transactions: DataFrame, period_start: dt.date) -> DataFrame:
    """Members to score for a period whose outcome is unknown: (msno, period_start, last_expire).

    The label scope without the future: the last history transaction (month before P) expires
    inside P. Uses only transactions dated before P.
    """
    start, end = period_bounds(period_start)
    history = transactions.where(
        (F.col("transaction_date") >= F.lit(add_months(start, -1)))
        & (F.col("transaction_date") < F.lit(start))
    )
    last = history.withColumn(
        "_rank",
        F.row_number().over(Window.partitionBy("msno").orderBy(*official_order(True))),
    ).where(F.col("_rank") == 1)
    return last.where(F.col("membership_expire_date").between(F.lit(start), F.lit(end))).select(
        "msno",
        F.lit(start).alias("period_start"),
        F.col("membership_expire_date").alias("last_expire"),
    )


def churn_history(labels: DataFrame) -> pd.DataFrame:
    """Observed churn rate per labelled period (small: one row per period), for the dashboard.

    Columns: period_start (date), members, churners, churn_rate.
    """
    rows = (
        labels.groupBy("period_start")
        .agg(F.count("*").alias("members"), F.sum("is_churn").alias("churners"))
        .orderBy("period_start")
        .collect()
    )
    frame = pd.DataFrame(
        [(r["period_start"], int(r["members"]), int(r["churners"])) for r in rows],
        columns=["period_start", "members", "churners"],
    )
    frame["churn_rate"] = frame["churners"] / frame["members"].where(frame["members"] > 0)
    return frame


def cross_check_labels(derived: DataFrame, file_labels: DataFrame, sample: int = 20) -> dict:
    """Compare a label file with the labels derived from the transactions for the same month.

    `derived`: msno, is_churn (one month); `file_labels`: msno, is_churn. Returns plain JSON:
    both, agree, disagree, only_in_file, only_derived, agreement (agree / both) and up to
    `sample` disagreeing members (msno, file, derived). Nothing is merged: the caller keeps
    the derived labels and reports this."""
    joined = (
        derived.select("msno", F.col("is_churn").alias("derived"))
        .dropDuplicates(["msno"])
        .join(
            file_labels.select("msno", F.col("is_churn").alias("file")).dropDuplicates(["msno"]),
            "msno",
            "full_outer",
        )
        .cache()
    )
    both = F.col("derived").isNotNull() & F.col("file").isNotNull()
    counts = joined.agg(
        F.sum(both.cast("int")).alias("both"),
        F.sum((both & (F.col("derived") == F.col("file"))).cast("int")).alias("agree"),
        F.sum(F.col("derived").isNull().cast("int")).alias("only_in_file"),
        F.sum(F.col("file").isNull().cast("int")).alias("only_derived"),
    ).first()
    result = {k: int(counts[k] or 0) for k in ("both", "agree", "only_in_file", "only_derived")}
    result["disagree"] = result["both"] - result["agree"]
    result["agreement"] = round(result["agree"] / result["both"], 4) if result["both"] else None
    rows = joined.where(both & (F.col("derived") != F.col("file"))).limit(sample).collect()
    result["disagreements"] = [
        {"msno": r["msno"], "file": int(r["file"]), "derived": int(r["derived"])} for r in rows
    ]
    joined.unpersist()
    return result
