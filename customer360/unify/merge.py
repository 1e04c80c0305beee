"""Merge each cluster into one profile (survivorship per attribute group) and keep the links
from every source record to its profile, on Spark. The rules are survivorship.merge_profiles
and linking.link_table, run per profile (on_spark): one definition for both engines."""

from __future__ import annotations

from pyspark.sql import DataFrame

from customer360.unify import linking, survivorship
from customer360.unify.config import Survivorship
from customer360.unify.on_spark import map_groups
from customer360.unify.review import pair_table
from customer360.unify.schema import RECORD_COLUMNS

_LINK = ("source", "source_key", "unified_customer_id")


def merge_profiles(records: DataFrame, clusters: DataFrame, rules: Survivorship) -> DataFrame:
    """One row per unified_customer_id.

    Columns: unified_customer_id, the record attributes (schema.RECORD_ATTRIBUTES) chosen by the
    survivorship groups, record_count, sources (sorted, distinct), source_records (sorted
    `source/key`), last_modified_at, survivorship (map group → `source/key` of the record that
    supplied the group; null when no record had a value).
    """
    rows = records.select(*RECORD_COLUMNS).join(clusters.select(*_LINK), ["source", "source_key"])
    return map_groups(
        {"rows": (rows, ("unified_customer_id",))},
        lambda rows: survivorship.merge_profiles(
            rows.select(list(RECORD_COLUMNS)), rows.select(list(_LINK)), rules
        ),
    )


def link_table(clusters: DataFrame, pairs: DataFrame) -> DataFrame:
    """Every source record → its profile, with the strongest matched pair that links it.

    Columns: unified_customer_id, source, source_key, rule, score, matched_source, matched_key,
    is_anchor, cluster_size. rule/score/matched_* are null for a record that matched nothing
    (a one-record profile). Ties: highest score, then the smallest matched (source, key).
    """
    members = clusters.select(*_LINK, "anchor_source", "anchor_key", "cluster_size")
    return map_groups(
        {
            "clustered": (members, ("unified_customer_id",)),
            "pairs": (pair_table(pairs, clusters), ("unified_customer_id",)),
        },
        lambda clustered, pairs: linking.link_table(clustered, pairs),
    )
