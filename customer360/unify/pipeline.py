"""The whole resolution in one call: records → pairs → clusters → profiles, links, review."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from customer360.unify.cluster import cluster
from customer360.unify.config import UnifyConfig, load_config
from customer360.unify.ids import carry_forward_ids
from customer360.unify.keys import match_keys
from customer360.unify.match import best_pairs, candidate_pairs, oversized_blocks, score_pairs
from customer360.unify.merge import link_table, merge_profiles
from customer360.unify.review import candidates, pair_table
from customer360.unify.sources import validate_records


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
