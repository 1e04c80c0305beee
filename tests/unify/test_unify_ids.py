"""Carrying unified ids across runs when clusters grow, merge or split."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from unify_builders import rec, records_df

from customer360.unify import carry_forward_ids, cluster, id_redirects, unified_id
from customer360.unify.ids import DEFAULT_NAMESPACE, uuid5_column

pytestmark = pytest.mark.spark

PAIR_DDL = "left_source string, left_key string, right_source string, right_key string"


def _run(spark, keys: list[str], links: list[tuple[str, str]], previous=None):
    records = records_df(spark, [rec(*k.split("/")) for k in keys])
    pairs = spark.createDataFrame(
        [(*a.split("/"), *b.split("/")) for a, b in links] or [], PAIR_DDL
    )
    clusters = cluster(pairs, records, method="driver")
    if previous is not None:
        clusters = carry_forward_ids(clusters, previous)
    return clusters.cache()


def _ids(clusters) -> dict[str, str]:
    return {f"{r.source}/{r.source_key}": r.unified_customer_id for r in clusters.collect()}


def test_ids_survive_growth_merge_and_split(spark):
    a1, c1 = unified_id("a", "1"), unified_id("c", "1")
    assert _ids(_run(spark, ["a/1", "c/1"], [])) == {"a/1": a1, "c/1": c1}  # no pairs at all
    first = _run(spark, ["a/1", "b/1", "c/1"], [("a/1", "b/1")])
    assert _ids(first) == {"a/1": a1, "b/1": a1, "c/1": c1}

    # A record with a smaller key joins: the anchor id would change, the carried one does not.
    grown = _run(spark, ["a/0", "a/1", "b/1", "c/1"], [("a/1", "b/1"), ("a/0", "b/1")], first)
    assert _ids(grown) == {"a/0": a1, "a/1": a1, "b/1": a1, "c/1": c1}
    assert {r.id_origin for r in grown.collect()} == {"carried"}

    # Two profiles merge: the id covering more records survives; the other redirects to it.
    merged = _run(spark, ["a/1", "b/1", "c/1"], [("a/1", "b/1"), ("b/1", "c/1")], first)
    assert _ids(merged) == {"a/1": a1, "b/1": a1, "c/1": a1}
    assert [tuple(r) for r in id_redirects(first, merged).collect()] == [(c1, a1)]

    # A split: the id follows the majority; the record that left gets a new id, not a1 (which
    # its anchor would give, but b/1 and c/1 still hold it).
    split = _run(spark, ["a/1", "b/1", "c/1"], [("b/1", "c/1")], merged)
    second = (
        spark.range(1).select(uuid5_column(F.lit("a/1#2"), DEFAULT_NAMESPACE).alias("u")).first().u
    )
    assert _ids(split) == {"a/1": second, "b/1": a1, "c/1": a1}
    origins = {f"{r.source}/{r.source_key}": r.id_origin for r in split.collect()}
    assert origins == {"a/1": "new", "b/1": "carried", "c/1": "carried"}
