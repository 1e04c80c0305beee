"""Connected components of the matched pairs: which records are one person.

Two interchangeable algorithms give the same answer, the component's smallest node id as its
anchor:
- `driver`: union-find in Python on the collected edges (≈ 10 s per million edges here, one
  collect); the default up to `max_driver_edges` edges;
- `spark`: min-label propagation with pointer jumping, iterated in Spark until no label changes
  (a few rounds for entity clusters, whose diameter is small); for graphs too big for the driver.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from customer360.unify.ids import DEFAULT_NAMESPACE, anchor_id_column
from customer360.unify.keys import node_id
from customer360.unify.schema import NODE_SEPARATOR

CLUSTER_COLUMNS = (
    "source", "source_key", "anchor_source", "anchor_key", "unified_customer_id", "cluster_size",
)  # fmt: skip


def _edges(pairs: DataFrame) -> DataFrame:
    return pairs.select(
        node_id(F.col("left_source"), F.col("left_key")).alias("a"),
        node_id(F.col("right_source"), F.col("right_key")).alias("b"),
    ).filter(F.col("a") != F.col("b"))


def union_find(edges: list[tuple[str, str]]) -> dict[str, str]:
    """node → smallest node of its component, for every node in `edges`."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:  # the smaller root wins, so every root is its component's minimum
            parent[max(ra, rb)] = min(ra, rb)
    return {node: find(node) for node in parent}


def _driver_labels(spark: SparkSession, edges: DataFrame) -> DataFrame:
    table = edges.toArrow()
    roots = union_find(
        list(zip(table.column("a").to_pylist(), table.column("b").to_pylist(), strict=True))
    )
    labels = pa.table(
        {
            "node": pa.array(list(roots), pa.string()),
            "label": pa.array(list(roots.values()), pa.string()),
        }
    )
    return spark.createDataFrame(labels)


def _spark_labels(edges: DataFrame, max_iterations: int) -> DataFrame:
    both = (
        edges.select(F.col("a").alias("node"), F.col("b").alias("other"))
        .unionByName(edges.select(F.col("b").alias("node"), F.col("a").alias("other")))
        .localCheckpoint()
    )
    labels = (
        both.groupBy("node")
        .agg(F.least(F.min("other"), F.first("node")).alias("label"))
        .localCheckpoint()
    )
    for _ in range(max_iterations):
        # Each node takes the smallest label among its neighbours, then jumps to its label's label.
        neighbour = (
            both.join(labels.withColumnRenamed("node", "other"), "other")
            .groupBy("node")
            .agg(F.min("label").alias("_n"))
        )
        step = labels.join(neighbour, "node").select(
            "node", F.col("label").alias("_old"), F.least("label", "_n").alias("label")
        )
        jump = step.alias("s").join(step.alias("t"), F.col("s.label") == F.col("t.node"))
        nxt = jump.select(
            F.col("s.node").alias("node"),
            F.least("s.label", "t.label").alias("label"),
            F.col("s._old").alias("_old"),
        ).localCheckpoint()
        labels = nxt.select("node", "label")
        if nxt.filter(F.col("label") != F.col("_old")).isEmpty():
            return labels
    raise RuntimeError(f"clustering did not converge in {max_iterations} iterations")


def cluster(
    pairs: DataFrame,
    records: DataFrame,
    namespace: uuid.UUID = DEFAULT_NAMESPACE,
    *,
    method: str = "auto",
    max_driver_edges: int = 5_000_000,
    max_iterations: int = 50,
) -> DataFrame:
    """Every record → its cluster: source, source_key, anchor_source, anchor_key (the cluster's
    smallest (source, source_key)), unified_customer_id (uuid5 of the anchor), cluster_size.

    `pairs`: matched pairs (left_source, left_key, right_source, right_key), e.g. best_pairs();
    `records`: all records (source, source_key); a record in no pair is its own cluster.
    `method`: auto | driver | spark (auto counts the edges and picks driver up to
    `max_driver_edges`).
    """
    if method not in ("auto", "driver", "spark"):
        raise ValueError(f"method must be auto, driver or spark, not {method!r}")
    edges = _edges(pairs)
    if method == "auto":
        method = "driver" if edges.count() <= max_driver_edges else "spark"
    if method == "driver":
        labels = _driver_labels(records.sparkSession, edges)
    else:
        labels = _spark_labels(edges, max_iterations)
    nodes = records.select(
        "source", "source_key", node_id(F.col("source"), F.col("source_key")).alias("node")
    )
    anchor = F.coalesce(F.col("label"), F.col("node"))
    key_start = F.instr(anchor, NODE_SEPARATOR) + 1
    out = nodes.join(labels, "node", "left").select(
        "source",
        "source_key",
        F.substring_index(anchor, NODE_SEPARATOR, 1).alias("anchor_source"),
        anchor.substr(key_start, F.length(anchor)).alias("anchor_key"),
    )
    size = F.count("*").over(Window.partitionBy("anchor_source", "anchor_key"))
    return out.select(
        "source",
        "source_key",
        "anchor_source",
        "anchor_key",
        anchor_id_column(F.col("anchor_source"), F.col("anchor_key"), namespace).alias(
            "unified_customer_id"
        ),
        size.alias("cluster_size"),
    )
