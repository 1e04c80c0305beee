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
import pyarrow.compute as pc

from customer360.lakehouse.arrow_sql import arrow_query, sql_text
from customer360.unify.cluster import union_find
from customer360.unify.schema import NODE_SEPARATOR, PAIR_KEYS


def uuid5_digest_sql(name: str, namespace: uuid.UUID) -> str:
    """DuckDB SQL: the SHA-1 (hex) behind ids.unified_id for the text expression `name`
    (`source/key`): the namespace's bytes, then the name's UTF-8 (RFC 4122 uuid5)."""
    return f"sha1(unhex('{namespace.hex}') || encode({name}))"


def uuid5_sql(digest: str) -> str:
    """DuckDB SQL: the uuid5 text of a uuid5_digest_sql column `digest`, version and variant
    bits set; byte-identical to Python's uuid.uuid5 (tests/unify/test_linking.py). Vectorised:
    a million anchors take a fraction of a second instead of a Python loop."""
    d = digest
    variant = f"substr('89ab', (strpos('0123456789abcdef', substr({d}, 17, 1)) - 1) % 4 + 1, 1)"
    return (
        f"substr({d}, 1, 8) || '-' || substr({d}, 9, 4) || '-5' || substr({d}, 14, 3) || '-'"
        f" || {variant} || substr({d}, 18, 3) || '-' || substr({d}, 21, 12)"
    )


def clusters(edges: pa.Table, nodes: pa.Table, namespace: uuid.UUID) -> pa.Table:
    """cluster.cluster(edges, nodes, namespace): source, source_key, anchor_source, anchor_key,
    unified_customer_id, cluster_size for every record of `nodes` (source, source_key);
    `edges`: matched pairs (PAIR_KEYS)."""
    ends = [
        pc.binary_join_element_wise(edges[f"{side}_source"], edges[f"{side}_key"],
                                    NODE_SEPARATOR).to_pylist()
        for side in ("left", "right")
    ]  # fmt: skip
    roots = union_find([(a, b) for a, b in zip(*ends, strict=True) if a != b])
    anchors = [root.split(NODE_SEPARATOR, 1) for root in roots.values()]
    linked = pa.table(
        {
            "node": pa.array(list(roots), pa.string()),
            "anchor_source": pa.array([a[0] for a in anchors], pa.string()),
            "anchor_key": pa.array([a[1] for a in anchors], pa.string()),
        }
    )
    sep = sql_text(NODE_SEPARATOR)
    # Records in no edge are their own anchor; only the linked ones go through the join.
    return arrow_query(
        f"""WITH members AS (
                SELECT n.source, n.source_key,
                       coalesce(l.anchor_source, n.source) AS anchor_source,
                       coalesce(l.anchor_key, n.source_key) AS anchor_key
                FROM nodes n LEFT JOIN linked l ON l.node = n.source || {sep} || n.source_key),
            hashed AS (
                SELECT *, {uuid5_digest_sql("anchor_source || '/' || anchor_key", namespace)}
                    AS _digest FROM members)
            SELECT source, source_key, anchor_source, anchor_key,
                   {uuid5_sql("_digest")} AS unified_customer_id,
                   count(*) OVER (PARTITION BY anchor_source, anchor_key) AS cluster_size
            FROM hashed""",
        nodes=nodes.select(["source", "source_key"]),
        linked=linked,
    )


def carry_forward(
    clustered: pa.Table, previous_links: pa.Table, namespace: uuid.UUID, reserved: pa.Table
) -> pa.Table:
    """ids.carry_forward_ids(clustered, previous_links, namespace, reserved): the same rules
    (each previous id to the cluster holding most of its records, a cluster offered several
    keeps the one covering most; ids taken or `reserved` are not given out again)."""
    second = arrow_query(
        f"""SELECT anchor_source, anchor_key, {uuid5_sql("_digest")} AS _second FROM (
                SELECT *, {uuid5_digest_sql("anchor_source || '/' || anchor_key || '#2'",
                                            namespace)} AS _digest
                FROM (SELECT DISTINCT anchor_source, anchor_key FROM c))""",
        c=clustered.select(["anchor_source", "anchor_key"]),
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
