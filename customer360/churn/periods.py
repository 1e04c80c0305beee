"""Monthly periods: a period is the calendar month whose membership expirations are labelled."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def period_bounds(period_start: dt.date) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the period; `period_start` must be the first of a month."""
    if period_start.day != 1:
        raise ValueError(f"period_start must be the first day of a month, got {period_start}")
    last = calendar.monthrange(period_start.year, period_start.month)[1]
    return period_start, period_start.replace(day=last)


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after (or before, if negative) `day`'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def periods_frame(spark: SparkSession, periods: Sequence[dt.date]) -> DataFrame:
    """One row per period: period_start, period_end, history_start (the month before).

    Lets one Spark pass compute several periods: the period becomes a column, not a literal.
    """
    if not periods:
        raise ValueError("at least one period is needed")
    if len(set(periods)) != len(periods):
        raise ValueError(f"periods repeat: {sorted(periods)}")
    rows = [
        F.struct(
            F.lit(p).alias("period_start"),
            F.lit(period_bounds(p)[1]).alias("period_end"),
            F.lit(add_months(p, -1)).alias("history_start"),
        )
        for p in sorted(periods)
    ]
    # Built from literals inside the JVM: no Python worker is started to scan it.
    return spark.range(1).select(F.inline(F.array(*rows)))
