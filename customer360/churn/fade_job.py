"""Runs the engagement model (`fading.py`) on Spark for every feature month.

Two steps: the population's clock is fitted on the driver from a sample of members (their
daily plays and transactions, a few MB), then every bucket of members runs the forward–backward
pass on an executor (`cogroup` of the bucket's daily plays and transactions, `applyInPandas`),
so no member's logs ever leave its bucket and the driver holds only the sample.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.churn.fading import FADE_FEATURES, FadeModel, fade_depths, fit_fade_model

#: Members whose logs fit the clock (on the driver).
SAMPLE_MEMBERS = 2000
#: Members per bucket of the per-member pass: the pass steps through every day of the year in
#: Python, so a bucket of a few dozen members is mostly interpreter overhead (on a 3,000-member
#: drop 32 buckets of ~90 members took 19 s of CPU, 8 of ~375 took 8.5 s), and its memory grows
#: with the bucket's logs.
BUCKET_MEMBERS = 500
#: Buckets on a small drop: enough to keep a few cores busy.
MIN_BUCKETS = 8
_EPOCH = dt.date(1970, 1, 1)
_PLAY_COLUMNS = ("num_25", "num_50", "num_75", "num_985", "num_100")


def fade_features(
    clean: DataFrame,
    user_logs: DataFrame,
    periods: Sequence[dt.date],
    logs: tuple[dt.date | None, dt.date | None] | None = None,
) -> tuple[DataFrame, FadeModel]:
    """(msno, period_start, `FADE_FEATURES` per member and period; the fitted clock).

    `clean`: `transactions_clean`; `user_logs`: the reader's rows (date, num_*); `logs`: the
    first and last log date (`log_range`, computed when None)."""
    epoch = F.lit(_EPOCH)
    transactions = clean.select(
        "msno",
        F.datediff("transaction_date", epoch).alias("transaction_day"),
        F.datediff("membership_expire_date", epoch).alias("expire_day"),
        F.col("is_cancel").cast("int").alias("is_cancel"),
    )
    first, last = logs or log_range(user_logs)
    log_days = None if first is None else ((first - _EPOCH).days, (last - _EPOCH).days)
    members = transactions.agg(F.approx_count_distinct("msno")).first()[0] or 0
    model = _fit_on_sample(user_logs, transactions, log_days, members)
    periods = list(periods)

    def depths(bucket_logs: pd.DataFrame, bucket_transactions: pd.DataFrame) -> pd.DataFrame:
        return fade_depths(bucket_logs, bucket_transactions, periods, model, log_days)

    buckets = max(MIN_BUCKETS, -(-members // BUCKET_MEMBERS))
    bucket = F.pmod(F.xxhash64("msno"), F.lit(buckets)).alias("bucket")
    schema = "msno string, period_start date, " + ", ".join(f"{c} double" for c in FADE_FEATURES)
    features = (
        _daily(user_logs)
        .select("*", bucket)
        .groupBy("bucket")
        .cogroup(transactions.select("*", bucket).groupBy("bucket"))
        .applyInPandas(depths, schema)
    )
    return features, model


def log_range(user_logs: DataFrame) -> tuple[dt.date | None, dt.date | None]:
    """(first, last) log date: engagement outside it is unknown, not zero."""
    row = user_logs.agg(F.min("date").alias("first"), F.max("date").alias("last")).first()
    return (row["first"], row["last"]) if row else (None, None)


def _daily(user_logs: DataFrame) -> DataFrame:
    """msno, day, plays: a member's rows of one day summed (the reader keeps them apart)."""
    plays = sum((F.coalesce(F.col(c), F.lit(0)) for c in _PLAY_COLUMNS), F.lit(0))
    return user_logs.groupBy("msno", F.datediff("date", F.lit(_EPOCH)).alias("day")).agg(
        F.sum(plays).cast("double").alias("plays")
    )


def _fit_on_sample(
    user_logs: DataFrame, transactions: DataFrame, log_days: tuple[int, int] | None, members: int
) -> FadeModel:
    """The clock from about `SAMPLE_MEMBERS` of the (about) `members`: one hash slice of them,
    a fixed and uniform sample that one filtered scan reads (nothing sorts or shuffles every
    member)."""
    in_slice = F.pmod(F.xxhash64("msno"), F.lit(max(1, members // SAMPLE_MEMBERS))) == 0
    logs = _daily(user_logs.where(in_slice)).toPandas()
    if logs.empty:
        return FadeModel()
    sample = transactions.where(in_slice).toPandas()
    return fit_fade_model(logs, sample, members=SAMPLE_MEMBERS, log_days=log_days)
