"""Gold: the customer profile (measures, segments, data-quality flags) and segment membership."""

import os
from pathlib import Path

import dagster as dg
from pyspark.sql import functions as F

from assets.silver import CUSTOMER_KEY, FINANCE_KEY
from customer360.transforms.profile import (
    DEFAULT_RULES,
    SegmentRules,
    build_profile,
    segment_memberships,
)
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

PROFILE_KEY = dg.AssetKey(["gold", "customer_profile"])
SEGMENTS_KEY = dg.AssetKey(["gold", "customer_segments"])

PROFILE_DESCRIPTION = (
    "One row per customer: identity, contact, finance measures (total and average spend and "
    "income, spend-to-income ratio, months active), tenure, age band, value and life-stage "
    "segments, data-quality flags. Age and tenure are as of the latest export seen, so a re-run "
    "on the same data gives the same table."
)
SEGMENTS_DESCRIPTION = "customer × segment membership (segment_type, segment)."
DESCRIPTIONS = {PROFILE_KEY: PROFILE_DESCRIPTION, SEGMENTS_KEY: SEGMENTS_DESCRIPTION}

#: `C360_SEGMENT_RULES` points at another rules file (same shape as transforms/segments.yaml).
SEGMENT_RULES_ENV = "C360_SEGMENT_RULES"


def segment_rules_path() -> Path:
    return Path(os.environ.get(SEGMENT_RULES_ENV, DEFAULT_RULES))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PROFILE_KEY,
            deps=[CUSTOMER_KEY, FINANCE_KEY],
            kinds={"pyspark", "delta"},
            automation_condition=dg.AutomationCondition.eager(),
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
        dg.AssetCheckSpec("one_row_per_customer", asset=PROFILE_KEY, blocking=True),
        dg.AssetCheckSpec("every_customer_segmented", asset=SEGMENTS_KEY, blocking=True),
        dg.AssetCheckSpec("duplicate_emails_flagged", asset=PROFILE_KEY),
    ],
)
def customer_profile(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
):
    session = spark.spark_session
    rules = SegmentRules.load(segment_rules_path())
    customers = lakehouse.read(session, "silver", "customer")
    monthly = lakehouse.read(session, "silver", "customer_finance")
    as_of = customers.agg(F.max("SinkModifiedOn")).collect()[0][0]
    profile = build_profile(customers, monthly, F.lit(as_of).cast("timestamp"), rules)
    result = lakehouse.write(profile, "gold", "customer_profile")
    written = lakehouse.read(session, "gold", "customer_profile").cache()
    by_value = {
        r.value_segment: r["count"] for r in written.groupBy("value_segment").count().collect()
    }
    by_stage = {
        r.life_stage_segment: r["count"]
        for r in written.groupBy("life_stage_segment").count().collect()
    }
    duplicate_flagged = written.filter("dq_duplicate_email").count()
    silver_rows = customers.count()
    yield dg.MaterializeResult(
        asset_key=PROFILE_KEY,
        metadata=write_metadata(
            result,
            as_of=str(as_of),
            value_segments=dg.MetadataValue.json(by_value),
            life_stage_segments=dg.MetadataValue.json(by_stage),
            duplicate_email_rows=duplicate_flagged,
            segment_rules=dg.MetadataValue.path(str(segment_rules_path())),
        ),
    )
    segments = segment_memberships(written, rules)
    seg_result = lakehouse.write(segments, "gold", "customer_segments")
    yield dg.MaterializeResult(asset_key=SEGMENTS_KEY, metadata=write_metadata(seg_result))

    distinct_ids = written.select("customer_id").distinct().count()
    yield dg.AssetCheckResult(
        check_name="one_row_per_customer", asset_key=PROFILE_KEY,
        passed=result.table_rows == distinct_ids == silver_rows,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": result.table_rows, "distinct_customers": distinct_ids,
                  "silver_customers": silver_rows},
    )  # fmt: skip
    segmented = (
        lakehouse.read(session, "gold", "customer_segments")
        .filter("segment_type = 'value_segment'")
        .select("customer_id")
        .distinct()
        .count()
    )
    yield dg.AssetCheckResult(
        check_name="every_customer_segmented", asset_key=SEGMENTS_KEY,
        passed=segmented == distinct_ids, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"customers_with_value_segment": segmented},
    )  # fmt: skip
    # Shared e-mails are different Dataverse records (different cid): kept, flagged for review.
    shared = written.filter(F.col("email").isNotNull()).groupBy("email").count().filter("count > 1")
    expected = shared.agg(F.sum("count")).collect()[0][0] or 0
    yield dg.AssetCheckResult(
        check_name="duplicate_emails_flagged", asset_key=PROFILE_KEY,
        passed=duplicate_flagged == expected, severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged": duplicate_flagged, "rows_sharing_an_email": expected},
    )  # fmt: skip
    written.unpersist()
