"""Gold: the unified customer profile (one row per real person) and segment membership.

The profile takes each person's surviving identity and contact from their linked source records
(gold/customer_source_link and the survivorship rules of match_rules.yaml), adds finance measures
over all their Dataverse records, tenure, age band, segments (segments.yaml), the churn risk of
their riskiest KKBox member when churn predictions exist, and data-quality flags. Rebuilt in full
on each run (the link table can regroup any records); docs/unify.md and docs/medallion.md.
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from assets.churn import RISK_KEY as CHURN_RISK_KEY
from assets.crm import silver_key
from assets.silver import CUSTOMER_KEY, FINANCE_KEY
from assets.unified import DATAVERSE_SOURCE, SOURCE_LINK_KEY, source_records
from customer360.transforms.profile import (
    DEFAULT_RULES,
    UNIFIED_ID,
    SegmentRules,
    as_of_day,
    build_profile,
    churn_per_profile,
    dataverse_facts,
    finance_measures,
    segment_memberships,
)
from customer360.transforms.profile_plots import plot_segments
from customer360.unify import merge_profiles, unify_config
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

PROFILE_KEY = dg.AssetKey(["gold", "customer_profile"])
SEGMENTS_KEY = dg.AssetKey(["gold", "customer_segments"])


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
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
):
    session = spark.spark_session
    lake = lakehouse.lake
    config = unify_config()
    rules_path = segment_rules_path()
    rules = SegmentRules.load(rules_path)
    latest = lake.read_arrow("silver", "customer", columns=["SinkModifiedOn"])["SinkModifiedOn"]
    as_of = as_of_day(pc.max(latest).as_py())

    records = source_records(session, lakehouse, config)
    links = lakehouse.read(session, "gold", SOURCE_LINK_KEY.path[-1]).cache()
    merged = merge_profiles(records, links, config.survivorship)
    dataverse_links = links.filter(F.col("source") == DATAVERSE_SOURCE).select(
        UNIFIED_ID, "source_key"
    )
    customers = lakehouse.read(session, "silver", "customer")
    first_seen = (
        records.filter(F.col("source") != DATAVERSE_SOURCE)
        .join(links.select("source", "source_key", UNIFIED_ID), ["source", "source_key"])
        .groupBy(UNIFIED_ID)
        .agg(F.min("modified_at").alias("_first_seen"))
    )
    monthly = lakehouse.read(session, "silver", "customer_finance").withColumn(
        "source_key", F.col("cid").cast("string")
    )
    measures = finance_measures(monthly.join(dataverse_links, "source_key"), key=UNIFIED_ID)
    churn = None
    if lakehouse.exists("gold", CHURN_RISK_KEY.path[-1]):
        risk = lakehouse.read(session, "gold", CHURN_RISK_KEY.path[-1])
        churn = churn_per_profile(dataverse_links, risk)
    else:
        context.log.info("no gold/customer_churn_risk yet: churn columns stay empty")
    profile = build_profile(
        merged,
        dataverse_facts(dataverse_links, customers),
        first_seen,
        measures,
        churn,
        F.lit(as_of).cast("timestamp"),
        rules,
    )
    result = lakehouse.write(profile, "gold", PROFILE_KEY.path[-1])
    written = lakehouse.read(session, "gold", PROFILE_KEY.path[-1])
    seg_result = lakehouse.write(segment_memberships(written, rules), "gold", SEGMENTS_KEY.path[-1])
    links.unpersist()

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
    yield dg.MaterializeResult(asset_key=SEGMENTS_KEY, metadata=write_metadata(seg_result))
    yield from _checks(lake, table, duplicate_flagged)


def _checks(lake, table: pa.Table, duplicate_flagged: int):
    distinct_ids = pc.count_distinct(table[UNIFIED_ID]).as_py()
    linked = lake.read_arrow("gold", SOURCE_LINK_KEY.path[-1], columns=[UNIFIED_ID])
    linked_ids = pc.count_distinct(linked[UNIFIED_ID]).as_py()
    yield dg.AssetCheckResult(
        check_name="one_row_per_unified_customer", asset_key=PROFILE_KEY,
        passed=table.num_rows == distinct_ids == linked_ids,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": table.num_rows, "distinct_ids": distinct_ids,
                  "unified_ids_in_source_link": linked_ids},
    )  # fmt: skip
    segments = lake.read_arrow("gold", SEGMENTS_KEY.path[-1], columns=[UNIFIED_ID, "segment_type"])
    value_rows = segments.filter(pc.equal(segments["segment_type"], "value_segment"))
    segmented = pc.count_distinct(value_rows[UNIFIED_ID]).as_py()
    yield dg.AssetCheckResult(
        check_name="every_customer_segmented", asset_key=SEGMENTS_KEY,
        passed=segmented == distinct_ids, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"customers_with_value_segment": segmented},
    )  # fmt: skip
    # Different people sharing an e-mail (judged so by the match rules): kept apart, flagged.
    counts = pc.value_counts(pc.drop_null(table["email"]).combine_chunks()).field("counts")
    expected = int(pc.sum(pc.filter(counts, pc.greater(counts, 1))).as_py() or 0)
    yield dg.AssetCheckResult(
        check_name="duplicate_emails_flagged", asset_key=PROFILE_KEY,
        passed=duplicate_flagged == expected, severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged": duplicate_flagged, "profiles_sharing_an_email": expected},
    )  # fmt: skip


def _value_counts(values: pa.ChunkedArray) -> dict[str, Any]:
    counts = pc.value_counts(values.combine_chunks()).to_pylist()
    return {str(c["values"]): c["counts"] for c in counts}
