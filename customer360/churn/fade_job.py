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

#: Members whose logs fit the clock (on the driver), and buckets of the per-member pass.
SAMPLE_MEMBERS = 2000
BUCKETS = 32
_EPOCH = dt.date(1970, 1, 1)
_PLAY_COLUMNS = ("num_25", "num_50", "num_75", "num_985", "num_100")


def fade_features(
    clean: DataFrame, user_logs: DataFrame, periods: Sequence[dt.date]
) -> tuple[DataFrame, FadeModel]:
    """(msno, period_start, `FADE_FEATURES` per member and period; the fitted clock).

    `clean`: `transactions_clean`; `user_logs`: the reader's rows (date, num_*)."""
    epoch = F.lit(_EPOCH)
    plays = sum((F.coalesce(F.col(c), F.lit(0)) for c in _PLAY_COLUMNS), F.lit(0))
    daily = user_logs.groupBy("msno", F.datediff("date", epoch).alias("day")).agg(
        F.sum(plays).cast("double").alias("plays")
    )
    transactions = clean.select(
        "msno",
        F.datediff("transaction_date", epoch).alias("transaction_day"),
        F.datediff("membership_expire_date", epoch).alias("expire_day"),
        F.col("is_cancel").cast("int").alias("is_cancel"),
    )
    span = daily.agg(F.min("day"), F.max("day")).first()
    log_days = None if span is None or span[0] is None else (int(span[0]), int(span[1]))
    model = _fit_on_sample(daily, transactions, log_days)
    periods = list(periods)

    def depths(logs: pd.DataFrame, bucket_transactions: pd.DataFrame) -> pd.DataFrame:
        return fade_depths(logs, bucket_transactions, periods, model, log_days)

    bucket = F.pmod(F.xxhash64("msno"), F.lit(BUCKETS)).alias("bucket")
    schema = "msno string, period_start date, " + ", ".join(f"{c} double" for c in FADE_FEATURES)
    features = (
        daily.select("*", bucket)
        .groupBy("bucket")
        .cogroup(transactions.select("*", bucket).groupBy("bucket"))
        .applyInPandas(depths, schema)
    )
    return features, model


def _fit_on_sample(
    daily: DataFrame, transactions: DataFrame, log_days: tuple[int, int] | None
) -> FadeModel:
    """The clock from the members with the smallest hashes (a fixed, uniform sample)."""
    sample = (
        daily.select("msno").distinct().orderBy(F.xxhash64("msno")).limit(SAMPLE_MEMBERS)
    ).cache()
    logs = daily.join(sample, "msno").toPandas()
    if logs.empty:
        sample.unpersist()
        return FadeModel()
    members = transactions.join(sample, "msno").toPandas()
    sample.unpersist()
    return fit_fade_model(logs, members, members=SAMPLE_MEMBERS, log_days=log_days)
