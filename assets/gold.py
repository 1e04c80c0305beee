"""Gold: the unified customer profile (one row per real person) and segment membership.

The profile takes each person's surviving identity and contact from their linked source records
(gold/customer_source_link and the survivorship rules of match_rules.yaml), adds finance measures
over all their Dataverse records, tenure, age band, segments (segments.yaml), the churn risk of
their riskiest KKBox member when churn predictions exist, and data-quality flags.

Incremental by default: a run re-derives only the profiles a changed record left or joined (the
link table and the identity block index, diffed against the versions the last build read) and
applies them in one commit per table. Rules, the as_of day, finance or churn changing, or
`full_refresh`, rebuild in full. docs/unify.md and docs/medallion.md.
"""

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from assets.churn import RISK_KEY as CHURN_RISK_KEY
from assets.crm import silver_key
from assets.silver import (
    CUSTOMER_KEY,
    FINANCE_KEY,
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
from assets.unified import (
    DATAVERSE_SOURCE,
    INDEX_TABLE,
    SOURCE_LINK_KEY,
    file_digest,
    record_rows,
    source_records,
)
from customer360.lakehouse.arrow_sql import arrow_query
from customer360.lakehouse.spark_arrow import arrow_to_spark, spark_to_arrow
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
from customer360.transforms.profile_plots import plot_segments
from customer360.unify import config_path, merge_profiles, unify_config
from customer360.unify.incremental import FINGERPRINT_VERSION
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

PROFILE_KEY = dg.AssetKey(["gold", "customer_profile"])
SEGMENTS_KEY = dg.AssetKey(["gold", "customer_segments"])
PROFILE_TABLES = (("gold", PROFILE_KEY.path[-1]), ("gold", SEGMENTS_KEY.path[-1]))
PROFILE_CONSUMER = "gold/customer_profile"  # its row in ops/medallion_state


PROFILE_DESCRIPTION = (
    "One row per real person (unified_customer_id, stable across runs): surviving identity and "
    "contact, the Dataverse records it covers, finance measures (total and average spend and "
    "income, spend-to-income ratio, months active), tenure, age band, value and life-stage "
    "segments, churn probability and risk band, data-quality flags. Age and tenure are as of the "
    "latest export day (00:00 UTC), so a re-run on the same data gives the same table."
)
SEGMENTS_DESCRIPTION = "unified customer × segment membership (segment_type, segment)."
DESCRIPTIONS = {PROFILE_KEY: PROFILE_DESCRIPTION, SEGMENTS_KEY: SEGMENTS_DESCRIPTION}

#: `C360_SEGMENT_RULES` points at another rules file (same shape as transforms/segments.yaml).
SEGMENT_RULES_ENV = "C360_SEGMENT_RULES"
#: Churn risk is enrichment: the profile builds without it (no KKBox data landed yet).
EAGER_ALLOWING_NO_CHURN = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & ~dg.AutomationCondition.any_deps_missing().ignore(dg.AssetSelection.assets(CHURN_RISK_KEY))
).with_label("eager (churn optional)")


def segment_rules_path() -> Path:
    return Path(os.environ.get(SEGMENT_RULES_ENV, DEFAULT_RULES))


def _profile_deps() -> list[dg.AssetKey]:
    csv_sources = [silver_key(m.source) for m in unify_config().csv_sources]
    return [SOURCE_LINK_KEY, CUSTOMER_KEY, *csv_sources, FINANCE_KEY, CHURN_RISK_KEY]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PROFILE_KEY,
            deps=_profile_deps(),
            kinds={"pyspark", "delta"},
            automation_condition=EAGER_ALLOWING_NO_CHURN,
            description=PROFILE_DESCRIPTION,
        ),
        dg.AssetSpec(
            SEGMENTS_KEY,
            deps=[PROFILE_KEY],
            kinds={"pyspark", "delta"},
            automation_condition=dg.AutomationCondition.eager(),
            description=SEGMENTS_DESCRIPTION,
        ),
    ],
    group_name="gold",
    check_specs=[
        dg.AssetCheckSpec("one_row_per_unified_customer", asset=PROFILE_KEY, blocking=True),
        dg.AssetCheckSpec("every_customer_segmented", asset=SEGMENTS_KEY, blocking=True),
        dg.AssetCheckSpec("duplicate_emails_flagged", asset=PROFILE_KEY),
    ],
)
def customer_profile(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    lake = lakehouse.lake
    rules_path = segment_rules_path()
    rules = SegmentRules.load(rules_path)
    latest = lake.read_arrow("silver", "customer", columns=["SinkModifiedOn"])["SinkModifiedOn"]
    as_of = as_of_day(pc.max(latest).as_py())
    inputs = _profile_inputs(lakehouse, rules_path, as_of)
    state = read_state(lake, PROFILE_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, PROFILE_TABLES, config.full_refresh)
    # The link table and block index versions this build reflects: what a later run diffs.
    built_from = {
        "links_version": lake.table("gold", SOURCE_LINK_KEY.path[-1]).version(),
        "index_version": lake.table(*INDEX_TABLE).version() if lake.exists(*INDEX_TABLE) else None,
    }
    if reason is None and None in (built_from["index_version"], state.facts.get("index_version")):
        reason = "no identity block index to diff"
    if reason is None:
        changes, links = _profile_changes(lake, state.facts, built_from)
        if changes.num_rows > FULL_REBUILD_FRACTION * max(
            count_rows(lake.table(*PROFILE_TABLES[0])), 1
        ):
            reason = f"{changes.num_rows} records changed"
    if reason is None and changes.num_rows == 0:
        refresh, refresh_meta = "unchanged", {}
    elif reason is None:
        refresh = "incremental"
        refresh_meta = _update_profiles(context, spark.spark_session, lakehouse, rules, as_of,
                                        changes, links)  # fmt: skip
    else:
        refresh = "full"
        context.log.info(f"gold/customer_profile: full rebuild ({reason})")
        refresh_meta = {
            "full_refresh_reason": reason,
            "rows_written": _rebuild_profiles(
                context, spark.spark_session, lakehouse, rules, as_of
            ),
        }
    write_state(
        lake,
        ConsumerState(PROFILE_CONSUMER, inputs=inputs,
                      outputs=table_versions(lake, PROFILE_TABLES), facts=built_from),
    )  # fmt: skip
    rows_written = refresh_meta.pop("rows_written", (0, 0))
    result = current_result(lake, *PROFILE_TABLES[0], rows_written[0])
    seg_result = current_result(lake, *PROFILE_TABLES[1], rows_written[1])

    columns = [UNIFIED_ID, "email", "value_segment", "life_stage_segment", "dq_duplicate_email",
               "churn_risk_band", "record_count"]  # fmt: skip
    table = lake.read_arrow("gold", PROFILE_KEY.path[-1], columns=columns)
    duplicate_flagged = int(pc.sum(table["dq_duplicate_email"]).as_py() or 0)
    pairs = table.group_by(["value_segment", "life_stage_segment"]).aggregate([([], "count_all")])
    plot = plot_segments(
        {
            (str(v), str(s)): n
            for v, s, n in zip(
                pairs["value_segment"].to_pylist(),
                pairs["life_stage_segment"].to_pylist(),
                pairs["count_all"].to_pylist(),
                strict=True,
            )
        },
        lakehouse.plot_path(f"segments-{context.run_id}"),
    )
    yield dg.MaterializeResult(
        asset_key=PROFILE_KEY,
        metadata=write_metadata(
            result,
            refresh=refresh,
            **refresh_meta,
            as_of=str(as_of),
            profiles=table.num_rows,
            multi_record_profiles=int(pc.sum(pc.greater(table["record_count"], 1)).as_py() or 0),
            value_segments=dg.MetadataValue.json(_value_counts(table["value_segment"])),
            life_stage_segments=dg.MetadataValue.json(_value_counts(table["life_stage_segment"])),
            churn_risk_bands=dg.MetadataValue.json(_value_counts(table["churn_risk_band"])),
            duplicate_email_rows=duplicate_flagged,
            segment_rules=dg.MetadataValue.path(str(rules_path)),
            segments_plot=dg.MetadataValue.path(str(plot)),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=SEGMENTS_KEY, metadata=write_metadata(seg_result, refresh=refresh)
    )
    yield from _checks(lake, table, duplicate_flagged)


def _profile_inputs(
    lakehouse: LakehouseResource, rules_path: Path, as_of: dt.datetime | None
) -> dict[str, Any]:
    """What forces a full rebuild when it changes: the rules (segments, survivorship), the
    as_of day (age and tenure of everyone), finance and churn (any version), and the identity
    of the tables the changes are read from."""
    lake = lakehouse.lake
    inputs: dict[str, Any] = {
        "segment_rules": file_digest(rules_path),
        "match_rules": file_digest(config_path()),
        "as_of": str(as_of),
        "fingerprint": FINGERPRINT_VERSION,
    }
    for layer, name in (("silver", "customer_finance"), ("gold", CHURN_RISK_KEY.path[-1])):
        if lake.exists(layer, name):
            table = lake.table(layer, name)
            inputs[f"{layer}/{name}"] = [table.metadata().id, table.version()]
    for layer, name in (("gold", SOURCE_LINK_KEY.path[-1]), INDEX_TABLE):
        exists = lake.exists(layer, name)  # no index: identity last ran before it existed
        inputs[f"{layer}/{name}"] = lake.table(layer, name).metadata().id if exists else None
    return inputs


def _profile_changes(lake, facts: dict[str, Any], now: dict[str, int]) -> tuple[pa.Table, pa.Table]:
    """(records whose profile must be re-derived since the last build: their link or their
    source row changed (source, source_key, old and new unified id); the link table now
    (unified_customer_id, source, source_key), which the update reads again)."""
    link_name = SOURCE_LINK_KEY.path[-1]
    link_columns = [UNIFIED_ID, "source", "source_key"]
    links = lake.read_arrow("gold", link_name, version=now["links_version"], columns=link_columns)
    changes = profile_changes(
        lake.read_arrow("gold", link_name, version=facts["links_version"], columns=link_columns),
        links,
        lake.read_arrow(*INDEX_TABLE, version=facts["index_version"], columns=["node", "rec_hash"]),
        lake.read_arrow(*INDEX_TABLE, version=now["index_version"], columns=["node", "rec_hash"]),
    )
    return changes, links


def _profile_frames(
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


def _rebuild_profiles(
    context, session, lakehouse: LakehouseResource, rules, as_of
) -> tuple[int, int]:
    """Build every profile and segment row from all links; returns the rows written."""
    links = lakehouse.read(session, "gold", SOURCE_LINK_KEY.path[-1]).cache()
    churn_risk = None
    if lakehouse.exists("gold", CHURN_RISK_KEY.path[-1]):
        churn_risk = lakehouse.read(session, "gold", CHURN_RISK_KEY.path[-1])
    else:
        context.log.info("no gold/customer_churn_risk yet: churn columns stay empty")
    profile = _profile_frames(
        links,
        source_records(session, lakehouse, unify_config()),
        lakehouse.read(session, "silver", "customer"),
        lakehouse.read(session, "silver", "customer_finance"),
        churn_risk, rules, as_of,
    )  # fmt: skip
    profiles = lakehouse.write(profile, *PROFILE_TABLES[0])
    written = lakehouse.read(session, *PROFILE_TABLES[0])
    segments = lakehouse.write(segment_memberships(written, rules), *PROFILE_TABLES[1])
    links.unpersist()
    return profiles.rows_written, segments.rows_written


def _derive_profiles(session, lake, links: pa.Table, rules, as_of) -> pa.Table:
    """The profiles of `links` (unified_customer_id, source, source_key), derived like
    _profile_frames: their inputs joined on the driver (profile_inputs, survivorship), the derived
    columns and segment rules in Spark (profile_columns)."""
    config = unify_config()
    cids = links.filter(pc.equal(links["source"], DATAVERSE_SOURCE))["source_key"]
    cids = cids.combine_chunks()
    churn_risk = None
    if lake.exists("gold", CHURN_RISK_KEY.path[-1]):
        churn_risk = read_rows(lake, "gold", CHURN_RISK_KEY.path[-1], "cid", cids)
    inputs = profile_inputs.profile_inputs(
        record_rows(lake, config, links.select(["source", "source_key"])),
        links,
        read_rows(lake, "silver", "customer", "cid", cids, columns=["cid", "Id", "createdon"]),
        read_rows(lake, "silver", "customer_finance", "cid", cids,
                  columns=["cid", "month", "spend", "income"]),
        churn_risk, config.survivorship, DATAVERSE_SOURCE, as_of,
    )  # fmt: skip
    return spark_to_arrow(profile_columns(arrow_to_spark(session, inputs), rules))


def _update_profiles(
    context,
    session,
    lakehouse: LakehouseResource,
    rules,
    as_of,
    changes: pa.Table,
    links: pa.Table,
) -> dict[str, Any]:
    """Re-derive only the profiles `changes` touch, from the current `links`, and apply them
    (one commit per table)."""
    lake = lakehouse.lake
    started = time.perf_counter()
    # Every profile a changed record left or joined: replaced by what its links now hold
    # (nothing, for a profile whose last record left).
    replaced = pc.unique(
        pc.drop_null(pa.concat_arrays([changes["old_id"].combine_chunks(),
                                       changes["new_id"].combine_chunks()]))
    )  # fmt: skip
    links = links.filter(pc.is_in(links[UNIFIED_ID], replaced))
    rederived = pc.count_distinct(links[UNIFIED_ID]).as_py()
    rows = _derive_profiles(session, lake, links, rules, as_of)
    derived = time.perf_counter()
    current = lake.read_arrow(
        *PROFILE_TABLES[0], columns=[UNIFIED_ID, "email", "dq_duplicate_email"]
    )
    rows, reflagged_ids = duplicate_email_flags(rows, current, replaced)
    reflagged = read_rows(lake, *PROFILE_TABLES[0], UNIFIED_ID, reflagged_ids)
    reflagged = reflagged.set_column(
        reflagged.schema.get_field_index("dq_duplicate_email"),
        "dq_duplicate_email",
        pc.invert(reflagged["dq_duplicate_email"]),
    )
    upserts = pa.concat_tables([rows, reflagged.select(rows.column_names).cast(rows.schema)])
    remove = pa.table({UNIFIED_ID: replaced})
    apply_changes(lake, *PROFILE_TABLES[0], upserts, remove, [UNIFIED_ID])
    applied = time.perf_counter()
    segment_keys = [UNIFIED_ID, "segment_type", "segment"]
    touched = pa.concat_arrays([replaced, reflagged_ids.cast(replaced.type)])
    old_segments = read_rows(lake, *PROFILE_TABLES[1], UNIFIED_ID, touched, columns=segment_keys)
    segments = spark_to_arrow(segment_memberships(arrow_to_spark(session, upserts), rules))
    apply_changes(lake, *PROFILE_TABLES[1], segments, old_segments, segment_keys)
    seconds = time.perf_counter() - started
    context.log.info(
        f"gold/customer_profile: {len(replaced):,} profiles replaced by {rederived:,} "
        f"re-derived ones, {len(reflagged_ids):,} re-flagged in {seconds:.1f} s"
    )
    return {
        "rows_written": (upserts.num_rows, segments.num_rows),
        "profiles_rederived": rederived,
        "profiles_replaced": len(replaced),
        "duplicate_email_reflagged": len(reflagged_ids),
        "phases": dg.MetadataValue.json(
            {
                "derive": round(derived - started, 2),
                "flags and profile write": round(applied - derived, 2),
                "segments": round(time.perf_counter() - applied, 2),
            }
        ),
    }


def _check_figures(profiles: pa.Table, links: pa.Table, segments: pa.Table) -> dict[str, Any]:
    """The whole-table figures the profile checks compare, in one multi-threaded DuckDB query
    (pyarrow's single-threaded set operations on a million ids took seconds)."""
    return arrow_query(
        f"""WITH v AS (SELECT {UNIFIED_ID} AS id FROM seg WHERE segment_type = 'value_segment'),
                 missing AS (SELECT p.{UNIFIED_ID} AS id FROM prof p
                             ANTI JOIN v ON p.{UNIFIED_ID} = v.id),
                 orphans AS (SELECT v.id FROM v ANTI JOIN prof p ON p.{UNIFIED_ID} = v.id),
                 shared AS (SELECT count(*) AS n FROM prof WHERE email IS NOT NULL
                            GROUP BY email HAVING count(*) > 1)
            SELECT (SELECT count(DISTINCT {UNIFIED_ID}) FROM prof) AS distinct_ids,
                   (SELECT count(DISTINCT {UNIFIED_ID}) FROM links) AS linked_ids,
                   (SELECT count(DISTINCT id) FROM v) AS segmented,
                   (SELECT count(*) FROM missing) AS unsegmented,
                   (SELECT count(*) FROM orphans) AS orphans,
                   (SELECT list(id ORDER BY id)[1:5] FROM missing)
                       || (SELECT list(id ORDER BY id)[1:5] FROM orphans) AS sample,
                   (SELECT coalesce(sum(n), 0) FROM shared) AS sharing""",
        prof=profiles.select([UNIFIED_ID, "email"]),
        links=links,
        seg=segments,
    ).to_pylist()[0]


def _checks(lake, table: pa.Table, duplicate_flagged: int):
    linked = lake.read_arrow("gold", SOURCE_LINK_KEY.path[-1], columns=[UNIFIED_ID])
    segments = lake.read_arrow("gold", SEGMENTS_KEY.path[-1], columns=[UNIFIED_ID, "segment_type"])
    f = _check_figures(table, linked, segments)
    yield dg.AssetCheckResult(
        check_name="one_row_per_unified_customer", asset_key=PROFILE_KEY,
        passed=table.num_rows == f["distinct_ids"] == f["linked_ids"],
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": table.num_rows, "distinct_ids": f["distinct_ids"],
                  "unified_ids_in_source_link": f["linked_ids"]},
    )  # fmt: skip
    yield dg.AssetCheckResult(
        check_name="every_customer_segmented", asset_key=SEGMENTS_KEY,
        passed=f["segmented"] == f["distinct_ids"] and f["unsegmented"] == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"customers_with_value_segment": f["segmented"],
                  "profiles_without_value_segment": f["unsegmented"],
                  "segment_rows_without_profile": f["orphans"],
                  "sample": dg.MetadataValue.json(f["sample"] or [])},
    )  # fmt: skip
    # Different people sharing an e-mail (judged so by the match rules): kept apart, flagged.
    yield dg.AssetCheckResult(
        check_name="duplicate_emails_flagged", asset_key=PROFILE_KEY,
        passed=duplicate_flagged == f["sharing"], severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged": duplicate_flagged, "profiles_sharing_an_email": int(f["sharing"])},
    )  # fmt: skip


def _value_counts(values: pa.ChunkedArray) -> dict[str, Any]:
    counts = pc.value_counts(values.combine_chunks()).to_pylist()
    return {str(c["values"]): c["counts"] for c in counts}
