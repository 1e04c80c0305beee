"""One pass over the logs of the 180 days before each period, for every window feature group.

The activity group (the reference set's last 30 days), the trend (fixed windows up to 90 days
back) and the shift against the member's usual level (up to 180 days back, `engagement.py`)
are all sums over the member's days with log rows before P. Each used to join the logs to the
members' periods on its own (three joins, four with the peak's blocks); here the logs are
summed per member and day once, joined to the periods once, and every group's sums are taken
in one aggregation: per 30-day block first, then per member and period (the blocks also give
the shift's peak level). On a 3,000-member drop the three groups' own passes took 16 s, and
the features step went from 40 s to 31 s with the one pass (2 cores, 2026-12-07).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

#: Days before P the pass reaches (the usual level's 91–180 days back are the farthest).
WINDOW_DAYS = 180
#: Days per block (the shift's peak level is the best block's).
BLOCK_DAYS = 30
_PLAYS = ("num_25", "num_50", "num_75", "num_985", "num_100")


def day_back() -> Column:
    """Days from a joined row's date to P (1: the day before P)."""
    return F.datediff(F.col("period_start"), F.col("date"))


def window_sums(
    current: DataFrame,
    user_logs: DataFrame,
    periods: Sequence[dt.date],
    sums: Mapping[str, Column],
    per_block: Mapping[str, Column] | None = None,
    over_blocks: Sequence[Column] = (),
) -> DataFrame:
    """`current` (one row per member and period: msno, period_start, transaction_date,
    membership_expire_date, subscription_start, …) with `_exp`, `_last_tx`, `_sub_start`
    (below) and, left-joined: each of `sums` summed
    over the member's days with log rows in the WINDOW_DAYS before P, `_last_listen` (the
    latest of those days) and the `over_blocks` aggregates — NULL for a member without such a
    day.

    The `sums` and `per_block` expressions read a joined row: `_exp` (the current expiry),
    `_last_tx` (the last transaction's date), `_sub_start` (the subscription's start),
    `period_start`, `date` and the day's `sessions` (log rows), `seconds`, `uniq` and `plays`.
    `per_block`: aggregates per member, period and `_block` (0: the 30 days before P, 1: the
    30 before those, …), which the `over_blocks` aggregates read."""
    first_day = min(periods) - dt.timedelta(days=WINDOW_DAYS)
    last_day = max(periods) - dt.timedelta(days=1)
    # A literal date range first, so the scan prunes (and Parquet skips) everything else.
    daily = (
        user_logs.where(F.col("date").between(F.lit(first_day), F.lit(last_day)))
        .groupBy("msno", "date")
        .agg(
            F.count("*").alias("sessions"),
            F.sum("total_secs").alias("seconds"),
            F.sum("num_unq").alias("uniq"),
            F.sum(sum((F.col(c) for c in _PLAYS), F.lit(0))).alias("plays"),
        )
    )
    named = [
        F.col("membership_expire_date").alias("_exp"),
        F.col("transaction_date").alias("_last_tx"),
        F.col("subscription_start").alias("_sub_start"),
    ]
    state = current.select("msno", "period_start", *named)
    back = day_back()
    window = (
        daily.join(state, "msno")
        .where((back >= 1) & (back <= WINDOW_DAYS))
        .withColumn("_block", F.floor((back - 1) / BLOCK_DAYS).cast("int"))
    )
    blocks = window.groupBy("msno", "period_start", "_block").agg(
        *[F.sum(column).alias(name) for name, column in sums.items()],
        F.max("date").alias("_last_listen"),
        *[column.alias(name) for name, column in (per_block or {}).items()],
    )
    member = blocks.groupBy("msno", "period_start").agg(
        *[F.sum(name).alias(name) for name in sums],
        F.max("_last_listen").alias("_last_listen"),
        *over_blocks,
    )
    return current.select("*", *named).join(member, ["msno", "period_start"], "left")
