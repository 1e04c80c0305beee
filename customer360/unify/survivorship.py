"""Survivorship for the few thousand profiles an incremental run re-derives, on the driver
(DuckDB over Arrow): the rows merge.merge_profiles gives, without its Spark stages.

merge.merge_profiles stays the definition and builds every profile in a full run;
tests/unify/test_remerge.py checks that both give the same rows. `records_table` is the Arrow
counterpart of sources.to_records for silver rows whose columns are already typed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from customer360.lakehouse.arrow_sql import arrow_query, sql_name, sql_text
from customer360.unify.config import Survivorship, SurvivorshipGroup
from customer360.unify.schema import RECORD_ATTRIBUTES, RECORD_COLUMNS, check_source_name

_LAST = 2**62  # merge._LAST: a missing modified_at sorts after every real one


def records_table(
    rows: pa.Table, source: str, key_column: str, modified_columns: Sequence[str]
) -> pa.Table:
    """sources.to_records on Arrow: silver rows of one source → schema.RECORD_COLUMNS, the key
    as text, modified_at the first non-null of `modified_columns` (timestamps), attributes the
    source lacks null."""
    check_source_name(source)
    present = set(rows.column_names)
    kinds = {"dateofbirth": "DATE"}
    attributes = [
        f"CAST({sql_name(c) if c in present else 'NULL'} AS {kinds.get(c, 'VARCHAR')}) "
        f"AS {sql_name(c)}"
        for c in RECORD_ATTRIBUTES
    ]
    stamps = [f"CAST({sql_name(c)} AS TIMESTAMPTZ)" for c in modified_columns if c in present]
    modified = f"coalesce({', '.join(stamps)})" if stamps else "CAST(NULL AS TIMESTAMPTZ)"
    return arrow_query(
        f"""SELECT {sql_text(source)} AS source,
                   CAST({sql_name(key_column)} AS VARCHAR) AS source_key,
                   {", ".join(attributes)}, {modified} AS modified_at FROM rows""",
        rows=rows,
    ).select(list(RECORD_COLUMNS))


def _non_null(columns: Sequence[str]) -> str:
    return "(" + " + ".join(f"CAST({sql_name(c)} IS NOT NULL AS INTEGER)" for c in columns) + ")"


def _order(group: SurvivorshipGroup) -> str:
    """merge._order as an ORDER BY list."""
    present = _non_null(group.columns)
    length = " + ".join(
        f"coalesce(length(CAST({sql_name(c)} AS VARCHAR)), 0)" for c in group.columns
    )
    by_strategy = {
        "most_recent": ["_recency", "_rank"],
        "source_priority": ["_rank", "_recency"],
        "most_complete": [f"-{present}", f"-({length})", "_rank", "_recency"],
        "most_frequent": [f"-{sql_name('_freq_' + group.name)}", "_rank", "_recency"],
    }[group.strategy]
    return ", ".join([f"CASE WHEN {present} > 0 THEN 0 ELSE 1 END", *by_strategy,
                      "source", "source_key"])  # fmt: skip


def merge_profiles(records: pa.Table, links: pa.Table, survivorship: Survivorship) -> pa.Table:
    """merge.merge_profiles on Arrow: `records` (schema.RECORD_COLUMNS), `links` (source,
    source_key, unified_customer_id) → one row per unified_customer_id."""
    priority = survivorship.source_priority
    rank = (
        "CASE r.source " + " ".join(f"WHEN {sql_text(s)} THEN {i}" for i, s in enumerate(priority))
        + f" ELSE {len(priority)} END" if priority else "0"
    )  # fmt: skip
    frequencies = [
        f"CASE WHEN {_non_null(g.columns)} > 0 THEN count(*) OVER (PARTITION BY "
        f"unified_customer_id, {', '.join(sql_name(c) for c in g.columns)}) ELSE 0 END "
        f"AS {sql_name('_freq_' + g.name)}"
        for g in survivorship.groups
        if g.strategy == "most_frequent"
    ]
    chosen, alone, provenance = [], [], []
    for g in survivorship.groups:
        order = _order(g)
        chosen += [f"first({sql_name(c)} ORDER BY {order}) AS {sql_name(c)}" for c in g.columns]
        alone += [sql_name(c) for c in g.columns]
        has, source = sql_name("_has_" + g.name), sql_name("_from_" + g.name)
        chosen.append(f"first({_non_null(g.columns)} > 0 ORDER BY {order}) AS {has}")
        chosen.append(f"first(source || '/' || source_key ORDER BY {order}) AS {source}")
        alone += [f"{_non_null(g.columns)} > 0 AS {has}",
                  f"source || '/' || source_key AS {source}"]  # fmt: skip
        provenance.append(f"CASE WHEN {has} THEN {source} END")
    names = ", ".join(sql_text(g.name) for g in survivorship.groups)
    # Most profiles hold one record, whose values are the profile's: those skip the ordered
    # aggregates (the same rows, a fraction of the work).
    return arrow_query(
        f"""WITH keyed AS (
                SELECT r.*, l.unified_customer_id, {rank} AS _rank,
                       coalesce(-epoch_us(r.modified_at), {_LAST}) AS _recency,
                       count(*) OVER (PARTITION BY l.unified_customer_id) AS _records
                FROM records r JOIN links l
                  ON r.source = l.source AND r.source_key = l.source_key),
            ranked AS (SELECT *{"".join(", " + f for f in frequencies)} FROM keyed
                       WHERE _records > 1),
            merged AS (
                SELECT unified_customer_id, {", ".join(chosen)}, count(*) AS record_count,
                       list_sort(list(DISTINCT source)) AS sources,
                       list_sort(list(source || '/' || source_key)) AS source_records,
                       max(modified_at) AS last_modified_at
                FROM ranked GROUP BY unified_customer_id
                UNION ALL BY NAME
                SELECT unified_customer_id, {", ".join(alone)}, _records AS record_count,
                       [source] AS sources, [source || '/' || source_key] AS source_records,
                       modified_at AS last_modified_at
                FROM keyed WHERE _records = 1)
            SELECT unified_customer_id, {", ".join(sql_name(c) for c in RECORD_ATTRIBUTES)},
                   record_count, sources, source_records, last_modified_at,
                   MAP([{names}], [{", ".join(provenance)}]) AS survivorship
            FROM merged""",
        records=records.select(list(RECORD_COLUMNS)),
        links=links.select(["source", "source_key", "unified_customer_id"]),
    )
