"""gold/customer_profile and gold/customer_segments, maintained incrementally.

A build re-derives only the profiles a changed record left or joined (the link table and the
identity block index, diffed against the versions the last build read) and applies them in one
commit per table. Rules, the as_of day, an enrichment (finance, churn) or the identity tables
changing, or a requested full refresh, rebuild everything. docs/unify.md and docs/medallion.md.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from customer360.gold import enrichment
from customer360.lakehouse import DeltaLake, WriteResult
from customer360.lakehouse.incremental import (
    FULL_REBUILD_FRACTION,
    ConsumerState,
    concurrently,
    current_result,
    full_refresh_reason,
    on_conflict,
    read_rows,
    read_state,
    read_version,
    rewrite_with_changes,
    table_versions,
    write_state,
)
from customer360.lakehouse.spark_arrow import arrow_to_spark, is_local_master, spark_to_arrow
from customer360.lakehouse.store import count_rows
from customer360.transforms import profile_inputs
from customer360.transforms.profile import (
    DEFAULT_RULES,
    UNIFIED_ID,
    SegmentRules,
    as_of_day,
    build_profile,
    churn_per_profile,
    dataverse_facts,
    finance_measures,
    profile_columns,
    segment_memberships,
)
from customer360.transforms.profile_changes import duplicate_email_flags, profile_changes
from customer360.unify import config_path, merge_profiles, unify_config
from customer360.unify.incremental import FINGERPRINT_VERSION
from customer360.unify.lake_records import (
    DATAVERSE_SOURCE,
    INDEX_TABLE,
    all_record_rows,
    file_digest,
    record_rows,
    source_records,
)

PROFILE_TABLE = ("gold", "customer_profile")
SEGMENTS_TABLE = ("gold", "customer_segments")
PROFILE_TABLES = (PROFILE_TABLE, SEGMENTS_TABLE)
LINK_TABLE = ("gold", "customer_source_link")
PROFILE_CONSUMER = "gold/customer_profile"  # its row in ops/medallion_state
#: `C360_SEGMENT_RULES` points at another rules file (same shape as transforms/segments.yaml).
SEGMENT_RULES_ENV = "C360_SEGMENT_RULES"


def segment_rules_path() -> Path:
    return Path(os.environ.get(SEGMENT_RULES_ENV, DEFAULT_RULES))


@dataclass
class ProfileBuild:
    """What one build did: the path taken, its figures and the tables as they are now."""

    refresh: str  # "incremental", "full" or "unchanged"
    as_of: dt.datetime | None
    rules_path: Path
    profiles: WriteResult
    segments: WriteResult
    details: dict[str, Any] = field(default_factory=dict)  # full_refresh_reason, phases …
    enrichments: dict[str, str] = field(default_factory=dict)
    #: The tables as this build committed them ("profile", "segments", "links": the link
    #: table it read), when it holds them in memory: the figures and checks use them instead
    #: of reading a million rows back (an "unchanged" build holds none).
    tables: dict[str, pa.Table] = field(default_factory=dict)


def refresh_profiles(
    spark: Callable[[], SparkSession], lake: DeltaLake, requested: bool, log: Callable[[str], None]
) -> ProfileBuild:
    """Bring the profile and segment tables up to date with the link table and enrichments.
    An incremental update commits each table on the version it read; when another writer
    committed first (`WriteConflict`) everything is read and decided again."""
    return on_conflict(lambda: _refresh(spark, lake, requested, log), "gold profile")


def _refresh(spark, lake: DeltaLake, requested: bool, log: Callable[[str], None]) -> ProfileBuild:
    rules_path = segment_rules_path()
    rules = SegmentRules.load(rules_path)
    latest = lake.read_arrow("silver", "customer", columns=["SinkModifiedOn"])["SinkModifiedOn"]
    as_of = as_of_day(pc.max(latest).as_py())
    inputs = rebuild_inputs(lake, rules_path, as_of)
    state = read_state(lake, PROFILE_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, PROFILE_TABLES, requested)
    # The link table and block index versions this build reflects: what a later run diffs.
    built_from = {
        "links_version": lake.table(*LINK_TABLE).version(),
        "index_version": lake.table(*INDEX_TABLE).version() if lake.exists(*INDEX_TABLE) else None,
    }
    if reason is None and None in (built_from["index_version"], state.facts.get("index_version")):
        reason = "no identity block index to diff"
    if reason is None:
        changes, links = _profile_changes(lake, state.facts, built_from)
        profiles_now = count_rows(lake.table(*PROFILE_TABLE))
        if changes.num_rows > FULL_REBUILD_FRACTION * max(profiles_now, 1):
            reason = f"{changes.num_rows} records changed"
    details: dict[str, Any]
    tables: dict[str, pa.Table] = {}
    if reason is None and changes.num_rows == 0:
        refresh, details = "unchanged", {}
    elif reason is None:
        refresh = "incremental"
        details, tables = _update_profiles(spark(), lake, rules, as_of, changes, links, log)
        tables["links"] = links
    else:
        refresh = "full"
        log(f"gold/customer_profile: full rebuild ({reason})")
        session = spark()
        rebuild = _rebuild_profiles_local if is_local_master(session) else _rebuild_profiles
        written = rebuild(session, lake, rules, as_of, log)
        details = {"full_refresh_reason": reason, "rows_written": written}
    write_state(
        lake,
        ConsumerState(PROFILE_CONSUMER, inputs=inputs,
                      outputs=table_versions(lake, PROFILE_TABLES), facts=built_from),
    )  # fmt: skip
    rows_written = details.pop("rows_written", (0, 0))
    return ProfileBuild(
        refresh, as_of, rules_path,
        current_result(lake, *PROFILE_TABLE, rows_written[0]),
        current_result(lake, *SEGMENTS_TABLE, rows_written[1]),
        details, enrichment.describe(lake), tables,
    )  # fmt: skip


def rebuild_inputs(lake: DeltaLake, rules_path: Path, as_of: dt.datetime | None) -> dict[str, Any]:
    """What forces a full rebuild when it changes: the rules (segments, survivorship), the
    as_of day (age and tenure of everyone), the enrichments (any version, or appearing), and
    the identity of the tables the changes are read from."""
    inputs: dict[str, Any] = {
        "segment_rules": file_digest(rules_path),
        "match_rules": file_digest(config_path()),
        "as_of": str(as_of),
        "fingerprint": FINGERPRINT_VERSION,
        **enrichment.versions(lake),
    }
    for layer, name in (LINK_TABLE, INDEX_TABLE):
        exists = lake.exists(layer, name)  # no index: identity last ran before it existed
        inputs[f"{layer}/{name}"] = lake.table(layer, name).metadata().id if exists else None
    return inputs


def _profile_changes(lake, facts: dict[str, Any], now: dict[str, int]) -> tuple[pa.Table, pa.Table]:
    """(records whose profile must be re-derived since the last build: their link or their
    source row changed (source, source_key, old and new unified id); the link table now
    (unified_customer_id, source, source_key), which the update reads again)."""
    link_columns = [UNIFIED_ID, "source", "source_key"]
    links = lake.read_arrow(*LINK_TABLE, version=now["links_version"], columns=link_columns)
    changes = profile_changes(
        lake.read_arrow(*LINK_TABLE, version=facts["links_version"], columns=link_columns),
        links,
        lake.read_arrow(*INDEX_TABLE, version=facts["index_version"], columns=["node", "rec_hash"]),
        lake.read_arrow(*INDEX_TABLE, version=now["index_version"], columns=["node", "rec_hash"]),
    )
    return changes, links


def profile_frames(
    links: DataFrame,
    records: DataFrame,
    customers: DataFrame,
    monthly: DataFrame,
    churn_risk: DataFrame | None,
    rules: SegmentRules,
    as_of: dt.datetime | None,
) -> DataFrame:
    """build_profile over the given links (all of them, or those of the profiles to update)
    and the matching source rows."""
    config = unify_config()
    merged = merge_profiles(records, links, config.survivorship)
    dataverse_links = links.filter(F.col("source") == DATAVERSE_SOURCE).select(
        UNIFIED_ID, "source_key"
    )
    first_seen = (
        records.filter(F.col("source") != DATAVERSE_SOURCE)
        .join(links.select("source", "source_key", UNIFIED_ID), ["source", "source_key"])
        .groupBy(UNIFIED_ID)
        .agg(F.min("modified_at").alias("_first_seen"))
    )
    monthly = monthly.withColumn("source_key", F.col("cid").cast("string"))
    measures = finance_measures(monthly.join(dataverse_links, "source_key"), key=UNIFIED_ID)
    churn = None if churn_risk is None else churn_per_profile(dataverse_links, churn_risk)
    return build_profile(
        merged,
        dataverse_facts(dataverse_links, customers),
        first_seen,
        measures,
        churn,
        F.lit(as_of).cast("timestamp"),
        rules,
    )


def _rebuild_profiles(session, lake: DeltaLake, rules, as_of, log) -> tuple[int, int]:
    """Build every profile and segment row from all links; returns the rows written."""
    links = lake.read(session, *LINK_TABLE).cache()
    churn_risk = None
    if lake.exists(*enrichment.CHURN_RISK_TABLE):
        churn_risk = lake.read(session, *enrichment.CHURN_RISK_TABLE)
    else:
        log("no gold/customer_churn_risk: churn columns stay empty")
    profile = profile_frames(
        links,
        source_records(session, lake, unify_config()),
        lake.read(session, "silver", "customer"),
        enrichment.read_finance(lake, session),
        churn_risk, rules, as_of,
    )  # fmt: skip
    profiles = lake.write(profile, *PROFILE_TABLE)
    written = lake.read(session, *PROFILE_TABLE)
    segments = lake.write(segment_memberships(written, rules), *SEGMENTS_TABLE)
    links.unpersist()
    return profiles.rows_written, segments.rows_written


def _rebuild_profiles_local(session, lake: DeltaLake, rules, as_of, log) -> tuple[int, int]:
    """_rebuild_profiles on one machine (local Spark): every profile derived like an incremental
    update (derive_profiles over all links: inputs joined on the driver, one Spark job for the
    derived columns and segment rules), the rows profile_frames gives
    (tests/medallion/test_profile_inputs.py) without its Spark joins and per-profile Python
    survivorship stages."""
    links = lake.read_arrow(*LINK_TABLE, columns=[UNIFIED_ID, "source", "source_key"])
    if not lake.exists(*enrichment.CHURN_RISK_TABLE):
        log("no gold/customer_churn_risk: churn columns stay empty")
    rows = derive_profiles(session, lake, links, rules, as_of, every_record=True)
    profiles = lake.write_arrow(rows, *PROFILE_TABLE)
    segments = profile_inputs.segment_rows(rows, rules)
    return profiles.rows_written, lake.write_arrow(segments, *SEGMENTS_TABLE).rows_written


def derive_profiles(
    session, lake: DeltaLake, links: pa.Table, rules, as_of, every_record: bool = False
) -> pa.Table:
    """The profiles of `links` (unified_customer_id, source, source_key), derived like
    profile_frames: their inputs joined on the driver (profile_inputs, survivorship), the derived
    columns and segment rules in Spark (profile_columns). `every_record`: `links` is the whole
    link table, so whole tables are read instead of looking their keys up."""
    config = unify_config()
    cids = links.filter(pc.equal(links["source"], DATAVERSE_SOURCE))["source_key"]
    cids = None if every_record else cids.combine_chunks()
    churn_risk = None
    if lake.exists(*enrichment.CHURN_RISK_TABLE):
        churn_risk = _rows(lake, enrichment.CHURN_RISK_TABLE, cids)
    records = (
        all_record_rows(lake, config)
        if every_record
        else record_rows(lake, config, links.select(["source", "source_key"]))
    )
    inputs = profile_inputs.profile_inputs(
        records, links,
        _rows(lake, ("silver", "customer"), cids, ["cid", "Id", "createdon"]),
        enrichment.finance_rows(lake, cids),
        churn_risk, config.survivorship, DATAVERSE_SOURCE, as_of,
    )  # fmt: skip
    return spark_to_arrow(profile_columns(arrow_to_spark(session, inputs), rules))


def _rows(lake: DeltaLake, table: tuple[str, str], cids: pa.Array | None, columns=None) -> pa.Table:
    """The rows of `table` with these cids (all rows: None)."""
    if cids is None:
        return lake.read_arrow(*table, columns=columns)
    return read_rows(lake, *table, "cid", cids, columns=columns)


def _update_profiles(
    session, lake: DeltaLake, rules, as_of, changes: pa.Table, links: pa.Table, log
) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """Re-derive only the profiles `changes` touch, from the current `links`, and apply them
    (one commit per table). Returns (details, the profile and segment tables as committed)."""
    started = time.perf_counter()
    # Every profile a changed record left or joined: replaced by what its links now hold
    # (nothing, for a profile whose last record left).
    replaced = pc.unique(
        pc.drop_null(pa.concat_arrays([changes["old_id"].combine_chunks(),
                                       changes["new_id"].combine_chunks()]))
    )  # fmt: skip
    links = links.filter(pc.is_in(links[UNIFIED_ID], replaced))
    rederived = pc.count_distinct(links[UNIFIED_ID]).as_py()
    rows = derive_profiles(session, lake, links, rules, as_of)
    derived = time.perf_counter()
    # Both whole tables, read once at pinned versions: the flags, the re-flagged rows, the old
    # segments and the rewrites all come from them (a merge would read every file again).
    profile_version = read_version(lake, *PROFILE_TABLE)
    segments_version = read_version(lake, *SEGMENTS_TABLE)
    held = concurrently({
        "profile": partial(lake.read_arrow, *PROFILE_TABLE, version=profile_version),
        "segments": partial(lake.read_arrow, *SEGMENTS_TABLE, version=segments_version),
    })  # fmt: skip
    before, all_segments = held["profile"], held["segments"]
    current = before.select([UNIFIED_ID, "email", "dq_duplicate_email"])
    rows, reflagged_ids = duplicate_email_flags(rows, current, replaced)
    reflagged = before.filter(pc.is_in(before[UNIFIED_ID], reflagged_ids))
    reflagged = reflagged.set_column(
        reflagged.schema.get_field_index("dq_duplicate_email"),
        "dq_duplicate_email",
        pc.invert(reflagged["dq_duplicate_email"]),
    )
    upserts = pa.concat_tables([rows, reflagged.select(rows.column_names).cast(rows.schema)])
    segment_keys = [UNIFIED_ID, "segment_type", "segment"]
    touched = pa.concat_arrays([replaced, reflagged_ids.cast(replaced.type)])
    old_segments = all_segments.filter(pc.is_in(all_segments[UNIFIED_ID], touched))
    segments = profile_inputs.segment_rows(upserts, rules)
    flagged = time.perf_counter()
    # The two rewrites run concurrently (delta-rs and Arrow release the GIL).
    now = concurrently({
        "profile": partial(rewrite_with_changes, lake, *PROFILE_TABLE, before, upserts,
                           pa.table({UNIFIED_ID: replaced}), [UNIFIED_ID], profile_version),
        "segments": partial(rewrite_with_changes, lake, *SEGMENTS_TABLE, all_segments, segments,
                            old_segments.select(segment_keys), segment_keys, segments_version),
    })  # fmt: skip
    seconds = time.perf_counter() - started
    log(
        f"gold/customer_profile: {len(replaced):,} profiles replaced by {rederived:,} "
        f"re-derived ones, {len(reflagged_ids):,} re-flagged in {seconds:.1f} s"
    )
    details = {
        "rows_written": (upserts.num_rows, segments.num_rows),
        "profiles_rederived": rederived,
        "profiles_replaced": len(replaced),
        "duplicate_email_reflagged": len(reflagged_ids),
        "phases": {
            "derive": round(derived - started, 2),
            "read, flags and segments": round(flagged - derived, 2),
            "writes": round(time.perf_counter() - flagged, 2),
        },
    }
    return details, {name: table for name, (_, table) in now.items()}


@dataclass(frozen=True)
class ProfileFigures:
    """What the profile's materialisation reports about the table as it is now."""

    table: pa.Table  # the columns the figures and checks read
    duplicate_flagged: int
    multi_record_profiles: int
    value_segments: dict[str, int]
    life_stage_segments: dict[str, int]
    churn_risk_bands: dict[str, int]
    plot: Path


def profile_figures(
    lake: DeltaLake, plot_path: Path, profiles: pa.Table | None = None
) -> ProfileFigures:
    """The figures of the profile table: `profiles` (the table as just committed) or read."""
    columns = [UNIFIED_ID, "email", "value_segment", "life_stage_segment", "dq_duplicate_email",
               "churn_risk_band", "record_count"]  # fmt: skip
    if profiles is None:
        table = lake.read_arrow(*PROFILE_TABLE, columns=columns)
    else:
        table = profiles.select(columns)
    pairs = table.group_by(["value_segment", "life_stage_segment"]).aggregate([([], "count_all")])
    counts = zip(pairs["value_segment"].to_pylist(), pairs["life_stage_segment"].to_pylist(),
                 pairs["count_all"].to_pylist(), strict=True)  # fmt: skip
    # matplotlib is imported here, not at load: every run the daemon starts loads this module.
    from customer360.transforms.profile_plots import plot_segments

    plot = plot_segments({(str(v), str(s)): n for v, s, n in counts}, plot_path)
    return ProfileFigures(
        table,
        int(pc.sum(table["dq_duplicate_email"]).as_py() or 0),
        int(pc.sum(pc.greater(table["record_count"], 1)).as_py() or 0),
        _value_counts(table["value_segment"]),
        _value_counts(table["life_stage_segment"]),
        _value_counts(table["churn_risk_band"]),
        Path(plot),
    )


def _value_counts(values: pa.ChunkedArray) -> dict[str, Any]:
    counts = pc.value_counts(values.combine_chunks()).to_pylist()
    return {str(c["values"]): c["counts"] for c in counts}
