"""Incremental identity resolution: which records changed since the last run, and which records
must be re-resolved because of them (pyarrow tables in and out, DuckDB for the set algebra).

The last run leaves a *block index* (gold/_match_index): per record its node, a fingerprint of
its source row and the block id of every blocking pass (match.block_columns). A run then:

1. fingerprints the sources and diffs them with the index → the changed records
   (`changed_records`);
2. marks as *dirty* the changed records plus every member of a block whose size crossed a
   rule's `max_block_size` (its pairs appear or vanish) and finds the dirty records' block
   partners and the global size of every dirty block (`dirty_scope`);
3. re-scores only the pairs with a dirty end (pair_scoring.focused_candidates, the driver's
   match.candidate_pairs with `block_sizes` and `focus`); every other pair joins two unchanged
   records through unchanged blocks, so its score and decision are the previous run's;
4. re-clusters the *closure* (`resolution_closure`): the dirty records, the ends of their new
   matches, and every record of a previous profile holding one of them. No match edge crosses
   the closure's boundary, so clustering it alone gives the clusters a full run would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360.lakehouse.arrow_sql import arrow_query, sql_name
from customer360.unify.schema import NODE_SEPARATOR

#: Columns of the block index besides the block ids.
INDEX_KEY_COLUMNS = ("node", "source", "source_key", "rec_hash")
#: Bump when the fingerprint definition changes: every record then counts as changed.
#: v2: the index carries the cheap guards' fields (pair_scoring.guard_fields), so an index
#: written before then is rebuilt by a full run.
FINGERPRINT_VERSION = f"duckdb-{duckdb.__version__}-hash-v2"


def fingerprints(rows: pa.Table, source: str, key_column: str) -> pa.Table:
    """node, source, source_key (text), rec_hash (a 64-bit hash of every column of `rows`) for
    one source's rows. `rows` holds the columns the records are made from: any change to them
    changes the hash (a collision, ~1e-7 for a million records, would hide one change)."""
    columns = ", ".join(sql_name(c) for c in rows.column_names)
    key = f"CAST({sql_name(key_column)} AS VARCHAR)"
    return arrow_query(
        f"""SELECT ? || ? || {key} AS node, ? AS source, {key} AS source_key,
                   -- shifted into BIGINT: Delta has no unsigned integers
                   CAST(CAST(hash({columns}) AS HUGEINT) - 9223372036854775808 AS BIGINT)
                       AS rec_hash
            FROM rows""",
        [source, NODE_SEPARATOR, source],
        rows=rows,
    )


def changed_records(index: pa.Table, current: pa.Table) -> pa.Table:
    """Records new, changed or gone since the index was written: node, source, source_key,
    deleted (bool). `index` and `current` both hold node, source, source_key, rec_hash."""
    return arrow_query(
        """SELECT coalesce(c.node, i.node) AS node, coalesce(c.source, i.source) AS source,
                  coalesce(c.source_key, i.source_key) AS source_key, c.node IS NULL AS deleted
           FROM idx i FULL OUTER JOIN cur c ON i.node = c.node
           WHERE i.rec_hash IS DISTINCT FROM c.rec_hash""",
        idx=index.select(list(INDEX_KEY_COLUMNS)),
        cur=current.select(list(INDEX_KEY_COLUMNS)),
    )


def updated_index(index: pa.Table, changed: pa.Table, fresh: pa.Table) -> pa.Table:
    """The index after the change: rows of unchanged records, plus `fresh` (the index rows of
    the changed records still present)."""
    # An Arrow filter, not SQL: the million-row index's strings are not converted back and forth.
    kept = index.filter(pc.invert(pc.is_in(index["node"], changed["node"])))
    return pa.concat_tables([kept, fresh.select(kept.column_names).cast(kept.schema)])


@dataclass(frozen=True)
class DirtyScope:
    dirty: pa.Table  # node, source, source_key: records whose pairs are all re-scored
    partners: pa.Table  # node, source, source_key: other members of the dirty records' blocks
    block_sizes: pa.Table  # _block, _size: every block of a dirty record, counted over all
    crossing_blocks: int  # blocks whose size crossed max_block_size (their members are dirty)
    #: node, _col, _block: every member (dirty or partner) of a dirty record's block within its
    #: rule's max_block_size; the re-scored pairs are formed on it (pair_scoring.focused_pairs)
    members: pa.Table


_MEMBER_COLUMNS = ["node", "source", "source_key"]
#: oversized_index_blocks(): every block over its rule's max_block_size.
OVERSIZED_SCHEMA = pa.schema(
    [
        pa.field("_col", pa.string()),
        pa.field("_block", pa.string()),
        pa.field("records", pa.int64()),
    ]
)


def _members(index: pa.Table, column: str, blocks: pa.Array) -> pa.Table:
    """node, source, source_key, _block of the rows of `index` whose `column` is in `blocks`:
    one hash lookup per row of that column (no unpivot of the whole index)."""
    rows = index.select([*_MEMBER_COLUMNS, column]).filter(pc.is_in(index[column], blocks))
    return rows.rename_columns([*_MEMBER_COLUMNS, "_block"])


def _sizes(blocks: pa.ChunkedArray | pa.Array) -> pa.Table:
    """_block, _size: the records per block of `blocks` (one block id per member row)."""
    if not len(blocks):
        return pa.table({"_block": pa.array([], blocks.type), "_size": pa.array([], pa.int64())})
    counted = pc.value_counts(blocks).flatten()
    return pa.table({"_block": counted[0], "_size": counted[1].cast(pa.int64())})


def _blocks_of(rows: pa.Table, column: str) -> pa.Array:
    """The distinct non-null block ids of `rows`' `column`."""
    return pc.unique(rows[column].combine_chunks().drop_null())


def dirty_scope(
    previous: pa.Table,
    current: pa.Table,
    changed: pa.Table,
    max_block_sizes: Mapping[str, int],
) -> DirtyScope:
    """What the changed records disturb. `previous` / `current`: the block index before and
    after the change (updated_index: the same rows but the changed records'); `changed`:
    changed_records(); `max_block_sizes`: block column → its rule's max_block_size.

    Proportional to the change, not to the index: per block column, the members of the blocks
    a changed record was or is in are found with one hash lookup of that column against those
    few block ids (no unpivot of the million-row index into (record, block) rows); block
    sizes, crossings, partners and the members the pairs are formed on come from them. The
    sizes before the change need no pass over `previous`: only the changed rows differ."""
    was = previous.filter(pc.is_in(previous["node"], changed["node"]))
    now = current.filter(pc.is_in(current["node"], changed["node"]))
    crossing_members, crossing, touched_members = [], 0, {}
    for column, limit in max_block_sizes.items():
        touched = pc.unique(pa.concat_arrays([_blocks_of(was, column), _blocks_of(now, column)]))
        if not len(touched):
            continue
        after_rows = _members(current, column, touched)
        after = _size_of(touched, _sizes(after_rows["_block"]))
        # `current` is `previous` with the changed records' rows swapped (updated_index): a
        # size before is the size after, less the changed rows now in it, plus those then.
        before = (after - _size_of(touched, _sizes(now[column].drop_null()))
                  + _size_of(touched, _sizes(was[column].drop_null())))  # fmt: skip
        crossed = touched.filter(pa.array((before <= limit) != (after <= limit)))
        crossing += len(crossed)
        touched_members[column] = (touched, after_rows)
        if len(crossed):
            crossing_members.append(after_rows.filter(pc.is_in(after_rows["_block"], crossed)))
    live = now.select(_MEMBER_COLUMNS)
    dirty = _distinct_nodes([live, *(m.select(_MEMBER_COLUMNS) for m in crossing_members)])
    dirty_rows = now if not crossing_members else current.filter(
        pc.is_in(current["node"], dirty["node"]))  # fmt: skip
    members, sizes = [], []
    for column, limit in max_block_sizes.items():
        blocks = _blocks_of(dirty_rows, column)
        if not len(blocks):
            continue
        touched, after_rows = touched_members.get(column, (None, None))
        if touched is not None and pc.all(pc.is_in(blocks, touched)).as_py():
            rows = after_rows.filter(pc.is_in(after_rows["_block"], blocks))
        else:  # a crossing block's members are in blocks no changed record is in
            rows = _members(current, column, blocks)
        counted = _sizes(rows["_block"])
        sizes.append(counted)
        within = counted.filter(pc.less_equal(counted["_size"], limit))["_block"]
        kept = rows.filter(pc.is_in(rows["_block"], within))
        members.append(kept.append_column("_col", pa.array([column] * kept.num_rows, pa.string())))
    member_rows = _concat_or_empty(members, current)
    others = member_rows.filter(pc.invert(pc.is_in(member_rows["node"], dirty["node"])))
    partners = _distinct_nodes([others.select(_MEMBER_COLUMNS)])
    block_sizes = pa.concat_tables(sizes) if sizes else _sizes(pa.array([], pa.string()))
    return DirtyScope(dirty, partners, block_sizes, crossing,
                      member_rows.select(["node", "_col", "_block"]))  # fmt: skip


def _size_of(blocks: pa.Array, sizes: pa.Table) -> np.ndarray:
    """The _size of each of `blocks` in `sizes` (_block, _size); 0 where absent."""
    found = pc.take(sizes["_size"], pc.index_in(blocks, sizes["_block"]))
    return pc.fill_null(found, 0).to_numpy(zero_copy_only=False)


def _distinct_nodes(parts: Sequence[pa.Table]) -> pa.Table:
    """node, source, source_key rows of `parts`, each node once."""
    rows = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return rows.group_by(_MEMBER_COLUMNS, use_threads=False).aggregate([])


def _concat_or_empty(parts: list[pa.Table], like: pa.Table) -> pa.Table:
    """The member rows of every column (node, source, source_key, _block, _col)."""
    if parts:
        return pa.concat_tables(parts)
    fields = [like.schema.field(c) for c in _MEMBER_COLUMNS]
    schema = pa.schema([*fields, pa.field("_block", pa.string()), pa.field("_col", pa.string())])
    return schema.empty_table()


@dataclass(frozen=True)
class Closure:
    nodes: pa.Table  # source, source_key of every live record to re-cluster
    previous_ids: pa.Array  # previous unified ids of the closure (their rows are replaced)
    edges: pa.Table  # the closure's match edges: kept previous pairs + the new ones


def resolution_closure(
    dirty: pa.Table,
    deleted: pa.Table,
    new_pairs: pa.Table,
    previous_links: pa.Table,
    previous_pairs: pa.Table,
) -> Closure:
    """The records to re-cluster and their match edges.

    `dirty` / `deleted`: node, source, source_key; `new_pairs`: the re-scored matched pairs
    (best_pairs columns), each with a dirty end; `previous_links`: unified_customer_id, source,
    source_key; `previous_pairs`: the previous match pair table (unified_customer_id, best_pairs
    columns). Previous pairs with a dirty or deleted end are dropped (they were re-scored); the
    others are unchanged and kept."""
    seeds_sql = """
        SELECT source, source_key FROM dirty UNION SELECT source, source_key FROM deleted
        UNION SELECT left_source, left_key FROM new_pairs
        UNION SELECT right_source, right_key FROM new_pairs"""
    tables = {
        "dirty": dirty.select(["source", "source_key"]),
        "deleted": deleted.select(["source", "source_key"]),
        "new_pairs": new_pairs,
        "links": previous_links.select(["unified_customer_id", "source", "source_key"]),
    }
    old_ids = arrow_query(
        f"""SELECT DISTINCT l.unified_customer_id FROM links l
            SEMI JOIN ({seeds_sql}) s ON l.source = s.source AND l.source_key = s.source_key""",
        **tables,
    )["unified_customer_id"].combine_chunks()
    nodes = arrow_query(
        f"""WITH members AS (
                SELECT source, source_key FROM links
                WHERE unified_customer_id IN (SELECT * FROM old_ids)
                UNION {seeds_sql})
            SELECT m.source, m.source_key FROM members m
            ANTI JOIN deleted d ON m.source = d.source AND m.source_key = d.source_key""",
        old_ids=pa.table({"unified_customer_id": old_ids}),
        **tables,
    )
    gone = arrow_query(
        "SELECT source, source_key FROM dirty UNION SELECT source, source_key FROM deleted",
        **tables,
    )
    pair_columns = [c for c in previous_pairs.column_names if c != "unified_customer_id"]
    kept = arrow_query(
        f"""SELECT {", ".join(sql_name(c) for c in pair_columns)} FROM pairs p
            WHERE p.unified_customer_id IN (SELECT * FROM old_ids)
              AND NOT EXISTS (SELECT 1 FROM gone g WHERE
                  (g.source = p.left_source AND g.source_key = p.left_key)
                  OR (g.source = p.right_source AND g.source_key = p.right_key))""",
        pairs=previous_pairs,
        old_ids=pa.table({"unified_customer_id": old_ids}),
        gone=gone,
    )
    edges = pa.concat_tables(
        [kept, new_pairs.select(pair_columns).cast(kept.schema)], promote_options="none"
    )
    return Closure(nodes, old_ids, edges)


def touching(rows: pa.Table, nodes: pa.Table, sides: Sequence[str] = ("left", "right")) -> pa.Array:
    """Boolean mask: rows (with <side>_source, <side>_key) with an end among `nodes`
    (source, source_key)."""
    conditions = " OR ".join(
        f"EXISTS (SELECT 1 FROM nodes n WHERE n.source = r.{s}_source AND n.source_key = r.{s}_key)"
        for s in sides
    )
    numbered = rows.select([f"{s}_{p}" for s in sides for p in ("source", "key")])
    numbered = numbered.append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
    result = arrow_query(
        f"SELECT _row, ({conditions}) AS hit FROM r ORDER BY _row",
        r=numbered,
        nodes=nodes.select(["source", "source_key"]),
    )
    return result["hit"].combine_chunks()


def oversized_index_blocks(index: pa.Table, max_block_sizes: Mapping[str, int]) -> pa.Table:
    """Every block over its rule's max_block_size: _col (block column), _block, records."""
    if index.num_rows == 0 or not max_block_sizes:
        return OVERSIZED_SCHEMA.empty_table()
    # One aggregation per block column (a block id belongs to one pass): no unpivot of the
    # million-row index into millions of (record, block) rows.
    per_column = " UNION ALL ".join(
        f"SELECT '{c}' AS _col, {sql_name(c)} AS _block, count(*) AS records FROM idx "
        f"WHERE {sql_name(c)} IS NOT NULL GROUP BY 2 HAVING count(*) > {int(m)}"
        for c, m in max_block_sizes.items()
    )
    found = arrow_query(per_column, idx=index.select(list(max_block_sizes)))
    return found.select(OVERSIZED_SCHEMA.names).cast(OVERSIZED_SCHEMA)


def oversized_after_change(
    oversized: pa.Table,
    previous: pa.Table,
    current: pa.Table,
    changed: pa.Table,
    max_block_sizes: Mapping[str, int],
) -> pa.Table:
    """oversized_index_blocks(current) from oversized_index_blocks(previous) and the change:
    only the blocks a changed record was or is in can change size, so only they are counted
    again (one hash lookup per block column, as in dirty_scope) instead of grouping the whole
    index."""
    was = previous.filter(pc.is_in(previous["node"], changed["node"]))
    now = current.filter(pc.is_in(current["node"], changed["node"]))
    parts = []
    for column, limit in max_block_sizes.items():
        kept = oversized.filter(pc.equal(oversized["_col"], column))
        touched = pc.unique(pa.concat_arrays([_blocks_of(was, column), _blocks_of(now, column)]))
        if len(touched):
            kept = kept.filter(pc.invert(pc.is_in(kept["_block"], touched)))
            counted = _sizes(current[column].filter(pc.is_in(current[column], touched)))
            over = counted.filter(pc.greater(counted["_size"], limit))
            column_ids = pa.array([column] * over.num_rows, pa.string())
            counted_over = pa.table([column_ids, over["_block"], over["_size"]],
                                    names=OVERSIZED_SCHEMA.names)  # fmt: skip
            parts.append(counted_over.cast(OVERSIZED_SCHEMA))
        parts.append(kept.cast(OVERSIZED_SCHEMA))
    return pa.concat_tables(parts) if parts else OVERSIZED_SCHEMA.empty_table()


def oversized_report(oversized: pa.Table, limit: int = 20) -> list[dict]:
    """The `limit` largest of oversized_index_blocks(): block (separators shown as |), records."""
    top = oversized.sort_by([("records", "descending"), ("_block", "ascending")]).slice(0, limit)
    return [
        {"block": r["_block"].replace(NODE_SEPARATOR, "|"), "records": r["records"]}
        for r in top.select(["_block", "records"]).to_pylist()
    ]


def join_fingerprints(blocks: pa.Table, fingerprints: pa.Table) -> pa.Table:
    """Block index rows (match.block_index) with each record's rec_hash, in index column order."""
    block_names = [c for c in blocks.column_names if c not in INDEX_KEY_COLUMNS]
    selected = ", ".join(f"b.{sql_name(c)}" for c in block_names)
    return arrow_query(
        f"SELECT b.node, b.source, b.source_key, f.rec_hash, {selected} "
        "FROM blocks b JOIN fp f ON b.node = f.node",
        blocks=blocks,
        fp=fingerprints.select(["node", "rec_hash"]),
    )


def regrouped(candidates: pa.Table, links: pa.Table) -> pa.Table:
    """Review candidates with each end's unified id taken from `links` (source, source_key,
    unified_customer_id) where it has one; pairs now inside one profile are dropped."""
    return arrow_query(
        """SELECT c.* REPLACE (
                  coalesce(l.unified_customer_id, c.left_unified_customer_id)
                      AS left_unified_customer_id,
                  coalesce(r.unified_customer_id, c.right_unified_customer_id)
                      AS right_unified_customer_id)
           FROM cands c
           LEFT JOIN links l ON l.source = c.left_source AND l.source_key = c.left_key
           LEFT JOIN links r ON r.source = c.right_source AND r.source_key = c.right_key
           WHERE coalesce(l.unified_customer_id, c.left_unified_customer_id)
                 <> coalesce(r.unified_customer_id, c.right_unified_customer_id)""",
        cands=candidates,
        links=links.select(["source", "source_key", "unified_customer_id"]),
    ).cast(candidates.schema)
