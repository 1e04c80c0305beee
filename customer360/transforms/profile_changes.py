"""Which unified profiles an incremental gold run must re-derive, and the data-quality flag that
depends on other profiles (pyarrow in and out, DuckDB for the joins; no Spark)."""

from __future__ import annotations

import pyarrow as pa

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.unify.schema import NODE_SEPARATOR

UNIFIED_ID = "unified_customer_id"


def profile_changes(
    old_links: pa.Table, new_links: pa.Table, old_index: pa.Table, new_index: pa.Table
) -> pa.Table:
    """Records whose link changed (new, gone, or another unified id) or whose source row changed
    (its rec_hash in the identity block index): source, source_key, old_id, new_id (null when
    the record was not / is no longer linked). Their old profiles go, their new ones are
    re-derived in full. Links: unified_customer_id, source, source_key; index: node, rec_hash."""
    return arrow_query(
        f"""
        WITH rows_changed AS (
            SELECT coalesce(n.node, o.node) AS node
            FROM old_index o FULL OUTER JOIN new_index n ON o.node = n.node
            WHERE o.rec_hash IS DISTINCT FROM n.rec_hash),
        links AS (
            SELECT coalesce(n.source, o.source) AS source,
                   coalesce(n.source_key, o.source_key) AS source_key,
                   o.{UNIFIED_ID} AS old_id, n.{UNIFIED_ID} AS new_id
            FROM old_links o FULL OUTER JOIN new_links n
              ON o.source = n.source AND o.source_key = n.source_key)
        SELECT * FROM links
        WHERE old_id IS DISTINCT FROM new_id
           OR source || '{NODE_SEPARATOR}' || source_key IN (SELECT node FROM rows_changed)""",
        old_links=old_links,
        new_links=new_links,
        old_index=old_index,
        new_index=new_index,
    )


def duplicate_email_flags(
    rows: pa.Table, current: pa.Table, replaced: pa.Array
) -> tuple[pa.Table, pa.Array]:
    """`dq_duplicate_email` (an e-mail shared by several profiles) after replacing the profiles
    `replaced` with `rows`: (rows with the flag set over the whole table, ids of the other
    profiles whose flag flips). `current`: unified_customer_id, email, dq_duplicate_email of
    every profile before the change."""
    ids = pa.table({UNIFIED_ID: replaced})
    counts = arrow_query(
        f"""WITH kept AS (SELECT * FROM cur WHERE {UNIFIED_ID} NOT IN (SELECT * FROM ids)),
                 everyone AS (SELECT email FROM kept UNION ALL SELECT email FROM new_rows)
            SELECT email, count(*) AS n FROM everyone WHERE email IS NOT NULL GROUP BY email""",
        cur=current,
        ids=ids,
        new_rows=rows.select([UNIFIED_ID, "email"]),
    )
    flags = arrow_query(
        f"""SELECT r.{UNIFIED_ID}, coalesce(c.n > 1, false) AS flag
            FROM new_rows r LEFT JOIN counts c ON r.email = c.email""",
        new_rows=rows.select([UNIFIED_ID, "email"]),
        counts=counts,
    )
    flag_of = dict(zip(flags[UNIFIED_ID].to_pylist(), flags["flag"].to_pylist(), strict=True))
    column = pa.array([flag_of[i] for i in rows[UNIFIED_ID].to_pylist()], pa.bool_())
    rows = rows.set_column(rows.schema.get_field_index("dq_duplicate_email"),
                           "dq_duplicate_email", column)  # fmt: skip
    flipped = arrow_query(
        f"""WITH touched AS (
                SELECT email FROM cur WHERE {UNIFIED_ID} IN (SELECT * FROM ids)
                UNION SELECT email FROM new_rows)
            SELECT k.{UNIFIED_ID} FROM cur k JOIN counts c ON k.email = c.email
            WHERE k.{UNIFIED_ID} NOT IN (SELECT * FROM ids)
              AND k.email IN (SELECT email FROM touched)
              AND (c.n > 1) <> k.dq_duplicate_email""",
        cur=current,
        ids=ids,
        new_rows=rows.select([UNIFIED_ID, "email"]),
        counts=counts,
    )
    return rows, flipped[UNIFIED_ID].combine_chunks()
