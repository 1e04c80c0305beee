"""Stable unified_customer_id: uuid5 of the cluster's smallest (source, source_key).

Pure data → id: a re-run gives the same ids, and a record joining or leaving another cluster
does not touch this one. The id changes only when the anchor changes: a record with a smaller
(source, source_key) joins the cluster, two clusters merge (the smaller anchor's id survives), or
the anchor leaves in a split. `carry_forward_ids` keeps ids across those events by reading the
previous link table (see docs/unify.md, "Stable ids").
"""

from __future__ import annotations

import uuid

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

DEFAULT_NAMESPACE = uuid.UUID("a23debe6-9f4e-572c-86b9-e39666dbe4d9")


def anchor_name(source: str, source_key: str) -> str:
    """The uuid5 name of a record: `source/source_key` (source names never contain '/')."""
    return f"{source}/{source_key}"


def unified_id(source: str, source_key: str, namespace: uuid.UUID = DEFAULT_NAMESPACE) -> str:
    """The id a cluster anchored at (source, source_key) gets, computed in Python."""
    return str(uuid.uuid5(namespace, anchor_name(source, source_key)))


def uuid5_column(name: Column, namespace: uuid.UUID = DEFAULT_NAMESPACE) -> Column:
    """RFC 4122 uuid5 in Spark SQL, byte-identical to Python's uuid.uuid5(namespace, name)."""
    digest = F.sha1(F.concat(F.unhex(F.lit(namespace.hex)), F.encode(name, "UTF-8")))
    variant_nibble = F.conv(F.substring(digest, 17, 1), 16, 10).cast("int") % 4 + 8
    variant = F.lower(F.conv(variant_nibble.cast("string"), 10, 16))
    hex32 = F.concat(
        F.substring(digest, 1, 12),
        F.lit("5"),  # version
        F.substring(digest, 14, 3),
        variant,  # RFC 4122 variant bits 10xx
        F.substring(digest, 18, 15),
    )
    return F.concat_ws(
        "-",
        F.substring(hex32, 1, 8),
        F.substring(hex32, 9, 4),
        F.substring(hex32, 13, 4),
        F.substring(hex32, 17, 4),
        F.substring(hex32, 21, 12),
    )


def anchor_id_column(
    anchor_source: Column, anchor_key: Column, namespace: uuid.UUID = DEFAULT_NAMESPACE
) -> Column:
    return uuid5_column(F.concat(anchor_source, F.lit("/"), anchor_key), namespace)


def carry_forward_ids(
    clusters: DataFrame,
    previous_links: DataFrame,
    namespace: uuid.UUID = DEFAULT_NAMESPACE,
    reserved_ids: DataFrame | None = None,
) -> DataFrame:
    """Keep the ids of the previous run where the same people are still together.

    `clusters`: output of cluster(); `previous_links`: the previous link table (at least
    unified_customer_id, source, source_key). Each previous id goes to the new cluster holding
    most of its records (tie: the smaller anchor); a cluster offered several previous ids (a
    merge) keeps the one covering most of its records (tie: the smaller id) and the others
    retire (see id_redirects). A cluster offered none gets its anchor id; should that id be held
    by another cluster, it gets uuid5 of `source/key#2`. Adds `id_origin`: carried | new.

    `reserved_ids` (a unified_customer_id column): ids held by clusters outside `clusters` (an
    incremental run re-resolves a subset), never given out again.

    The rule is linking.carry_forward, one definition for both engines: the assignment is
    global (one previous id may be offered to several clusters), so it runs on the driver over
    the collected clusters (two string columns and a count per record), like the union-find.
    """
    from customer360.lakehouse.spark_arrow import arrow_to_spark, spark_to_arrow
    from customer360.unify import linking

    columns = ("source", "source_key", "anchor_source", "anchor_key", "unified_customer_id",
               "cluster_size")  # fmt: skip
    reserved = (
        spark_to_arrow(reserved_ids.select("unified_customer_id"))
        if reserved_ids is not None
        else pa.table({"unified_customer_id": pa.array([], pa.string())})
    )
    carried = linking.carry_forward(
        spark_to_arrow(clusters.select(*columns)),
        spark_to_arrow(previous_links.select("unified_customer_id", "source", "source_key")),
        namespace,
        reserved,
    )
    return arrow_to_spark(clusters.sparkSession, carried)


def id_redirects(previous_links: DataFrame, clusters: DataFrame) -> DataFrame:
    """Previous ids that no longer exist → the id now holding most of their records
    (previous_id, unified_customer_id), so downstream systems can redirect."""
    current_ids = clusters.select("unified_customer_id").distinct()
    gone = previous_links.select(
        F.col("unified_customer_id").alias("previous_id"), "source", "source_key"
    ).join(current_ids, F.col("previous_id") == F.col("unified_customer_id"), "left_anti")
    moved = (
        gone.join(
            clusters.select("source", "source_key", "unified_customer_id"), ["source", "source_key"]
        )
        .groupBy("previous_id", "unified_customer_id")
        .agg(F.count("*").alias("_n"))
    )
    best = Window.partitionBy("previous_id").orderBy(F.col("_n").desc(), "unified_customer_id")
    return (
        moved.withColumn("_r", F.row_number().over(best))
        .filter("_r = 1")
        .select("previous_id", "unified_customer_id")
    )
