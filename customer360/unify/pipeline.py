"""The whole resolution in one call: records → pairs → clusters → profiles, links, review."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import linking, local, pair_scoring
from customer360.unify.cluster import cluster
from customer360.unify.config import UnifyConfig, load_config
from customer360.unify.ids import carry_forward_ids, unified_id
from customer360.unify.incremental import (
    DirtyScope,
    changed_records,
    dirty_scope,
    join_fingerprints,
    regrouped,
    resolution_closure,
    touching,
    updated_index,
)
from customer360.unify.keys import match_keys
from customer360.unify.match import (
    best_pairs,
    block_index,
    block_passes,
    candidate_pairs,
    carried_fields,
    oversized_blocks,
    score_pairs,
)
from customer360.unify.merge import link_table, merge_profiles
from customer360.unify.review import candidates, pair_table
from customer360.unify.schema import PAIR_KEYS, RECORD_COLUMNS
from customer360.unify.sources import validate_records
from customer360.unify.timing import PhaseClock


@dataclass(frozen=True)
class UnifyResult:
    """Lazy DataFrames of one run. `keyed`, `scored`, `pairs` and `clusters` are persisted (each
    is read by several outputs); call unpersist() after writing."""

    keyed: DataFrame  # the records with their match keys
    scored: DataFrame  # every compared (rule, pair): score, decision
    pairs: DataFrame  # the pair table: one row per matched pair, deciding rule, score
    clusters: DataFrame  # record → anchor, unified_customer_id, cluster_size
    profiles: DataFrame  # one row per unified_customer_id
    links: DataFrame  # record → unified_customer_id, rule, score, matched record
    profile_pairs: DataFrame  # pairs + unified_customer_id (explain a profile)
    match_candidates: DataFrame  # near misses for human review
    oversized_blocks: DataFrame  # blocks skipped by blocking, with sizes

    def unpersist(self) -> None:
        for f in fields(self):
            getattr(self, f.name).unpersist()


def unify(
    records: DataFrame,
    config: UnifyConfig | None = None,
    previous_links: DataFrame | None = None,
    *,
    validate: bool = True,
    cluster_method: str = "auto",
) -> UnifyResult:
    """Resolve `records` (schema.RECORD_COLUMNS, all sources unioned) with `config` (default:
    the package's match_rules.yaml). With `previous_links` (the last run's link table), ids are
    carried forward across merges and splits (ids.carry_forward_ids). `validate` checks keys
    first (validate_records: two small jobs)."""
    config = config or load_config()
    if validate:
        validate_records(records)
    keyed = match_keys(records).persist(StorageLevel.MEMORY_AND_DISK)
    scored = score_pairs(candidate_pairs(keyed, config.rules), config.rules).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    pairs = best_pairs(scored).persist(StorageLevel.MEMORY_AND_DISK)
    clusters = cluster(pairs, records, config.id_namespace, method=cluster_method)
    if previous_links is not None:
        clusters = carry_forward_ids(clusters, previous_links, config.id_namespace)
    clusters = clusters.persist(StorageLevel.MEMORY_AND_DISK)
    return UnifyResult(
        keyed=keyed,
        scored=scored,
        pairs=pairs,
        clusters=clusters,
        profiles=merge_profiles(records, clusters, config.survivorship),
        links=link_table(clusters, pairs),
        profile_pairs=pair_table(pairs, clusters),
        match_candidates=candidates(scored, clusters),
        oversized_blocks=oversized_blocks(keyed, config.rules),
    )


def max_block_sizes(config: UnifyConfig) -> dict[str, int]:
    """Block index column → the max_block_size of its rule."""
    return {
        name: config.rules[rank].max_block_size for name, rank, *_ in block_passes(config.rules)
    }


def oversize_limits(config: UnifyConfig) -> dict[str, int]:
    """max_block_sizes of the passes whose skipped blocks are reported as oversized: not those
    of `max_value_count` rules, which leave their common values out on purpose."""
    limits = max_block_sizes(config)
    return {
        name: limits[name]
        for name, rank, *_ in block_passes(config.rules)
        if not config.rules[rank].counts_values
    }


def build_index(keyed: DataFrame, fingerprints: pa.Table, config: UnifyConfig) -> pa.Table:
    """The block index of `keyed` records (match_keys output): node, source, source_key,
    rec_hash (from `fingerprints`, incremental.fingerprints of the same rows), block ids."""
    blocks = spark_to_arrow(block_index(keyed, config.rules))
    return join_fingerprints(blocks, fingerprints)


@dataclass(frozen=True)
class PreviousResolution:
    """What the last run left (Arrow tables): its block index, link table (at least
    unified_customer_id, source, source_key), match pair table and review candidates."""

    index: pa.Table
    links: pa.Table
    pairs: pa.Table
    candidates: pa.Table


@dataclass(frozen=True)
class ResolutionChanges:
    """An incremental run's changes, to apply to the previous tables (Arrow). Each table gets
    its `*_upserts` and loses the rows whose keys are in its `*_remove` (and not upserted)."""

    index: pa.Table  # the whole block index after the change (for figures)
    index_upserts: pa.Table  # key: node
    index_remove: pa.Table
    link_upserts: pa.Table  # key: source, source_key
    link_remove: pa.Table
    pair_upserts: pa.Table  # key: PAIR_KEYS
    pair_remove: pa.Table
    candidate_upserts: pa.Table  # key: PAIR_KEYS
    candidate_remove: pa.Table
    scored: pa.Table  # the re-scored pairs (each with a dirty end): score_pairs columns
    # changed, deleted, dirty, partners (of the dirty records' blocks), partners_read (those
    # in a pair no cheap guard rules out: the only ones read), closure, crossing_blocks
    counts: dict[str, int]
    seconds: dict[str, float]  # per phase


def unify_changes(
    load_records: Callable[[pa.Table], DataFrame | pa.Table],
    current: pa.Table,
    previous: PreviousResolution,
    config: UnifyConfig,
    changed: pa.Table | None = None,
) -> ResolutionChanges:
    """Resolve only what changed since `previous` (the algorithm: customer360.unify.incremental).

    `load_records(keys)`: the current records (schema.RECORD_COLUMNS) of the (source,
    source_key) rows of `keys`; `current`: incremental.fingerprints of every current record;
    `changed`: changed_records(previous.index, current) when the caller has it already.
    Applied to the previous tables, the changes give the tables a full run with the previous
    links would write (tests/unify/test_unify_incremental.py checks this)."""
    clock = PhaseClock()
    if changed is None:
        changed = changed_records(previous.index, current)
    deleted = changed.filter(changed["deleted"])
    fresh, keyed_changed, index = _changed_rows(load_records, current, previous, changed, config)
    clock.lap("changed records")
    scope = dirty_scope(previous.index, index, changed, max_block_sizes(config))
    clock.lap("dirty scope")
    scored, partners_read = _rescored(load_records, keyed_changed, index, scope, config)
    new_pairs = pair_scoring.best(scored)
    clock.lap("re-score")
    closure = resolution_closure(scope.dirty, deleted, new_pairs, previous.links, previous.pairs)
    clock.lap("closure")
    in_closure = pc.is_in(previous.links["unified_customer_id"], closure.previous_ids)
    clustered = linking.carry_forward(
        linking.clusters(closure.edges, closure.nodes, config.id_namespace),
        previous.links.filter(in_closure),
        config.id_namespace,
        _reserved_ids(closure.nodes, previous.links, in_closure, config.id_namespace),
    )
    link_upserts = linking.link_table(clustered, closure.edges)
    clock.lap("cluster")
    candidate_upserts, candidate_remove = _review_changes(
        previous, scope, deleted, scored, link_upserts, in_closure
    )
    clock.lap("review candidates")
    gone = pa.concat_tables(
        [closure.nodes, deleted.select(["source", "source_key"]).cast(closure.nodes.schema)]
    )
    return ResolutionChanges(
        index=index,
        index_upserts=fresh,
        index_remove=changed.select(["node"]),
        link_upserts=link_upserts,
        link_remove=gone,
        pair_upserts=linking.pair_table(closure.edges, clustered),
        pair_remove=previous.pairs.filter(
            pc.is_in(previous.pairs["unified_customer_id"], closure.previous_ids)
        ).select(list(PAIR_KEYS)),
        candidate_upserts=candidate_upserts,
        candidate_remove=candidate_remove,
        scored=scored,
        counts={
            "changed": changed.num_rows,
            "deleted": deleted.num_rows,
            "dirty": scope.dirty.num_rows,
            "partners": scope.partners.num_rows,
            "partners_read": partners_read,
            "crossing_blocks": scope.crossing_blocks,
            "closure": closure.nodes.num_rows,
        },
        seconds=clock.laps,
    )


def _changed_rows(
    load_records: Callable[[pa.Table], DataFrame | pa.Table],
    current: pa.Table,
    previous: PreviousResolution,
    changed: pa.Table,
    config: UnifyConfig,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(index rows of the changed records, their keyed rows, the whole updated index): the
    changed records' match keys and block ids on the driver (unify.local: the same Spark SQL
    definitions, transpiled for DuckDB) — a change set is small, a Spark job would cost more."""
    live = changed.filter(pc.invert(changed["deleted"]))
    keyed = _keyed(load_records(live.select(["source", "source_key"])), config)
    fresh = join_fingerprints(local.block_index(keyed, config.rules), current)
    return fresh, keyed, updated_index(previous.index, changed, fresh)


def _keyed(records: DataFrame | pa.Table, config: UnifyConfig) -> pa.Table:
    """node, source, source_key and the compared fields of `records` (Arrow or Spark rows)."""
    if not isinstance(records, pa.Table):
        records = spark_to_arrow(records)
    fields = ["node", "source", "source_key", *carried_fields(config.rules)]
    return local.keyed_records(records.select(list(RECORD_COLUMNS))).select(fields)


def _rescored(
    load_records: Callable[[pa.Table], DataFrame | pa.Table],
    keyed_changed: pa.Table,
    index: pa.Table,
    scope: DirtyScope,
    config: UnifyConfig,
) -> tuple[pa.Table, int]:
    """(the pairs with a dirty end, keyed, paired and scored on the driver (pair_scoring); the
    number of block partners read). Pairs are formed and the cheap guards applied on the block
    index, which carries the guard fields, BEFORE any record is read: only the partners of a
    pair that can still score are read and keyed (the same pairs survive as when every partner
    is read first: guarded_out needs only those fields)."""
    pairs = pair_scoring.focused_pairs(scope.members, scope.dirty, config.rules)
    # The index rows of the pairs' ends only: the guards and the partners to read come from them.
    ends = index.filter(pc.is_in(index["node"], _ends(pairs)))
    pairs = pair_scoring.without_guarded_out(pairs, ends, config.rules)
    wanted = pc.and_(pc.is_in(ends["node"], _ends(pairs)),
                     pc.invert(pc.is_in(ends["node"], keyed_changed["node"])))  # fmt: skip
    others = ends.filter(wanted).select(["node", "source", "source_key"])
    keyed_others = _keyed(load_records(others.select(["source", "source_key"])), config)
    keyed = pa.concat_tables([keyed_changed, keyed_others], promote_options="permissive")
    partners_read = pc.sum(pc.is_in(others["node"], scope.partners["node"])).as_py() or 0
    return pair_scoring.score(pair_scoring.with_attributes(pairs, keyed, config.rules),
                              config.rules), partners_read  # fmt: skip


def _ends(pairs: pa.Table) -> pa.Array:
    """The distinct nodes at either end of `pairs` (left_node, right_node)."""
    sides = [pairs[side].combine_chunks().cast(pa.string()) for side in ("left_node", "right_node")]
    return pc.unique(pa.concat_arrays(sides))


def _review_changes(
    previous: PreviousResolution,
    scope: DirtyScope,
    deleted: pa.Table,
    scored: pa.Table,
    link_upserts: pa.Table,
    in_closure: pa.Array,
) -> tuple[pa.Table, pa.Table]:
    """Review candidates: pairs with a dirty end were re-scored; the others keep their rows,
    with the closure's new ids."""
    partners_outside = (
        previous.links.filter(pc.invert(in_closure))
        .select(["source", "source_key", "unified_customer_id"])
        .join(scope.partners.select(["source", "source_key"]), ["source", "source_key"],
              join_type="left semi")
    )  # fmt: skip
    ends = pa.concat_tables(
        [link_upserts.select(partners_outside.column_names).cast(partners_outside.schema),
         partners_outside]
    )  # fmt: skip
    new_candidates = pair_scoring.review_candidates(scored, ends)
    rescored = pa.concat_tables([scope.dirty, deleted.select(scope.dirty.column_names)])
    return _candidate_changes(previous.candidates, rescored, link_upserts, new_candidates)


def _reserved_ids(
    nodes: pa.Table, links: pa.Table, in_closure: pa.Array, namespace: uuid.UUID
) -> pa.Table:
    """Ids held outside the closure that a closure cluster could otherwise take: the anchor ids
    of the closure's records (the only ids a new cluster is given)."""
    pairs = zip(nodes["source"].to_pylist(), nodes["source_key"].to_pylist(), strict=True)
    anchors = pa.array([unified_id(s, k, namespace) for s, k in pairs], pa.string())
    held = links.filter(pc.invert(in_closure))["unified_customer_id"]
    return pa.table({"unified_customer_id": pc.unique(held.filter(pc.is_in(held, anchors)))})


def _candidate_changes(
    previous: pa.Table, rescored: pa.Table, new_links: pa.Table, new_rows: pa.Table
) -> tuple[pa.Table, pa.Table]:
    """(upserts, removals) for the review candidates: rows with a re-scored end are replaced by
    `new_rows`; rows with an end in the closure get that end's new id (incremental.regrouped)."""
    hit = touching(previous, rescored)
    regrouped_mask = touching(previous, new_links)
    kept = regrouped(previous.filter(pc.and_(pc.invert(hit), regrouped_mask)), new_links)
    upserts = pa.concat_tables([kept, new_rows.select(kept.column_names).cast(kept.schema)])
    removals = previous.filter(pc.or_(hit, regrouped_mask)).select(list(PAIR_KEYS))
    return upserts, removals
