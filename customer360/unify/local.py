"""The whole resolution on one machine (DuckDB, rapidfuzz and NumPy over Arrow), from the same
definitions Spark runs: match and blocking keys are the Spark SQL of keys.py and blocking.py
transpiled by sqlglot; pairing, scoring, the best pair, review candidates, clustering, links
and survivorship are the Arrow functions of pair_scoring, linking and survivorship, which Spark
runs per partition (on_spark). No Spark stage costs: a million records resolve in well under a
minute on two cores (docs/unify.md, "Benchmark").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from customer360.lakehouse.arrow_sql import arrow_query, sql_name, sql_text
from customer360.unify import linking, pair_scoring, survivorship
from customer360.unify.blocking import block_id_sql, block_passes, carried_fields
from customer360.unify.config import MatchRule, UnifyConfig, load_config
from customer360.unify.keys import key_sql
from customer360.unify.schema import NODE_SEPARATOR, RECORD_COLUMNS
from customer360.unify.sql_dialects import duckdb_sql
from customer360.unify.timing import PhaseClock


@dataclass(frozen=True)
class LocalResolution:
    """One run's Arrow tables, with the same columns as pipeline.UnifyResult's DataFrames."""

    keyed: pa.Table
    index: pa.Table  # node, source, source_key, one block id column per blocking pass
    scored: pa.Table
    pairs: pa.Table
    clusters: pa.Table
    profiles: pa.Table
    links: pa.Table
    profile_pairs: pa.Table
    match_candidates: pa.Table
    oversized_blocks: pa.Table
    seconds: dict[str, float] = field(default_factory=dict)


def keyed_records(records: pa.Table) -> pa.Table:
    """match_keys on Arrow: the records + node + the match keys (keys.key_sql in DuckDB)."""
    keys = ", ".join(f"{duckdb_sql(sql)} AS {sql_name(name)}" for name, sql in key_sql().items())
    return arrow_query(f"SELECT *, {keys} FROM records", records=records)


def block_index(keyed: pa.Table, rules: list[MatchRule] | tuple[MatchRule, ...]) -> pa.Table:
    """match.block_index on Arrow: node, source, source_key, the block id of every pass, then
    the fields of the cheap guards (pair_scoring.guard_fields)."""
    blocks = ", ".join(
        [
            f"{duckdb_sql(block_id_sql(rank, number, keys))} AS {sql_name(name)}"
            for name, rank, number, keys in block_passes(rules)
        ]
        + [sql_name(f) for f in pair_scoring.guard_fields(rules)]
    )
    return arrow_query(f"SELECT node, source, source_key, {blocks} FROM keyed", keyed=keyed)


def block_sizes(index: pa.Table, rules: list[MatchRule] | tuple[MatchRule, ...]) -> pa.Table:
    """_block, _size (records sharing it), rule_rank and block column of every block two or
    more records share (a block of one record pairs nobody and is never oversized)."""
    # One aggregation per block column (a block id belongs to one pass): no unpivot of the
    # records into tens of millions of (record, block) rows.
    parts = " UNION ALL ".join(
        f"SELECT {sql_name(name)} AS _block, {rank} AS rule_rank, {sql_text(name)} AS _column, "
        f"count(*) AS _size FROM idx WHERE {sql_name(name)} IS NOT NULL GROUP BY 1 "
        f"HAVING count(*) > 1"
        for name, rank, _, _ in block_passes(rules)
    )
    return arrow_query(parts, idx=index)


def oversized(sizes: pa.Table, rules: list[MatchRule] | tuple[MatchRule, ...]) -> pa.Table:
    """match.oversized_blocks: rule, blocking, block_key, records of every skipped block (not
    the common values a `max_value_count` rule leaves out on purpose)."""
    passes = [p for p in block_passes(rules) if not rules[p[1]].counts_values]
    described = pa.table(
        {
            "rule_rank": pa.array([rank for _, rank, _, _ in passes], pa.int64()),
            "_column": pa.array([name for name, _, _, _ in passes], pa.string()),
            "rule": pa.array([rules[rank].name for _, rank, _, _ in passes], pa.string()),
            "blocking": pa.array([", ".join(keys) for _, _, _, keys in passes], pa.string()),
            "_max": pa.array([rules[rank].max_block_size for _, rank, _, _ in passes], pa.int64()),
        }
    )
    sep = sql_text(NODE_SEPARATOR)
    return arrow_query(
        f"""SELECT d.rule, d.blocking,
                   substr(s._block, length(split_part(s._block, {sep}, 1))
                          + length(split_part(s._block, {sep}, 2)) + 3) AS block_key,
                   s._size AS records
            FROM sizes s JOIN described d USING (_column) WHERE s._size > d._max""",
        sizes=sizes,
        described=described,
    )


def resolve(
    records: pa.Table,
    config: UnifyConfig | None = None,
    previous_links: pa.Table | None = None,
) -> LocalResolution:
    """pipeline.unify on one machine: `records` (schema.RECORD_COLUMNS, all sources) → every
    output table. With `previous_links` ids are carried forward (linking.carry_forward)."""
    config = config or load_config()
    rules, clock = config.rules, PhaseClock()
    records = records.select(list(RECORD_COLUMNS))
    keyed = keyed_records(records)
    index = block_index(keyed, rules)
    sizes = block_sizes(index, rules)
    clock.lap("keys and blocks")
    fields = ["node", "source", "source_key", *carried_fields(rules)]
    candidates = pair_scoring.focused_candidates(index, keyed.select(fields), sizes, None, rules)
    clock.lap("pairs")
    scored = pair_scoring.score(candidates, rules)
    clock.lap("scores")
    pairs = pair_scoring.best(scored)
    clusters = linking.clusters(pairs, records.select(["source", "source_key"]),
                                config.id_namespace)  # fmt: skip
    if previous_links is not None:
        reserved = pa.table({"unified_customer_id": pa.array([], pa.string())})
        clusters = linking.carry_forward(clusters, previous_links, config.id_namespace, reserved)
    clock.lap("clusters")
    links = linking.link_table(clusters, pairs)
    profile_pairs = linking.pair_table(pairs, clusters)
    review = pair_scoring.review_candidates(scored, clusters)
    profiles = survivorship.merge_profiles(records, clusters, config.survivorship)
    clock.lap("links, review, profiles")
    return LocalResolution(
        keyed=keyed,
        index=index,
        scored=scored,
        pairs=pairs,
        clusters=clusters,
        profiles=profiles,
        links=links,
        profile_pairs=profile_pairs,
        match_candidates=review,
        oversized_blocks=oversized(sizes, rules),
        seconds=clock.laps,
    )
