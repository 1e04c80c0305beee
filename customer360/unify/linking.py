"""The closure of an incremental run, clustered on the driver (Python union-find and DuckDB over
Arrow): the rows cluster.cluster, ids.carry_forward_ids, merge.link_table and
review.pair_table give, for the few thousand records a new export folder disturbs, without
the Spark jobs those take.

Spark stays the definition and runs every full resolution; tests/unify/test_recluster.py and
tests/unify/test_unify_incremental.py check that both ways give the same rows (ids included).
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.unify.cluster import union_find
from customer360.unify.ids import unified_id
from customer360.unify.schema import NODE_SEPARATOR, PAIR_KEYS


def clusters(edges: pa.Table, nodes: pa.Table, namespace: uuid.UUID) -> pa.Table:
    """cluster.cluster(edges, nodes, namespace): source, source_key, anchor_source, anchor_key,
    unified_customer_id, cluster_size for every record of `nodes` (source, source_key);
    `edges`: matched pairs (PAIR_KEYS)."""
    ends = [
        [f"{s}{NODE_SEPARATOR}{k}" for s, k in zip(edges[f"{side}_source"].to_pylist(),
                                                   edges[f"{side}_key"].to_pylist(), strict=True)]
        for side in ("left", "right")
    ]  # fmt: skip
    roots = union_find([(a, b) for a, b in zip(*ends, strict=True) if a != b])
    sources, keys = nodes["source"].to_pylist(), nodes["source_key"].to_pylist()
    anchors = [
        roots.get(node, node).split(NODE_SEPARATOR, 1)
        for node in (f"{s}{NODE_SEPARATOR}{k}" for s, k in zip(sources, keys, strict=True))
    ]
    ids = {(s, k): unified_id(s, k, namespace) for s, k in map(tuple, anchors)}
    members = pa.table(
        {
            "source": pa.array(sources, pa.string()),
            "source_key": pa.array(keys, pa.string()),
            "anchor_source": pa.array([a[0] for a in anchors], pa.string()),
            "anchor_key": pa.array([a[1] for a in anchors], pa.string()),
            "unified_customer_id": pa.array([ids[tuple(a)] for a in anchors], pa.string()),
        }
    )
    return arrow_query(
        """SELECT *, count(*) OVER (PARTITION BY anchor_source, anchor_key) AS cluster_size
           FROM members""",
        members=members,
    )


def carry_forward(
    clustered: pa.Table, previous_links: pa.Table, namespace: uuid.UUID, reserved: pa.Table
) -> pa.Table:
    """ids.carry_forward_ids(clustered, previous_links, namespace, reserved): the same rules
    (each previous id to the cluster holding most of its records, a cluster offered several
    keeps the one covering most; ids taken or `reserved` are not given out again)."""
    anchors = arrow_query(
        "SELECT DISTINCT anchor_source, anchor_key FROM c", c=clustered
    ).to_pylist()
    second = pa.table(
        {
            "anchor_source": pa.array([a["anchor_source"] for a in anchors], pa.string()),
            "anchor_key": pa.array([a["anchor_key"] for a in anchors], pa.string()),
            "_second": pa.array(
                [unified_id(a["anchor_source"], f"{a['anchor_key']}#2", namespace)
                 for a in anchors], pa.string(),
            ),
        }
    )  # fmt: skip
    return arrow_query(
        """WITH overlap AS (
                SELECT c.anchor_source, c.anchor_key, p.unified_customer_id AS _prev,
                       count(*) AS _shared
                FROM c JOIN prev p ON c.source = p.source AND c.source_key = p.source_key
                GROUP BY ALL),
            offered AS (
                SELECT * FROM overlap QUALIFY row_number() OVER (
                    PARTITION BY _prev ORDER BY _shared DESC, anchor_source, anchor_key) = 1),
            kept AS (
                SELECT anchor_source, anchor_key, _prev FROM offered QUALIFY row_number() OVER (
                    PARTITION BY anchor_source, anchor_key ORDER BY _shared DESC, _prev) = 1),
            taken AS (SELECT _prev AS id FROM kept UNION SELECT unified_customer_id FROM reserved)
           SELECT c.source, c.source_key, c.anchor_source, c.anchor_key,
                  coalesce(k._prev, CASE WHEN c.unified_customer_id IN (SELECT id FROM taken)
                                         THEN s._second ELSE c.unified_customer_id END)
                      AS unified_customer_id,
                  c.cluster_size,
                  CASE WHEN k._prev IS NULL THEN 'new' ELSE 'carried' END AS id_origin
           FROM c LEFT JOIN kept k USING (anchor_source, anchor_key)
           JOIN second s USING (anchor_source, anchor_key)""",
        c=clustered,
        prev=previous_links.select(["unified_customer_id", "source", "source_key"]),
        reserved=reserved.select(["unified_customer_id"]),
        second=second,
    )


def link_table(clustered: pa.Table, pairs: pa.Table) -> pa.Table:
    """merge.link_table(clustered, pairs): every record, its profile and strongest match."""
    return arrow_query(
        """WITH ends AS (
                SELECT left_source AS source, left_key AS source_key, rule, score,
                       right_source AS matched_source, right_key AS matched_key FROM pairs
                UNION ALL
                SELECT right_source, right_key, rule, score, left_source, left_key FROM pairs),
            strongest AS (
                SELECT * FROM ends QUALIFY row_number() OVER (PARTITION BY source, source_key
                    ORDER BY score DESC, matched_source, matched_key) = 1)
           SELECT c.unified_customer_id, c.source, c.source_key, s.rule, s.score,
                  s.matched_source, s.matched_key,
                  c.source = c.anchor_source AND c.source_key = c.anchor_key AS is_anchor,
                  c.cluster_size
           FROM c LEFT JOIN strongest s USING (source, source_key)""",
        c=clustered,
        pairs=pairs.select([*PAIR_KEYS, "rule", "score"]),
    )


def pair_table(pairs: pa.Table, clustered: pa.Table) -> pa.Table:
    """review.pair_table(pairs, clustered): the pairs with their profile's id."""
    columns = ", ".join(f'p."{c}"' for c in pairs.column_names)
    return arrow_query(
        f"""SELECT c.unified_customer_id, {columns} FROM pairs p
            JOIN c ON c.source = p.left_source AND c.source_key = p.left_key""",
        pairs=pairs,
        c=clustered.select(["source", "source_key", "unified_customer_id"]),
    )
