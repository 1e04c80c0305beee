"""The driver's clustering of a closure (customer360.unify.linking) gives the rows Spark gives.

A random match graph over two sources, a previous link table that splits and merges its
clusters in every way (ids carried, retired, offered twice) and reserved ids that collide with
new anchors' ids: cluster → carry_forward_ids → link_table / pair_table in Spark, and the same
steps on the driver, must give identical rows, ids included.
"""

from __future__ import annotations

import random
import uuid

import pyarrow as pa
import pytest
from arrow_rows import sorted_rows

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import linking
from customer360.unify.cluster import cluster
from customer360.unify.ids import carry_forward_ids, unified_id
from customer360.unify.merge import link_table
from customer360.unify.review import pair_table

pytestmark = pytest.mark.spark

NAMESPACE = uuid.UUID("a23debe6-9f4e-572c-86b9-e39666dbe4d9")


def _graph(seed: int = 3, count: int = 120):
    rng = random.Random(seed)
    records = sorted({(rng.choice(["crm", "dataverse"]), str(rng.randrange(1000)))
                      for _ in range(count)})  # fmt: skip
    pairs = {}
    for _ in range(count):
        a, b = sorted(rng.sample(records, 2))
        pairs[(a, b)] = (rng.choice(["r1", "r2"]), rng.choice([1.0, 0.9, 0.875]))
    edges = pa.table(
        {
            "left_source": [a[0] for a, _ in pairs], "left_key": [a[1] for a, _ in pairs],
            "right_source": [b[0] for _, b in pairs], "right_key": [b[1] for _, b in pairs],
            "rule": [v[0] for v in pairs.values()], "score": [v[1] for v in pairs.values()],
            "matched_rules": [[v[0]] for v in pairs.values()],
        }
    )  # fmt: skip
    nodes = pa.table({"source": [r[0] for r in records], "source_key": [r[1] for r in records]})
    # Previous profiles: runs of consecutive records (they split and merge against the graph),
    # some keeping the id their anchor gets now.
    ids, previous = [], []
    for i, record in enumerate(records):
        if i % 4 == 0:
            ids.append(unified_id(*record, NAMESPACE) if i % 8 == 0 else f"old-{i}")
        previous.append({"unified_customer_id": ids[-1], "source": record[0],
                         "source_key": record[1]})  # fmt: skip
    reserved = pa.table({"unified_customer_id": [unified_id(*r, NAMESPACE) for r in records[1::5]]})
    return edges, nodes, pa.Table.from_pylist(previous), reserved


def test_driver_clustering_equals_spark(spark):
    edges, nodes, previous, reserved = _graph()
    edges_df = spark.createDataFrame(edges)
    clusters_df = carry_forward_ids(
        cluster(edges_df, spark.createDataFrame(nodes), NAMESPACE, method="driver"),
        spark.createDataFrame(previous),
        NAMESPACE,
        spark.createDataFrame(reserved),
    ).cache()
    expected = spark_to_arrow(clusters_df)
    got = linking.carry_forward(
        linking.clusters(edges, nodes, NAMESPACE), previous, NAMESPACE, reserved
    )
    assert sorted_rows(got) == sorted_rows(expected.select(got.column_names))
    origins = set(got["id_origin"].to_pylist())
    assert origins == {"carried", "new"}  # both ways an id is given are exercised
    assert max(got["cluster_size"].to_pylist()) > 3
    anchors = zip(got["anchor_source"].to_pylist(), got["anchor_key"].to_pylist(), strict=True)
    second_ids = {unified_id(s, f"{k}#2", NAMESPACE) for s, k in anchors}
    assert second_ids & set(got["unified_customer_id"].to_pylist())  # a reserved id collided

    assert sorted_rows(linking.link_table(got, edges)) == sorted_rows(
        spark_to_arrow(link_table(clusters_df, edges_df))
    )
    assert sorted_rows(linking.pair_table(edges, got)) == sorted_rows(
        spark_to_arrow(pair_table(edges_df, clusters_df))
    )
    clusters_df.unpersist()


def test_vectorised_uuid5_equals_pythons():
    names = ["dataverse/0", "crm/c00000001", "résidents/ключ-1", "web/a b#2", "x/" + "9" * 200]
    names += [f"crm/{random.Random(i).randrange(10**12)}" for i in range(500)]
    got = arrow_query(
        f"SELECT {linking.uuid5_sql('d')} AS id FROM "
        f"(SELECT {linking.uuid5_digest_sql('name', NAMESPACE)} AS d FROM n)",
        n=pa.table({"name": names}),
    )["id"].to_pylist()
    assert got == [str(uuid.uuid5(NAMESPACE, name)) for name in names]
