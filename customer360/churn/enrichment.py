"""Map churn predictions onto customers: risk bands and the msno ↔ customer join."""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from customer360.churn.ids import msno_column
from customer360.churn.model import PROBABILITY_COLUMN

#: Cut points relative to the chosen threshold t: high ≥ t (targeted), medium ≥ t/2, else low.
MEDIUM_FRACTION = 0.5
RISK_BANDS = ("low", "medium", "high")


def risk_band(probability: float, threshold: float) -> str:
    """'high' when probability ≥ threshold (the member gets an offer), 'medium' when it is at
    least half the threshold, else 'low'."""
    _check_threshold(threshold)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if probability >= threshold:
        return "high"
    if probability >= MEDIUM_FRACTION * threshold:
        return "medium"
    return "low"


def risk_band_column(probability: Column | str, threshold: float) -> Column:
    """Spark twin of `risk_band`."""
    _check_threshold(threshold)
    p = F.col(probability) if isinstance(probability, str) else probability
    return (
        F.when(p >= F.lit(threshold), "high")
        .when(p >= F.lit(MEDIUM_FRACTION * threshold), "medium")
        .when(p.isNotNull(), "low")
    )


def predictions_to_customers(
    predictions: DataFrame,
    customers: DataFrame,
    threshold: float,
    customer_id_column: str = "customer_id",
) -> DataFrame:
    """(customer_id, msno, churn_probability, churn_risk_band) for customers with a prediction.

    `predictions` has msno and churn_probability; `customers` has an integer id column whose
    msno is `msno_for_customer(id)` (computed in Spark). Customers without a prediction are
    not returned; join the result back with a left join to keep them.
    """
    if customer_id_column not in customers.columns:
        raise ValueError(f"customers has no {customer_id_column!r} column")
    keyed = customers.select(
        F.col(customer_id_column), msno_column(customer_id_column).alias("msno")
    ).dropDuplicates([customer_id_column])
    return keyed.join(predictions.select("msno", PROBABILITY_COLUMN), "msno", "inner").select(
        customer_id_column,
        "msno",
        PROBABILITY_COLUMN,
        risk_band_column(PROBABILITY_COLUMN, threshold).alias("churn_risk_band"),
    )


def _check_threshold(threshold: float) -> None:
    # Above 1 is allowed: the profit curve's "target nobody" threshold sits just above max(p).
    if not (threshold > 0.0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a positive number, got {threshold}")
