"""Identity resolution over the lake: every source record → one unified customer.

One resolution run over silver/customer (source `dataverse`, keyed by cid) and every configured
CSV source (silver/crm_<source>) writes gold/customer_source_link, gold/customer_match_pairs and
gold/match_candidates plus the block index ops/match_index. Incremental when it can be: the
records whose source rows changed (fingerprints against the block index) are re-scored against
their block partners and only the affected profiles re-clustered (customer360.unify.incremental);
the rules or the truth file changing, or a requested full refresh, resolve everything again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from customer360.lakehouse import DeltaLake, WriteResult
from customer360.lakehouse.incremental import (
    FULL_REBUILD_FRACTION,
    ConsumerState,
    concurrently,
    current_result,
    full_refresh_reason,
    on_conflict,
    read_state,
    read_version,
    rewrite_with_changes,
    table_versions,
    write_state,
)
from customer360.lakehouse.spark_arrow import arrow_to_spark
from customer360.unify import UnifyConfig, config_path, evaluate, local, quality_figures, unify
from customer360.unify.incremental import (
    FINGERPRINT_VERSION,
    OVERSIZED_SCHEMA,
    changed_records,
    join_fingerprints,
    oversized_after_change,
    oversized_index_blocks,
    oversized_report,
)
from customer360.unify.lake_records import (
    INDEX_TABLE,
    INDEX_WRITER,
    all_record_rows,
    current_fingerprints,
    current_rows,
    file_digest,
    record_rows_in,
    source_records,
    source_tables,
)
from customer360.unify.pipeline import (
    PreviousResolution,
    build_index,
    oversize_limits,
    unify_changes,
)
from customer360.unify.quality import decision_figures, table_figures
from customer360.unify.schema import PAIR_KEYS
from customer360.unify.sources import validate_record_table

LINKS, PAIRS, CANDIDATES = "customer_source_link", "customer_match_pairs", "match_candidates"
OUTPUT_NAMES = (LINKS, PAIRS, CANDIDATES)
IDENTITY_TABLES = (*[("gold", name) for name in OUTPUT_NAMES], INDEX_TABLE)
IDENTITY_CONSUMER = "gold/customer_source_link"  # its row in ops/medallion_state
#: A CSV of known true pairs (left_source, left_key, right_source, right_key); when set, the
#: link table's figures include the matches' precision and recall (the seed data ships one).
TRUTH_ENV = "C360_UNIFY_TRUTH"
_TRUTH_DDL = "left_source string, left_key string, right_source string, right_key string"


class IdentityError(ValueError):
    """Resolution cannot go on (ambiguous keys, a missing truth file); the message says why."""


@dataclass(frozen=True)
class IdentityBuild:
    refresh: str  # "incremental", "full" or "unchanged"
    reason: str | None  # why a full resolution
    facts: dict[str, Any]  # figures, accuracy, oversized blocks, id origins, plot …
    written: dict[str, WriteResult]  # per output table name
    records_linked_twice: int
    example_merges: list[dict[str, Any]]


def refresh_identity(
    spark: Callable[[], SparkSession],
    lake: DeltaLake,
    config: UnifyConfig,
    requested: bool,
    plot_path: Path,
    log: Callable[[str], None],
    engine: str = "local",
) -> IdentityBuild:
    """Bring the identity tables up to date with the silver sources (or report them again).

    `engine`: "local" resolves a full run on this machine (unify.local: DuckDB over Arrow, no
    Spark stage costs), "spark" with Spark (a cluster); both run the same rule definitions.

    An incremental run commits each table on the version it read; when another writer committed
    first (`WriteConflict`) everything is read and decided again (a table this run had already
    rewritten no longer matches the recorded state: the retry resolves in full)."""
    return on_conflict(
        lambda: _refresh(spark, lake, config, requested, plot_path, log, engine), "gold identity"
    )


def _refresh(spark, lake, config, requested, plot_path, log, engine) -> IdentityBuild:
    inputs, versions = identity_inputs(lake, config)
    state = read_state(lake, IDENTITY_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, IDENTITY_TABLES, requested)
    tables: dict[str, pa.Table] = {}  # the link and pair tables as committed, when held
    if reason is None and state.facts.get("versions") == versions and "figures" in state.facts:
        # Same sources, same rules, tables as this asset left them: the resolution would be
        # identical (it is deterministic), so report it again instead of recomputing it.
        refresh, facts = "unchanged", state.facts
    else:
        refresh, reason, facts, tables = _recompute(spark, lake, config, reason, log, engine)
        facts["versions"] = versions
        # JSON keys (state and metadata): the same shape as a state read back.
        sizes = facts["figures"]["profile_sizes"]
        facts["figures"]["profile_sizes"] = {str(k): v for k, v in sizes.items()}
        # matplotlib is imported here, not at load: every run the daemon starts loads this.
        from customer360.unify.plots import plot_match_quality

        facts["plot"] = str(plot_match_quality(facts["figures"], plot_path))
        write_state(
            lake,
            ConsumerState(IDENTITY_CONSUMER, inputs=inputs,
                          outputs=table_versions(lake, IDENTITY_TABLES), facts=facts),
        )  # fmt: skip
    rows_written = facts.get("rows_written", {}) if refresh != "unchanged" else {}
    written = {n: current_result(lake, "gold", n, rows_written.get(n, 0)) for n in OUTPUT_NAMES}
    # The tables just committed when this run holds them (not read back: a million rows each).
    keys = tables.get(LINKS)
    if keys is None:
        keys = lake.read_arrow("gold", LINKS, columns=["source", "source_key"])
    per_key = keys.group_by(["source", "source_key"]).aggregate([([], "count_all")])
    repeated = int(pc.sum(pc.greater(per_key["count_all"], 1)).as_py() or 0)
    examples = example_merges(lake, pairs=tables.get(PAIRS))
    return IdentityBuild(refresh, reason, facts, written, repeated, examples)


def _recompute(
    spark, lake, config, reason, log, engine
) -> tuple[str, str | None, dict[str, Any], dict[str, pa.Table]]:
    """(refresh, reason, facts, the output tables as committed when held in memory) of an
    incremental or a full resolution."""
    rows = current_rows(lake, config)  # read once: fingerprints, changed records, partners
    current = current_fingerprints(rows, config)
    changed = None
    if reason is None:
        # Pinned: the rewrite of each table commits on exactly the version its rows came from.
        read_at = {name: read_version(lake, "gold", name) for name in OUTPUT_NAMES}
        read_at[INDEX_TABLE[1]] = read_version(lake, *INDEX_TABLE)
        index = lake.read_arrow(*INDEX_TABLE, version=read_at[INDEX_TABLE[1]])
        changed = changed_records(index, current)
        if changed.num_rows > FULL_REBUILD_FRACTION * max(index.num_rows, 1):
            reason = f"{changed.num_rows} of {index.num_rows} records changed"
    if reason is None and changed.num_rows == 0:  # rewritten, not changed
        return "unchanged", None, dict(read_state(lake, IDENTITY_CONSUMER).facts), {}
    if reason is None:
        facts, after = _resolve_changes(spark, lake, config, (rows, current),
                                        (index, read_at), changed, log)  # fmt: skip
        return "incremental", None, facts, after
    log(f"identity resolution: full ({reason}) on {engine}")
    if engine == "local":
        return "full", reason, _resolve_local(spark, lake, config, (rows, current), log), {}
    return "full", reason, _resolve(spark(), lake, config, current, log), {}


def identity_inputs(lake: DeltaLake, config: UnifyConfig) -> tuple[dict[str, Any], dict[str, int]]:
    """(what forces a full resolution when it changes: the silver tables' ids, the rules and
    truth files' contents, the fingerprint definition; the silver tables' versions, which an
    incremental run follows)."""
    inputs: dict[str, Any] = {}
    versions: dict[str, int] = {}
    for source in source_tables(config):
        table = lake.table("silver", source.table)
        inputs[f"silver/{source.table}"] = table.metadata().id
        versions[f"silver/{source.table}"] = table.version()
    inputs["match_rules"] = file_digest(config_path())
    truth = os.environ.get(TRUTH_ENV)
    inputs["truth"] = file_digest(Path(truth)) if truth and Path(truth).is_file() else truth
    inputs["fingerprint"] = FINGERPRINT_VERSION
    return inputs, versions


PREVIOUS_LINK_COLUMNS = ("unified_customer_id", "source", "source_key")


def _previous_links(session: SparkSession, lake: DeltaLake) -> DataFrame | None:
    if not lake.exists("gold", LINKS):
        return None
    version = lake.table("gold", LINKS).version()
    # Pinned to the version read: the overwrite below must not change what this run compares to.
    links = lake.read(session, "gold", LINKS, version=version)
    return links.select(*PREVIOUS_LINK_COLUMNS)


def _truth_pairs(session: SparkSession, records: DataFrame) -> DataFrame | None:
    """The configured truth pairs whose two records are both present in this run."""
    path = os.environ.get(TRUTH_ENV)
    if not path:
        return None
    if not Path(path).is_file():
        raise IdentityError(f"{TRUTH_ENV}={path}: no such file")
    truth = session.read.csv(path, header=True, schema=_TRUTH_DDL)
    present = records.select("source", "source_key")
    for side in ("left", "right"):
        ids = present.select(
            F.col("source").alias(f"{side}_source"), F.col("source_key").alias(f"{side}_key")
        )
        truth = truth.join(ids, [f"{side}_source", f"{side}_key"], "left_semi")
    return truth


def example_merges(
    lake: DeltaLake, limit: int = 10, pairs: pa.Table | None = None
) -> list[dict[str, Any]]:
    """A few merged profiles explained (keys, rule and score only: never personal data), from
    `pairs` (the pair table as committed) or read."""
    columns = ["unified_customer_id", "left_source", "left_key", "right_source", "right_key",
               "rule", "score"]  # fmt: skip
    if pairs is None:
        pairs = lake.read_arrow("gold", PAIRS, columns=columns)
    return pairs.select(columns).slice(0, limit).to_pylist()


def _resolve(session, lake: DeltaLake, config: UnifyConfig, current: pa.Table, log):
    """Resolve every record; write the three tables and the block index; return the figures."""
    records = source_records(session, lake, config).cache()
    try:
        result = unify(records, config, _previous_links(session, lake))
    except ValueError as exc:  # ambiguous identity (repeated keys): names sources and keys only
        records.unpersist()
        raise IdentityError(str(exc)) from None
    try:
        frames = (result.links, result.profile_pairs, result.match_candidates)
        rows_written = {
            name: lake.write(frame, "gold", name).rows_written
            for name, frame in zip(OUTPUT_NAMES, frames, strict=True)
        }
        index = build_index(result.keyed, current, config)
        lake.write_arrow(index, *INDEX_TABLE, writer_properties=INDEX_WRITER)
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
            **_oversized_facts(oversized_index_blocks(index, oversize_limits(config))),
            "id_origin": id_origin,
            "rows_written": rows_written,
        }
        truth = _truth_pairs(session, records)
        if truth is not None:
            facts["accuracy"] = evaluate(result.scored.filter("decision = 'match'"), truth)
    finally:
        result.unpersist()
        records.unpersist()
    log(f"resolution written: {', '.join('gold/' + n for n in OUTPUT_NAMES)}")
    return facts


def _resolve_local(spark, lake: DeltaLake, config: UnifyConfig, current_rows_and_prints, log):
    """_resolve on this machine (unify.local.resolve over Arrow): the same tables and figures.
    Spark starts only to score against a truth file. `current_rows_and_prints`: current_rows
    and their fingerprints."""
    rows, current = current_rows_and_prints
    records = all_record_rows(lake, config, rows)
    try:
        validate_record_table(records)
    except ValueError as exc:  # ambiguous identity (repeated keys): names sources and keys only
        raise IdentityError(str(exc)) from None
    previous = None
    if lake.exists("gold", LINKS):
        previous = lake.read_arrow("gold", LINKS, columns=list(PREVIOUS_LINK_COLUMNS))
    result = local.resolve(records, config, previous)
    log(f"identity resolution phases (s): {result.seconds}")
    frames = (result.links, result.profile_pairs, result.match_candidates)
    rows_written = {
        name: lake.write_arrow(frame, "gold", name).rows_written
        for name, frame in zip(OUTPUT_NAMES, frames, strict=True)
    }
    index = join_fingerprints(result.index, current)
    lake.write_arrow(index, *INDEX_TABLE, writer_properties=INDEX_WRITER)
    clusters = result.clusters
    profiles = table_figures(clusters.select(["unified_customer_id", "source"]),
                             result.pairs.select(["rule"]))  # fmt: skip
    facts: dict[str, Any] = {
        "figures": {
            **profiles,
            **decision_figures(result.scored),
            "review_candidates": result.match_candidates.num_rows,
        },
        **_oversized_facts(oversized_index_blocks(index, oversize_limits(config))),
        "id_origin": _id_origins(clusters),
        "rows_written": rows_written,
        "phases": result.seconds,  # seconds per phase of local.resolve
    }
    if os.environ.get(TRUTH_ENV):
        session = spark()
        present = arrow_to_spark(session, records.select(["source", "source_key"]))
        matches = result.scored.filter(pc.equal(result.scored["decision"], "match"))
        matched = arrow_to_spark(session, matches.select(["rule", *PAIR_KEYS]))
        facts["accuracy"] = evaluate(matched, _truth_pairs(session, present))
    log(f"resolution written: {', '.join('gold/' + n for n in OUTPUT_NAMES)}")
    return facts


def _id_origins(clusters: pa.Table) -> dict[str, int]:
    """Profiles per id origin (carried from the previous run, or new)."""
    if "id_origin" not in clusters.column_names:
        return {}
    counted = clusters.group_by("id_origin").aggregate([("unified_customer_id", "count_distinct")])
    profiles = counted["unified_customer_id_count_distinct"].to_pylist()
    return dict(zip(counted["id_origin"].to_pylist(), profiles, strict=True))


def _resolve_changes(
    spark: Callable[[], SparkSession],
    lake: DeltaLake,
    config: UnifyConfig,
    current_rows_and_prints: tuple[dict[str, pa.Table], pa.Table],
    pinned_index: tuple[pa.Table, dict[str, int]],
    changed: pa.Table,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """Re-resolve what changed since the last run (unify_changes) and apply it to the tables.
    `pinned_index`: the block index and the version of each table to read (and commit on).
    `current_rows_and_prints`: current_rows (the changed records and partners come from them)
    and their fingerprints. Returns (facts, each table as committed)."""
    started = time.perf_counter()
    rows, current = current_rows_and_prints
    index, read_at = pinned_index
    previous = PreviousResolution(
        index=index,
        **{field: lake.read_arrow("gold", name, version=read_at[name])
           for field, name in (("links", LINKS), ("pairs", PAIRS), ("candidates", CANDIDATES))},
    )  # fmt: skip
    changes = unify_changes(
        lambda keys: record_rows_in(rows, config, keys), current, previous, config, changed
    )
    decisions = decision_figures(changes.scored)
    counts = changes.counts
    # Each table's changes applied in memory and written as one pinned overwrite: every file
    # would be rewritten by a merge anyway (the changed keys are spread over all of them). The
    # four rewrites run concurrently (`concurrently`: delta-rs and Arrow release the GIL).
    rewrites = {
        name: partial(rewrite_with_changes, lake, layer, name, before, upserts, remove, keys,
                      read_at[name], writer)
        for layer, name, before, upserts, remove, keys, writer in (
            ("gold", LINKS, previous.links, changes.link_upserts, changes.link_remove,
             ["source", "source_key"], None),
            ("gold", PAIRS, previous.pairs, changes.pair_upserts, changes.pair_remove, PAIR_KEYS,
             None),
            ("gold", CANDIDATES, previous.candidates, changes.candidate_upserts,
             changes.candidate_remove, PAIR_KEYS, None),
            (*INDEX_TABLE, index, changes.index_upserts, changes.index_remove, ["node"],
             INDEX_WRITER),
        )
    }  # fmt: skip
    after = {name: table for name, (_, table) in concurrently(rewrites).items()}
    seconds = time.perf_counter() - started
    log(
        f"identity resolution: {counts['changed']:,} records changed ({counts['deleted']:,} "
        f"gone), {counts['dirty']:,} re-scored against {counts['partners']:,} block partners, "
        f"{counts['closure']:,} re-clustered in {seconds:.1f} s"
    )
    figures = {
        **table_figures(after[LINKS].select(["unified_customer_id", "source"]),
                        after[PAIRS].select(["rule"])),
        **decisions,
        "review_candidates": after[CANDIDATES].num_rows,
    }  # fmt: skip
    figures["records"] = current.num_rows  # what every_record_linked_once compares with
    new_ids = pc.count_distinct(changes.link_upserts["unified_customer_id"]).as_py()
    oversized = _oversized_after(lake, config, index, changes.index, changed)
    facts: dict[str, Any] = {
        "figures": figures,
        **_oversized_facts(oversized),
        "id_origin": {"re-resolved profiles": new_ids},
        "incremental": {**counts, "seconds": round(seconds, 1), "phases": changes.seconds},
        "rows_written": {  # rows upserted (the metadata's rows_written)
            LINKS: changes.link_upserts.num_rows,
            PAIRS: changes.pair_upserts.num_rows,
            CANDIDATES: changes.candidate_upserts.num_rows,
        },
    }
    if os.environ.get(TRUTH_ENV):  # Spark starts only to score against a truth file
        session = spark()
        truth = _truth_pairs(session, lake.read(session, "gold", LINKS))
        facts["accuracy"] = evaluate(lake.read(session, "gold", PAIRS), truth)
    return facts, after


#: Oversized blocks kept in the state (so the next incremental run counts only the blocks its
#: changes touch); above this many the next run counts them all again.
_OVERSIZED_KEPT = 10_000


def _oversized_facts(oversized: pa.Table) -> dict[str, Any]:
    """facts["oversized"] (the largest, for the metadata) and every oversized block."""
    kept = None
    if oversized.num_rows <= _OVERSIZED_KEPT:
        kept = [list(row.values()) for row in oversized.to_pylist()]
    return {"oversized": oversized_report(oversized), "oversized_blocks": kept}


def _oversized_after(lake, config, before: pa.Table, after: pa.Table, changed: pa.Table):
    """oversized_index_blocks of the index after the change: from the previous run's list and the
    blocks the changed records touch, or counted over the whole index when there is no list."""
    limits = oversize_limits(config)
    kept = read_state(lake, IDENTITY_CONSUMER).facts.get("oversized_blocks")
    if kept is None:
        return oversized_index_blocks(after, limits)
    columns = list(zip(*kept, strict=True)) if kept else [[], [], []]
    previous = pa.table(dict(zip(("_col", "_block", "records"), columns, strict=True)))
    previous = previous.cast(OVERSIZED_SCHEMA)
    return oversized_after_change(previous, before, after, changed, limits)
