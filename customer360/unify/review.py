"""Explainability on Spark: the pair table per profile, and near misses for human review. The
rules are linking.pair_table and pair_scoring.review_rows, run per pair (on_spark)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.unify import linking, pair_scoring
from customer360.unify.on_spark import map_groups
from customer360.unify.schema import PAIR_KEYS


def pair_table(pairs: DataFrame, clusters: DataFrame) -> DataFrame:
    """best_pairs() + unified_customer_id: which rule linked which records in each profile."""
    members = clusters.select("source", "source_key", "unified_customer_id")
    return map_groups(
        {
            "pairs": (pairs, ("left_source", "left_key")),
            "clustered": (members, ("source", "source_key")),
        },
        lambda pairs, clustered: linking.pair_table(pairs, clustered),
    )


def candidates(scored: DataFrame, clusters: DataFrame) -> DataFrame:
    """match_candidates: pairs scored in [review_threshold, threshold) by some rule, matched by
    no rule, and not already in one profile through other links. One row per pair (its highest
    review score, then the earliest rule), with both records' compared fields side by side.

    Columns: left_source, left_key, right_source, right_key, rule, score, threshold,
    review_threshold, left_unified_customer_id, right_unified_customer_id, l_*/r_* fields.
    """
    pairs = scored.filter(F.col("decision").isin("match", "review"))
    for side in ("left", "right"):
        ids = clusters.select(
            F.col("source").alias(f"{side}_source"),
            F.col("source_key").alias(f"{side}_key"),
            F.col("unified_customer_id").alias(f"{side}_unified_customer_id"),
        )
        pairs = pairs.join(ids, [f"{side}_source", f"{side}_key"])
    return map_groups({"scored": (pairs, PAIR_KEYS)}, pair_scoring.review_rows)
