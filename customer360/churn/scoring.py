"""Scoring the month whose outcome is unknown: every candidate with features gets a calibrated
probability, a risk band and the threshold; the candidates left unscored are listed with why."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.churn.enrichment import risk_band_column
from customer360.churn.model import ModelBundle, predict_churn_spark

NO_TRANSACTION = "no clean transaction before the scoring month"
NO_SUBSCRIPTION = "no current subscription in the 30 days before the scoring month"


def score_month(
    bundle: ModelBundle,
    features: DataFrame,
    candidates: DataFrame,
    scoring: dt.date,
    threshold: float,
) -> DataFrame:
    """Predictions for the candidates (`scoring_candidates`) that have features for `scoring`:
    msno, churn_probability, period_start, threshold, above_threshold, risk_band,
    model_version. Computed on the executors; nothing is collected."""
    rows = candidates.select("msno").join(
        features.where(F.col("period_start") == F.lit(scoring)), "msno"
    )
    probability = F.col("churn_probability")
    return (
        predict_churn_spark(bundle, rows)
        .withColumn("period_start", F.lit(scoring))
        .withColumn("threshold", F.lit(threshold))
        .withColumn("above_threshold", probability >= F.lit(threshold))
        .withColumn("risk_band", risk_band_column("churn_probability", threshold))
        .withColumn("model_version", F.lit(bundle.version))
    )


def unscored_candidates(
    candidates: DataFrame, scored: DataFrame, clean: DataFrame, scoring: dt.date
) -> DataFrame:
    """Candidates without a prediction (msno, last_expire, why): few by design, so listed."""
    missing = candidates.join(scored.select("msno"), "msno", "left_anti")
    before = clean.where(F.col("transaction_date") < F.lit(scoring)).groupBy("msno").count()
    why = F.when(F.col("count").isNull(), NO_TRANSACTION).otherwise(NO_SUBSCRIPTION)
    return missing.join(before, "msno", "left").select("msno", "last_expire", why.alias("why"))
