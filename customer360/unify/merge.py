"""Merge each cluster into one profile (survivorship per attribute group) and keep the links
from every source record to its profile."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from customer360.unify.config import Survivorship, SurvivorshipGroup
from customer360.unify.schema import RECORD_ATTRIBUTES

_LAST = 2**62  # sorts a missing modified_at after every real one


def _source_rank(priority: tuple[str, ...]) -> Column:
    if not priority:
        return F.lit(0)
    ranks = F.create_map(*[F.lit(x) for i, s in enumerate(priority) for x in (s, i)])
    return F.coalesce(ranks[F.col("source")], F.lit(len(priority)))


def _non_null_count(columns: tuple[str, ...]) -> Column:
    counts = [F.when(F.col(c).isNotNull(), 1).otherwise(0) for c in columns]
    return sum(counts[1:], counts[0])


def _value_length(columns: tuple[str, ...]) -> Column:
    lengths = [F.coalesce(F.length(F.col(c).cast("string")), F.lit(0)) for c in columns]
    return sum(lengths[1:], lengths[0])


def _order(group: SurvivorshipGroup) -> Column:
    """Ascending sort key: eligible records first, then the strategy, then the tie-breakers."""
    eligible = _non_null_count(group.columns) > 0
    by_strategy = {
        "most_recent": [F.col("_recency"), F.col("_rank")],
        "source_priority": [F.col("_rank"), F.col("_recency")],
        "most_complete": [
            -_non_null_count(group.columns),
            -_value_length(group.columns),
            F.col("_rank"),
            F.col("_recency"),
        ],
        "most_frequent": [-F.col(f"_freq_{group.name}"), F.col("_rank"), F.col("_recency")],
    }[group.strategy]
    keys = [F.when(eligible, 0).otherwise(1), *by_strategy, F.col("source"), F.col("source_key")]
    return F.struct(*[k.alias(f"k{i}") for i, k in enumerate(keys)])


def merge_profiles(
    records: DataFrame, clusters: DataFrame, survivorship: Survivorship
) -> DataFrame:
    """One row per unified_customer_id.

    Columns: unified_customer_id, the record attributes (schema.RECORD_ATTRIBUTES) chosen by the
    survivorship groups, record_count, sources (sorted, distinct), source_records (sorted
    `source/key`), last_modified_at, survivorship (map group → `source/key` of the record that
    supplied the group; null when no record had a value).
    """
    rows = records.join(
        clusters.select("source", "source_key", "unified_customer_id"), ["source", "source_key"]
    ).withColumns(
        {
            "_rank": _source_rank(survivorship.source_priority),
            "_recency": F.coalesce(-F.unix_micros("modified_at"), F.lit(_LAST)),
        }
    )
    for group in survivorship.groups:
        if group.strategy == "most_frequent":
            value = F.to_json(F.struct(*group.columns))
            agreeing = Window.partitionBy("unified_customer_id", value)
            # Records without a value never count as agreeing with each other.
            freq = F.when(_non_null_count(group.columns) > 0, F.count("*").over(agreeing))
            rows = rows.withColumn(f"_freq_{group.name}", F.coalesce(freq, F.lit(0)))
    chosen = [
        F.min_by(
            F.struct(
                *group.columns,
                (_non_null_count(group.columns) > 0).alias("_has"),
                F.concat(F.col("source"), F.lit("/"), F.col("source_key")).alias("_from"),
            ),
            _order(group),
        ).alias(f"_g_{group.name}")
        for group in survivorship.groups
    ]
    profiles = rows.groupBy("unified_customer_id").agg(
        *chosen,
        F.count("*").alias("record_count"),
        F.array_sort(F.collect_set("source")).alias("sources"),
        F.array_sort(F.collect_list(F.concat(F.col("source"), F.lit("/"), F.col("source_key"))))
        .alias("source_records"),
        F.max("modified_at").alias("last_modified_at"),
    )  # fmt: skip
    group_of = {c: g.name for g in survivorship.groups for c in g.columns}
    provenance = F.create_map(
        *[
            x
            for g in survivorship.groups
            for x in (
                F.lit(g.name),
                F.when(F.col(f"_g_{g.name}._has"), F.col(f"_g_{g.name}._from")),
            )
        ]
    )
    return profiles.select(
        "unified_customer_id",
        *[F.col(f"_g_{group_of[c]}.{c}").alias(c) for c in RECORD_ATTRIBUTES],
        "record_count",
        "sources",
        "source_records",
        "last_modified_at",
        provenance.alias("survivorship"),
    )


def link_table(clusters: DataFrame, pairs: DataFrame) -> DataFrame:
    """Every source record → its profile, with the strongest matched pair that links it.

    Columns: unified_customer_id, source, source_key, rule, score, matched_source, matched_key,
    is_anchor, cluster_size. rule/score/matched_* are null for a record that matched nothing
    (a one-record profile). Ties: highest score, then the smallest matched (source, key).
    """
    sides = [
        pairs.select(
            F.col(f"{me}_source").alias("source"),
            F.col(f"{me}_key").alias("source_key"),
            "rule",
            "score",
            F.col(f"{other}_source").alias("matched_source"),
            F.col(f"{other}_key").alias("matched_key"),
        )
        for me, other in (("left", "right"), ("right", "left"))
    ]
    ends = sides[0].unionByName(sides[1])
    strongest = ends.groupBy("source", "source_key").agg(
        F.min_by(
            F.struct("rule", "score", "matched_source", "matched_key"),
            F.struct(-F.col("score"), F.col("matched_source"), F.col("matched_key")),
        ).alias("_m")
    )
    return clusters.join(strongest, ["source", "source_key"], "left").select(
        "unified_customer_id",
        "source",
        "source_key",
        F.col("_m.rule").alias("rule"),
        F.col("_m.score").alias("score"),
        F.col("_m.matched_source").alias("matched_source"),
        F.col("_m.matched_key").alias("matched_key"),
        ((F.col("source") == F.col("anchor_source")) & (F.col("source_key") == F.col("anchor_key")))
        .alias("is_anchor"),
        "cluster_size",
    )  # fmt: skip
