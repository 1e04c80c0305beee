"""Explainability: the pair table per profile, and near misses for human review."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.unify.schema import PAIR_KEYS


def pair_table(pairs: DataFrame, clusters: DataFrame) -> DataFrame:
    """best_pairs() + unified_customer_id: which rule linked which records in each profile."""
    ids = clusters.select(
        F.col("source").alias("left_source"),
        F.col("source_key").alias("left_key"),
        "unified_customer_id",
    )
    return pairs.join(ids, ["left_source", "left_key"]).select(
        "unified_customer_id", *pairs.columns
    )


def candidates(scored: DataFrame, clusters: DataFrame) -> DataFrame:
    """match_candidates: pairs scored in [review_threshold, threshold) by some rule, matched by
    no rule, and not already in one profile through other links. One row per pair (its highest
    review score, then the earliest rule), with both records' compared fields side by side.

    Columns: left_source, left_key, right_source, right_key, rule, score, threshold,
    review_threshold, left_unified_customer_id, right_unified_customer_id, l_*/r_* fields.
    """
    matched = scored.filter(F.col("decision") == "match").select(*PAIR_KEYS)
    review = scored.filter(F.col("decision") == "review").join(
        matched, list(PAIR_KEYS), "left_anti"
    )
    compared = [c[2:] for c in scored.columns if c.startswith("l_")]
    fields = [side + f for f in compared for side in ("l_", "r_")]
    keep = ["rule", "score", "threshold", "review_threshold", *fields]
    best = review.groupBy(*PAIR_KEYS).agg(
        F.min_by(F.struct(*keep), F.struct(-F.col("score"), F.col("rule_rank"))).alias("_c")
    )
    out = best.select(*PAIR_KEYS, *[F.col(f"_c.{c}").alias(c) for c in keep])
    for side in ("left", "right"):
        ids = clusters.select(
            F.col("source").alias(f"{side}_source"),
            F.col("source_key").alias(f"{side}_key"),
            F.col("unified_customer_id").alias(f"{side}_unified_customer_id"),
        )
        out = out.join(ids, [f"{side}_source", f"{side}_key"])
    out = out.filter(F.col("left_unified_customer_id") != F.col("right_unified_customer_id"))
    return out.select(
        *PAIR_KEYS,
        "rule",
        "score",
        "threshold",
        "review_threshold",
        "left_unified_customer_id",
        "right_unified_customer_id",
        *fields,
    )
