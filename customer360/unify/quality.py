"""Quality figures: precision and recall against a truth set, and the run's own counts."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify.keys import node_id
from customer360.unify.schema import PAIR_KEYS


def oriented(pairs: DataFrame) -> DataFrame:
    """Pairs with the smaller (source, key) on the left, so (a, b) and (b, a) compare equal."""
    left = node_id(F.col("left_source"), F.col("left_key"))
    right = node_id(F.col("right_source"), F.col("right_key"))
    swap = left > right
    flipped = {
        "left_source": F.when(swap, F.col("right_source")).otherwise(F.col("left_source")),
        "left_key": F.when(swap, F.col("right_key")).otherwise(F.col("left_key")),
        "right_source": F.when(swap, F.col("left_source")).otherwise(F.col("right_source")),
        "right_key": F.when(swap, F.col("left_key")).otherwise(F.col("right_key")),
    }
    return pairs.withColumns(flipped)


def _within(groups: DataFrame, group_column: str) -> DataFrame:
    nodes = groups.select(
        group_column,
        "source",
        "source_key",
        node_id(F.col("source"), F.col("source_key")).alias("n"),
    )
    left, right = nodes.alias("l"), nodes.alias("r")
    joined = left.join(
        right,
        (F.col(f"l.{group_column}") == F.col(f"r.{group_column}")) & (F.col("l.n") < F.col("r.n")),
    )
    return joined.select(
        F.col("l.source").alias("left_source"),
        F.col("l.source_key").alias("left_key"),
        F.col("r.source").alias("right_source"),
        F.col("r.source_key").alias("right_key"),
    )


def truth_pairs_from_entities(records: DataFrame, entity_column: str) -> DataFrame:
    """Truth set from a column that names the real person: every pair of records that share a
    non-null `entity_column` (PAIR_KEYS columns)."""
    return _within(records.filter(F.col(entity_column).isNotNull()), entity_column)


def cluster_pairs(clusters: DataFrame) -> DataFrame:
    """Every pair of records that ended up in the same profile (quadratic per cluster: meant
    for evaluation), so the profiles themselves can be scored with evaluate()."""
    return _within(clusters, "unified_customer_id")


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if not precision or not recall:
        return 0.0 if precision is not None and recall is not None else None
    return round(2 * precision * recall / (precision + recall), 6)


def evaluate(pairs: DataFrame, truth_pairs: DataFrame, sample: int = 10) -> dict[str, Any]:
    """Precision, recall and F1 of `pairs` against `truth_pairs` (both with PAIR_KEYS columns;
    orientation does not matter; duplicates count once).

    With a `rule` column in `pairs` (e.g. score_pairs(...) filtered to decision == 'match'),
    `per_rule` gives each rule's own pairs, true positives, precision and recall. Precision is
    None when there are no pairs. Samples of false positives / negatives are (left, right)
    `source/key` tuples.
    """
    truth = oriented(truth_pairs).select(*PAIR_KEYS).distinct().withColumn("_true", F.lit(True))
    with_rule = "rule" in pairs.columns
    found = oriented(pairs).select(*(["rule"] if with_rule else []), *PAIR_KEYS).distinct()
    labelled = found.join(truth, list(PAIR_KEYS), "left").withColumn(
        "_true", F.coalesce("_true", F.lit(False))
    )
    distinct = labelled.select(*PAIR_KEYS, "_true").distinct()
    counts = distinct.groupBy("_true").count().collect()
    by_label = {r["_true"]: r["count"] for r in counts}
    tp, fp = by_label.get(True, 0), by_label.get(False, 0)
    n_truth = truth.count()

    def label(row) -> tuple[str, str]:
        return (f"{row.left_source}/{row.left_key}", f"{row.right_source}/{row.right_key}")

    fps = distinct.filter(~F.col("_true")).orderBy(*PAIR_KEYS).limit(sample).collect()
    fns = (
        truth.join(distinct, list(PAIR_KEYS), "left_anti")
        .orderBy(*PAIR_KEYS)
        .limit(sample)
        .collect()
    )
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, n_truth)
    result: dict[str, Any] = {
        "pairs": tp + fp,
        "truth_pairs": n_truth,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": n_truth - tp,
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "false_positive_sample": [label(r) for r in fps],
        "false_negative_sample": [label(r) for r in fns],
    }
    if with_rule:
        per_rule = {}
        rows = labelled.groupBy("rule").agg(
            F.count("*").alias("n"), F.sum(F.col("_true").cast("int")).alias("tp")
        )
        for row in rows.orderBy("rule").collect():
            p, r = _ratio(row.tp, row.n), _ratio(row.tp, n_truth)
            per_rule[row.rule] = {
                "pairs": row.n,
                "true_positives": row.tp,
                "precision": p,
                "recall": r,
                "f1": _f1(p, r),
            }
        result["per_rule"] = per_rule
    return result


def quality_figures(
    scored: DataFrame, pairs: DataFrame, clusters: DataFrame, review: DataFrame
) -> dict[str, Any]:
    """Counts a run reports: records (per source), profiles, merge rate (share of records folded
    into another record's profile), profile sizes, cross-source profiles, pairs compared / matched
    / sent to review per rule, matched pairs per deciding rule, review candidates.

    The profile counts are table_figures over two collected columns (one definition for the
    DataFrames of a run and the tables an incremental run leaves)."""
    return {
        **table_figures(
            spark_to_arrow(clusters.select("unified_customer_id", "source")),
            spark_to_arrow(pairs.select("rule")),
        ),
        **decision_figures(scored),
        "review_candidates": review.count(),
    }


def decision_figures(scored: DataFrame | pa.Table) -> dict[str, Any]:
    """pairs_compared, pairs_compared_per_rule and decisions_per_rule of score_pairs() rows
    (Spark, or Arrow from pair_scoring.score)."""
    if isinstance(scored, pa.Table):
        counted = scored.group_by(["rule", "decision"]).aggregate([([], "count_all")])
        rows = [(r["rule"], r["decision"], r["count_all"]) for r in counted.to_pylist()]
    else:
        counted = scored.groupBy("rule", "decision").count().collect()
        rows = [(r.rule, r.decision, r["count"]) for r in counted]
    compared: dict[str, int] = {}
    decided: dict[str, dict[str, int]] = {}
    for rule, decision, count in rows:
        compared[rule] = compared.get(rule, 0) + count
        decided.setdefault(rule, {})[decision] = count
    return {
        "pairs_compared": sum(compared.values()),
        "pairs_compared_per_rule": compared,
        "decisions_per_rule": decided,
    }


def table_figures(links: pa.Table, pairs: pa.Table) -> dict[str, Any]:
    """The profile counts of a resolution (Arrow, no Spark): `links` (unified_customer_id,
    source: the link table or the clusters), `pairs` (rule: the pair table)."""
    per_source = links.group_by("source").aggregate([([], "count_all")]).to_pylist()
    sizes = links.group_by("unified_customer_id").aggregate(
        [([], "count_all"), ("source", "count_distinct")]
    )
    sizes = pa.table({"size": sizes["count_all"], "sources": sizes["source_count_distinct"]})
    histogram = sizes.group_by("size").aggregate([([], "count_all")]).to_pylist()
    profile_sizes = {r["size"]: r["count_all"] for r in histogram}
    records, profiles = links.num_rows, sizes.num_rows
    attributed = pairs.group_by("rule").aggregate([([], "count_all")]).to_pylist()
    return {
        "records": records,
        "records_per_source": {
            r["source"]: r["count_all"] for r in sorted(per_source, key=lambda r: r["source"])
        },
        "profiles": profiles,
        "multi_record_profiles": profiles - profile_sizes.get(1, 0),
        "cross_source_profiles": int(pc.sum(pc.greater(sizes["sources"], 1)).as_py() or 0),
        "merge_rate": _ratio(records - profiles, records),
        "profile_sizes": dict(sorted(profile_sizes.items())),
        "matched_pairs": sum(r["count_all"] for r in attributed),
        "pairs_per_rule": {r["rule"]: r["count_all"] for r in attributed},
    }
