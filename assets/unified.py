"""Identity resolution in gold: every source record → one unified customer (customer360.unify).

`gold/customer_source_link` (record → unified_customer_id, with the rule and score that linked
it), `gold/customer_match_pairs` (which rule linked which records, per profile) and
`gold/match_candidates` (pairs scored just below a rule's threshold, for human review) come from
one resolution run over silver/customer (source `dataverse`, keyed by cid) and every configured
CSV source (silver/crm_<source>). Ids are carried forward from the previous link table, so
re-runs and unrelated changes keep them.

A run is incremental when it can be: the records whose source rows changed (fingerprints against
the block index in ops/match_index) are re-scored against their block partners and only the
affected profiles are re-clustered (customer360.unify.incremental); the rules or the truth file
changing, or `full_refresh`, resolve everything again. docs/unify.md explains rules, ids, figures.
"""

import hashlib
import os
import time
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from assets.crm import silver_key
from assets.silver import (
    CUSTOMER_KEY,
    FULL_REBUILD_FRACTION,
    ConsumerState,
    RefreshConfig,
    apply_changes,
    current_result,
    full_refresh_reason,
    read_rows,
    read_state,
    table_versions,
    write_state,
)
from customer360.lakehouse import DeltaLake
from customer360.lakehouse.schema import delta_schema_to_arrow
from customer360.lakehouse.spark_arrow import arrow_to_spark
from customer360.lakehouse.store import count_rows
from customer360.unify import (
    RECORD_ATTRIBUTES,
    UnifyConfig,
    config_path,
    evaluate,
    quality_figures,
    to_records,
    unify,
    unify_config,
)
from customer360.unify.incremental import (
    FINGERPRINT_VERSION,
    changed_records,
    fingerprints,
    oversized_from_index,
)
from customer360.unify.pipeline import (
    PreviousResolution,
    build_index,
    max_block_sizes,
    unify_changes,
)
from customer360.unify.plots import plot_match_quality
from customer360.unify.quality import decision_figures, table_figures
from customer360.unify.schema import PAIR_KEYS
from customer360.unify.survivorship import records_table
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

SOURCE_LINK_KEY = dg.AssetKey(["gold", "customer_source_link"])
MATCH_PAIRS_KEY = dg.AssetKey(["gold", "customer_match_pairs"])
CANDIDATES_KEY = dg.AssetKey(["gold", "match_candidates"])
IDENTITY_KEYS = (SOURCE_LINK_KEY, MATCH_PAIRS_KEY, CANDIDATES_KEY)
#: The block index incremental runs start from (customer360.unify.incremental): bookkeeping of
#: this asset, like ops/medallion_state, not an asset of its own.
INDEX_TABLE = ("ops", "match_index")
IDENTITY_TABLES = (*[("gold", key.path[-1]) for key in IDENTITY_KEYS], INDEX_TABLE)
IDENTITY_CONSUMER = "gold/customer_source_link"  # its row in ops/medallion_state
DATAVERSE_SOURCE = "dataverse"  # silver/customer, keyed by cid (the alternate key crc33_cid)
#: A CSV of known true pairs (left_source, left_key, right_source, right_key); when set, the
#: link asset reports the matches' precision and recall against it (the seed data ships one).
TRUTH_ENV = "C360_UNIFY_TRUTH"

DESCRIPTIONS = {
    SOURCE_LINK_KEY: "Every source record (source, source_key) → its unified_customer_id, with "
    "the rule, score and matched record that linked it, whether it is the profile's anchor, and "
    "the profile's size.",
    MATCH_PAIRS_KEY: "Which rule linked which two records in each profile: one row per matched "
    "pair with its deciding rule, score and every rule that matched it.",
    CANDIDATES_KEY: "Pairs scored between a rule's review threshold and its match threshold, in "
    "different profiles: for a person to confirm or reject.",
}


@dataclass(frozen=True)
class SourceTable:
    """One source's silver table and how its rows become unify records."""

    source: str
    table: str  # silver/<table>
    key: str  # the column that becomes source_key
    modified: tuple[str, ...]  # columns giving modified_at (the first non-null wins)
    #: Read by the profile besides the record columns (part of the fingerprint, so a change to
    #: them re-derives the profile too).
    extra: tuple[str, ...] = ()

    def records(self, silver: DataFrame) -> DataFrame:
        stamps = [F.col(c).cast("timestamp") for c in self.modified]
        modified = F.coalesce(*stamps) if len(stamps) > 1 else stamps[0]
        return to_records(silver.withColumn("_modified", modified), self.source, self.key,
                          "_modified")  # fmt: skip

    def record_columns(self, lake: DeltaLake) -> list[str]:
        """The columns of the silver table a record (and its fingerprint) is made from."""
        present = delta_schema_to_arrow(lake.table("silver", self.table).schema()).names
        wanted = (self.key, *RECORD_ATTRIBUTES, *self.modified, *self.extra)
        return [c for c in dict.fromkeys(wanted) if c in present]


def source_tables(config: UnifyConfig) -> list[SourceTable]:
    """silver/customer (source `dataverse`, keyed by cid) and every configured CSV source."""
    dataverse = SourceTable(DATAVERSE_SOURCE, "customer", "cid", ("modifiedon", "SinkModifiedOn"),
                            extra=("Id", "createdon"))  # fmt: skip
    csv = [
        SourceTable(m.source, silver_key(m.source).path[-1], "source_key", ("modified_at",))
        for m in config.csv_sources
    ]
    return [dataverse, *csv]


def source_records(session: SparkSession, lakehouse: LakehouseResource, config: UnifyConfig):
    """Every source's silver rows as unify `records` (customer360.unify.schema)."""
    frames = [t.records(lakehouse.read(session, "silver", t.table)) for t in source_tables(config)]
    return reduce(DataFrame.unionByName, frames)


def record_rows(lake: DeltaLake, config: UnifyConfig, keys: pa.Table) -> pa.Table:
    """The records (schema.RECORD_COLUMNS, Arrow) of the (source, source_key) rows of `keys`,
    read without a full scan and built on the driver (survivorship.records_table)."""
    parts = []
    for table in source_tables(config):
        wanted = keys.filter(pc.equal(keys["source"], table.source))["source_key"]
        rows = read_rows(lake, "silver", table.table, table.key, wanted.combine_chunks(),
                         columns=table.record_columns(lake))  # fmt: skip
        parts.append(records_table(rows, table.source, table.key, table.modified))
    return pa.concat_tables(parts)


def records_of(
    session: SparkSession, lake: DeltaLake, config: UnifyConfig, keys: pa.Table
) -> DataFrame:
    """record_rows as a Spark DataFrame."""
    return arrow_to_spark(session, record_rows(lake, config, keys))


def current_fingerprints(lake: DeltaLake, config: UnifyConfig) -> pa.Table:
    """incremental.fingerprints of every current record (Arrow and DuckDB, no Spark)."""
    parts = []
    for table in source_tables(config):
        rows = lake.read_arrow("silver", table.table, columns=table.record_columns(lake))
        parts.append(fingerprints(rows, table.source, table.key))
    return pa.concat_tables(parts)


def _previous_links(session: SparkSession, lakehouse: LakehouseResource) -> DataFrame | None:
    name = SOURCE_LINK_KEY.path[-1]
    if not lakehouse.exists("gold", name):
        return None
    version = lakehouse.lake.table("gold", name).version()
    # Pinned to the version read: the overwrite below must not change what this run compares to.
    links = lakehouse.read(session, "gold", name, version=version)
    return links.select("unified_customer_id", "source", "source_key")


def _truth_pairs(session: SparkSession, records: DataFrame) -> DataFrame | None:
    """The configured truth pairs whose two records are both present in this run."""
    path = os.environ.get(TRUTH_ENV)
    if not path:
        return None
    if not Path(path).is_file():
        raise dg.Failure(f"{TRUTH_ENV}={path}: no such file")
    truth = session.read.csv(path, header=True, schema=_TRUTH_DDL)
    present = records.select("source", "source_key")
    for side in ("left", "right"):
        ids = present.select(
            F.col("source").alias(f"{side}_source"), F.col("source_key").alias(f"{side}_key")
        )
        truth = truth.join(ids, [f"{side}_source", f"{side}_key"], "left_semi")
    return truth


_TRUTH_DDL = "left_source string, left_key string, right_source string, right_key string"


def _example_merges(lakehouse: LakehouseResource, limit: int = 10) -> list[dict[str, Any]]:
    """A few merged profiles explained (keys, rule and score only: never personal data)."""
    columns = ["unified_customer_id", "left_source", "left_key", "right_source", "right_key",
               "rule", "score"]  # fmt: skip
    pairs = lakehouse.lake.read_arrow("gold", MATCH_PAIRS_KEY.path[-1], columns=columns)
    return pairs.slice(0, limit).to_pylist()


def _previous_merge_rate(context: dg.AssetExecutionContext) -> float | None:
    event = context.instance.get_latest_materialization_event(SOURCE_LINK_KEY)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("merge_rate")
    return None if value is None else float(value.value)


def merge_rate_check(
    merge_rate: float | None, previous: float | None, tolerance: float
) -> dg.AssetCheckResult:
    """WARN when the merge rate moved by more than `tolerance` since the previous run."""
    moved = None if merge_rate is None or previous is None else abs(merge_rate - previous)
    return dg.AssetCheckResult(
        check_name="merge_rate_stable",
        asset_key=SOURCE_LINK_KEY,
        passed=moved is None or moved <= tolerance,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "merge_rate": merge_rate,
            "previous_merge_rate": previous,
            "change": moved,
            "max_merge_rate_change": tolerance,
        },
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            deps=[CUSTOMER_KEY] + [silver_key(m.source) for m in unify_config().csv_sources],
            kinds={"pyspark", "delta"},
            automation_condition=dg.AutomationCondition.eager(),
            description=DESCRIPTIONS[key],
        )
        for key in IDENTITY_KEYS
    ],
    group_name="gold",
    check_specs=[
        dg.AssetCheckSpec("every_record_linked_once", asset=SOURCE_LINK_KEY, blocking=True),
        dg.AssetCheckSpec(
            "merge_rate_stable",
            asset=SOURCE_LINK_KEY,
            description="WARN when the merge rate moved more than quality.max_merge_rate_change "
            "(match_rules.yaml) since the previous run",
        ),
    ],
)
def customer_identity(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    lake = lakehouse.lake
    unify_cfg = unify_config()
    inputs, versions = _identity_inputs(lakehouse, unify_cfg)
    state = read_state(lake, IDENTITY_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, IDENTITY_TABLES, config.full_refresh)
    if reason is None and state.facts.get("versions") == versions and "figures" in state.facts:
        # Same sources, same rules, tables as this asset left them: the resolution would be
        # identical (it is deterministic), so report it again instead of recomputing it.
        refresh, facts = "unchanged", state.facts
    else:
        session = spark.spark_session
        current = current_fingerprints(lake, unify_cfg)
        changed = None
        if reason is None:
            index = lake.read_arrow(*INDEX_TABLE)
            changed = changed_records(index, current)
            if changed.num_rows > FULL_REBUILD_FRACTION * max(index.num_rows, 1):
                reason = f"{changed.num_rows} of {index.num_rows} records changed"
        if reason is None and changed.num_rows == 0:  # rewritten, not changed
            refresh, facts = "unchanged", dict(state.facts)
        elif reason is None:
            refresh = "incremental"
            facts = _resolve_changes(
                context, session, lakehouse, unify_cfg, current, index, changed
            )
        else:
            refresh = "full"
            context.log.info(f"identity resolution: full ({reason})")
            facts = _resolve(context, session, lakehouse, unify_cfg, current)
        facts["versions"] = versions
        # JSON keys (state and metadata): the same shape as a state read back.
        sizes = facts["figures"]["profile_sizes"]
        facts["figures"]["profile_sizes"] = {str(k): v for k, v in sizes.items()}
        facts["plot"] = str(
            plot_match_quality(facts["figures"], lakehouse.plot_path(f"unify-{context.run_id}"))
        )
        write_state(
            lake,
            ConsumerState(IDENTITY_CONSUMER, inputs=inputs,
                          outputs=table_versions(lake, IDENTITY_TABLES), facts=facts),
        )  # fmt: skip
    rows_written = facts.get("rows_written", {}) if refresh != "unchanged" else {}
    written = {
        key: current_result(lake, "gold", key.path[-1], rows_written.get(key.path[-1], 0))
        for key in IDENTITY_KEYS
    }
    figures, accuracy = facts["figures"], facts.get("accuracy")
    context.log.info(
        f"{figures['records']:,} records → {figures['profiles']:,} profiles "
        f"(merge rate {figures['merge_rate']}), {figures['review_candidates']:,} for review "
        f"[{refresh}]"
    )
    quality: dict[str, Any] = {
        "refresh": refresh,
        "records": figures["records"],
        "records_per_source": dg.MetadataValue.json(figures["records_per_source"]),
        "profiles": figures["profiles"],
        "merge_rate": figures["merge_rate"],
        "cross_source_profiles": figures["cross_source_profiles"],
        "profile_sizes": dg.MetadataValue.json(figures["profile_sizes"]),
        "pairs_per_rule": dg.MetadataValue.json(figures["pairs_per_rule"]),
        # Full run: every pair compared; incremental run: the pairs it re-scored.
        "pairs_compared": figures["pairs_compared"],
        "decisions_per_rule": dg.MetadataValue.json(figures["decisions_per_rule"]),
        "review_candidates": figures["review_candidates"],
        "oversized_blocks": dg.MetadataValue.json(facts["oversized"]),
        "ids": dg.MetadataValue.json(facts["id_origin"]),
        "match_rules": dg.MetadataValue.path(str(config_path())),
        "quality_plot": dg.MetadataValue.path(facts["plot"]),
    }
    if refresh == "incremental":
        quality["incremental"] = dg.MetadataValue.json(facts["incremental"])
    if reason:
        quality["full_refresh_reason"] = reason
    if accuracy is not None:
        quality.update(
            precision=accuracy["precision"],
            recall=accuracy["recall"],
            truth_pairs=accuracy["truth_pairs"],
            per_rule_accuracy=dg.MetadataValue.json(accuracy.get("per_rule", {})),
            false_positive_sample=dg.MetadataValue.json(accuracy["false_positive_sample"]),
            false_negative_sample=dg.MetadataValue.json(accuracy["false_negative_sample"]),
        )
    links, pairs, review = (written[key] for key in IDENTITY_KEYS)
    keys = lakehouse.lake.read_arrow(
        "gold", SOURCE_LINK_KEY.path[-1], columns=["source", "source_key"]
    )
    per_key = keys.group_by(["source", "source_key"]).aggregate([([], "count_all")])
    repeated = int(pc.sum(pc.greater(per_key["count_all"], 1)).as_py() or 0)
    previous_rate = _previous_merge_rate(context)
    yield dg.MaterializeResult(asset_key=SOURCE_LINK_KEY, metadata=write_metadata(links, **quality))
    yield dg.MaterializeResult(
        asset_key=MATCH_PAIRS_KEY,
        metadata=write_metadata(
            pairs,
            pairs_per_rule=dg.MetadataValue.json(figures["pairs_per_rule"]),
            example_merges=dg.MetadataValue.json(_example_merges(lakehouse)),
        ),
    )
    yield dg.MaterializeResult(asset_key=CANDIDATES_KEY, metadata=write_metadata(review))
    yield dg.AssetCheckResult(
        check_name="every_record_linked_once",
        asset_key=SOURCE_LINK_KEY,
        passed=links.table_rows == figures["records"] and repeated == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"records": figures["records"], "link_rows": links.table_rows,
                  "records_linked_twice": repeated},
    )  # fmt: skip
    yield merge_rate_check(figures["merge_rate"], previous_rate, unify_cfg.max_merge_rate_change)


def _identity_inputs(
    lakehouse: LakehouseResource, config: UnifyConfig
) -> tuple[dict[str, Any], dict[str, int]]:
    """(what forces a full resolution when it changes: the silver tables' ids, the rules and
    truth files' contents, the fingerprint definition; the silver tables' versions, which an
    incremental run follows)."""
    inputs: dict[str, Any] = {}
    versions: dict[str, int] = {}
    for source in source_tables(config):
        table = lakehouse.lake.table("silver", source.table)
        inputs[f"silver/{source.table}"] = table.metadata().id
        versions[f"silver/{source.table}"] = table.version()
    inputs["match_rules"] = file_digest(config_path())
    truth = os.environ.get(TRUTH_ENV)
    inputs["truth"] = file_digest(Path(truth)) if truth and Path(truth).is_file() else truth
    inputs["fingerprint"] = FINGERPRINT_VERSION
    return inputs, versions


def file_digest(path: Path) -> str:
    """sha256 of a file's content (rules and truth files are inputs of the state)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resolve(
    context: dg.AssetExecutionContext,
    session: SparkSession,
    lakehouse: LakehouseResource,
    config: UnifyConfig,
    current: pa.Table,
) -> dict[str, Any]:
    """Resolve every record; write the three tables and the block index; return the figures."""
    lake = lakehouse.lake
    records = source_records(session, lakehouse, config).cache()
    try:
        result = unify(records, config, _previous_links(session, lakehouse))
    except ValueError as exc:  # ambiguous identity (repeated keys): names sources and keys only
        records.unpersist()
        raise dg.Failure(str(exc)) from None
    try:
        rows_written = {
            key.path[-1]: lakehouse.write(frame, "gold", key.path[-1]).rows_written
            for key, frame in zip(
                IDENTITY_KEYS,
                (result.links, result.profile_pairs, result.match_candidates),
                strict=True,
            )
        }
        index = build_index(result.keyed, current, config)
        lake.write_arrow(index, *INDEX_TABLE)
        figures = quality_figures(result.scored, result.pairs, result.clusters,
                                  result.match_candidates)  # fmt: skip
        clusters = result.clusters
        id_origin = (
            {  # profiles per id origin (carried from the previous run, or new)
                r.id_origin: r.profiles
                for r in clusters.groupBy("id_origin")
                .agg(F.countDistinct("unified_customer_id").alias("profiles"))
                .collect()
            }
            if "id_origin" in clusters.columns
            else {}
        )
        facts: dict[str, Any] = {
            "figures": figures,
            "oversized": oversized_from_index(index, max_block_sizes(config)),
            "id_origin": id_origin,
            "rows_written": rows_written,
        }
        truth = _truth_pairs(session, records)
        if truth is not None:
            facts["accuracy"] = evaluate(result.scored.filter("decision = 'match'"), truth)
    finally:
        result.unpersist()
        records.unpersist()
    context.log.info(f"resolution written: {', '.join(k.to_user_string() for k in IDENTITY_KEYS)}")
    return facts


def _resolve_changes(
    context: dg.AssetExecutionContext,
    session: SparkSession,
    lakehouse: LakehouseResource,
    config: UnifyConfig,
    current: pa.Table,
    index: pa.Table,
    changed: pa.Table,
) -> dict[str, Any]:
    """Re-resolve what changed since the last run (unify_changes) and apply it to the tables."""
    lake = lakehouse.lake
    started = time.perf_counter()
    previous = PreviousResolution(
        index=index,
        links=lake.read_arrow("gold", SOURCE_LINK_KEY.path[-1]),
        pairs=lake.read_arrow("gold", MATCH_PAIRS_KEY.path[-1]),
        candidates=lake.read_arrow("gold", CANDIDATES_KEY.path[-1]),
    )
    changes = unify_changes(
        lambda keys: records_of(session, lake, config, keys), current, previous, config, changed
    )
    decisions = decision_figures(changes.scored)
    counts = changes.counts
    name = {key: key.path[-1] for key in IDENTITY_KEYS}
    apply_changes(lake, "gold", name[SOURCE_LINK_KEY], changes.link_upserts,
                  changes.link_remove, ["source", "source_key"])  # fmt: skip
    apply_changes(lake, "gold", name[MATCH_PAIRS_KEY], changes.pair_upserts,
                  changes.pair_remove, PAIR_KEYS)  # fmt: skip
    apply_changes(lake, "gold", name[CANDIDATES_KEY], changes.candidate_upserts,
                  changes.candidate_remove, PAIR_KEYS)  # fmt: skip
    apply_changes(lake, *INDEX_TABLE, changes.index_upserts, changes.index_remove, ["node"])
    seconds = time.perf_counter() - started
    context.log.info(
        f"identity resolution: {counts['changed']:,} records changed ({counts['deleted']:,} "
        f"gone), {counts['dirty']:,} re-scored against {counts['partners']:,} block partners, "
        f"{counts['closure']:,} re-clustered in {seconds:.1f} s"
    )
    links = lake.read_arrow("gold", name[SOURCE_LINK_KEY],
                            columns=["unified_customer_id", "source"])  # fmt: skip
    pairs = lake.read_arrow("gold", name[MATCH_PAIRS_KEY], columns=["rule"])
    figures = {
        **table_figures(links, pairs),
        **decisions,
        "review_candidates": count_rows(lake.table("gold", name[CANDIDATES_KEY])),
    }
    figures["records"] = current.num_rows  # what every_record_linked_once compares with
    new_ids = pc.count_distinct(changes.link_upserts["unified_customer_id"]).as_py()
    facts: dict[str, Any] = {
        "figures": figures,
        "oversized": oversized_from_index(changes.index, max_block_sizes(config)),
        "id_origin": {"re-resolved profiles": new_ids},
        "incremental": {**counts, "seconds": round(seconds, 1), "phases": changes.seconds},
        "rows_written": {  # rows upserted (the metadata's rows_written)
            name[SOURCE_LINK_KEY]: changes.link_upserts.num_rows,
            name[MATCH_PAIRS_KEY]: changes.pair_upserts.num_rows,
            name[CANDIDATES_KEY]: changes.candidate_upserts.num_rows,
        },
    }
    truth = _truth_pairs(session, lakehouse.read(session, "gold", name[SOURCE_LINK_KEY]))
    if truth is not None:
        facts["accuracy"] = evaluate(lakehouse.read(session, "gold", name[MATCH_PAIRS_KEY]), truth)
    return facts
