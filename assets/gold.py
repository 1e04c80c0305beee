"""Gold: the customer profile (measures, segments, data-quality flags) and segment membership.

Maintained incrementally like silver/customer: a run rebuilds the profile rows of the customers
whose silver row changed (plus those sharing an e-mail with them, whose duplicate flag may
change) and applies them, with their segment rows, in one Delta commit per table. A full rebuild
runs when finance, the segment rules or `as_of` (the latest export day) changed, or when nothing
is recorded. See docs/medallion.md "Incremental runs".
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from assets.silver import (
    CUSTOMER_KEY,
    FINANCE_KEY,
    FULL_REBUILD_FRACTION,
    SILVER_CONSUMER,
    ConsumerState,
    RefreshConfig,
    apply_changes,
    full_refresh_reason,
    history_markers,
    read_rows,
    read_state,
    table_versions,
    to_spark,
    write_state,
)
from customer360.lakehouse import DeltaLake, WriteResult, count_rows
from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.transforms.dataverse import changed_keys
from customer360.transforms.profile import (
    DEFAULT_RULES,
    SegmentRules,
    as_of_day,
    build_profile,
    rules_fingerprint,
    segment_memberships,
)
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

PROFILE_KEY = dg.AssetKey(["gold", "customer_profile"])
SEGMENTS_KEY = dg.AssetKey(["gold", "customer_segments"])
GOLD_CONSUMER = "gold/customer_profile"  # its row in ops/medallion_state (covers both tables)
SEGMENT_KEYS = ["customer_id", "segment_type", "segment"]

PROFILE_DESCRIPTION = (
    "One row per customer: identity, contact, finance measures (total and average spend and "
    "income, spend-to-income ratio, months active), tenure, age band, value and life-stage "
    "segments, data-quality flags. Age and tenure are as of the latest export day (00:00 UTC), "
    "so a re-run on the same data gives the same table."
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
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    session = spark.spark_session
    lake = lakehouse.lake
    rules_path = segment_rules_path()
    rules = SegmentRules.load(rules_path)
    latest = lake.read_arrow("silver", "customer", columns=["SinkModifiedOn"])["SinkModifiedOn"]
    as_of = as_of_day(pc.max(latest).as_py())
    finance = lake.table("silver", "customer_finance")
    silver = read_state(lake, SILVER_CONSUMER)
    inputs = {
        "silver/customer_finance": [finance.metadata().id, finance.version()],
        "segment_rules": rules_fingerprint(rules_path),
        "as_of": as_of.isoformat() if as_of else None,
        "silver/customer_history": silver.inputs.get("silver/customer_history") if silver else None,
    }
    outputs = [("gold", "customer_profile"), ("gold", "customer_segments")]
    state = read_state(lake, GOLD_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, outputs, config.full_refresh)
    if reason is None and (silver is None or silver.watermark is None):
        reason = "silver/customer has no recorded build"
    changed = None
    if reason is None:
        changed = _changed_customers(lake, state, silver)
        silver_rows = count_rows(lake.table("silver", "customer"))
        if len(changed) > FULL_REBUILD_FRACTION * max(silver_rows, 1):
            reason = f"{len(changed)} of {silver_rows} customers changed"
    as_of_column = F.lit(as_of).cast("timestamp")
    if reason is None:
        refresh = "incremental"
        result, seg_result, affected = _apply_profile_changes(
            session, lake, changed, as_of_column, rules
        )
    else:
        context.log.info(f"gold/customer_profile: full rebuild ({reason})")
        refresh, affected = "full", None
        customers = lakehouse.read(session, "silver", "customer")
        monthly = lakehouse.read(session, "silver", "customer_finance")
        profile = build_profile(customers, monthly, as_of_column, rules)
        result = lakehouse.write(profile, "gold", "customer_profile")
        written = lakehouse.read(session, "gold", "customer_profile")
        seg_result = lakehouse.write(
            segment_memberships(written, rules), "gold", "customer_segments"
        )
    write_state(
        lake,
        ConsumerState(
            GOLD_CONSUMER,
            silver.watermark if silver else None,
            inputs,
            table_versions(lake, outputs),
        ),
    )

    written = lake.read_arrow(
        "gold",
        "customer_profile",
        columns=["customer_id", "email", "value_segment", "life_stage_segment",
                 "dq_duplicate_email"],
    )  # fmt: skip
    duplicate_flagged = int(pc.sum(written["dq_duplicate_email"]).as_py() or 0)
    refresh_meta: dict[str, Any] = {"refresh": refresh}
    if reason:
        refresh_meta["full_refresh_reason"] = reason
    else:
        refresh_meta.update(customers_changed=len(changed), customers_reprocessed=affected)
    yield dg.MaterializeResult(
        asset_key=PROFILE_KEY,
        metadata=write_metadata(
            result,
            as_of=str(as_of),
            value_segments=dg.MetadataValue.json(_value_counts(written["value_segment"])),
            life_stage_segments=dg.MetadataValue.json(_value_counts(written["life_stage_segment"])),
            duplicate_email_rows=duplicate_flagged,
            segment_rules=dg.MetadataValue.path(str(rules_path)),
            **refresh_meta,
        ),
    )
    yield dg.MaterializeResult(
        asset_key=SEGMENTS_KEY, metadata=write_metadata(seg_result, refresh=refresh)
    )

    silver_rows = count_rows(lake.table("silver", "customer"))
    distinct_ids = pc.count_distinct(written["customer_id"]).as_py()
    yield dg.AssetCheckResult(
        check_name="one_row_per_customer", asset_key=PROFILE_KEY,
        passed=result.table_rows == distinct_ids == silver_rows,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": result.table_rows, "distinct_customers": distinct_ids,
                  "silver_customers": silver_rows},
    )  # fmt: skip
    segments = lake.read_arrow("gold", "customer_segments", columns=["customer_id", "segment_type"])
    value_rows = segments.filter(pc.equal(segments["segment_type"], "value_segment"))
    segmented = pc.count_distinct(value_rows["customer_id"]).as_py()
    yield dg.AssetCheckResult(
        check_name="every_customer_segmented", asset_key=SEGMENTS_KEY,
        passed=segmented == distinct_ids, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"customers_with_value_segment": segmented},
    )  # fmt: skip
    # Shared e-mails are different Dataverse records (different cid): kept, flagged for review.
    counts = pc.value_counts(pc.drop_null(written["email"]).combine_chunks()).field("counts")
    expected = int(pc.sum(pc.filter(counts, pc.greater(counts, 1))).as_py() or 0)
    yield dg.AssetCheckResult(
        check_name="duplicate_emails_flagged", asset_key=PROFILE_KEY,
        passed=duplicate_flagged == expected, severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged": duplicate_flagged, "rows_sharing_an_email": expected},
    )  # fmt: skip


def _value_counts(values: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(values.combine_chunks()).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def _changed_customers(lake: DeltaLake, state: ConsumerState, silver: ConsumerState) -> pa.Array:
    """Ids whose silver/customer row may differ from what gold last built from: history merged
    after gold's watermark up to what silver/customer has applied (never ahead of silver), plus
    any Id present in only one of silver/customer and the profile (e.g. a quarantined customer
    that passes validation again without a new version)."""
    markers = history_markers(lake, lake.table("silver", "customer_history").version())
    changed = changed_keys(markers, state.watermark, silver.watermark)
    silver_ids = lake.read_arrow("silver", "customer", columns=["Id"])["Id"].combine_chunks()
    gold_ids = lake.read_arrow("gold", "customer_profile", columns=["customer_id"])[
        "customer_id"
    ].combine_chunks()
    only_silver = pc.filter(silver_ids, pc.invert(pc.is_in(silver_ids, gold_ids)))
    only_gold = pc.filter(gold_ids, pc.invert(pc.is_in(gold_ids, silver_ids)))
    return pc.unique(
        pa.concat_arrays([a.cast(pa.string()) for a in (changed, only_silver, only_gold)])
    )


def _apply_profile_changes(
    session, lake: DeltaLake, changed: pa.Array, as_of, rules: SegmentRules
) -> tuple[WriteResult, WriteResult, int]:
    """Rebuild the profile of the changed customers and of every customer sharing an e-mail
    (old or new) with one of them; upsert those rows, delete the ones no longer in silver, and
    replace their segment rows."""
    silver_emails = lake.read_arrow("silver", "customer", columns=["Id", "email"])
    old = read_rows(lake, "gold", "customer_profile", "customer_id", changed, columns=["email"])[
        "email"
    ]
    new = silver_emails.filter(pc.is_in(silver_emails["Id"], changed))["email"]
    emails = pc.unique(pc.drop_null(pa.concat_arrays([old.combine_chunks(), new.combine_chunks()])))
    neighbours = silver_emails.filter(pc.is_in(silver_emails["email"], emails))["Id"]
    affected = pc.unique(pa.concat_arrays([changed, neighbours.combine_chunks()]))

    customers = read_rows(lake, "silver", "customer", "Id", affected)
    counted = (
        silver_emails.filter(pc.is_in(silver_emails["email"], emails))
        .group_by("email")
        .aggregate([([], "count_all")])
    )
    shared = pa.table({"email": counted["email"], "_n": counted["count_all"]})
    monthly = read_rows(lake, "silver", "customer_finance", "cid", pc.unique(customers["cid"]))
    profile = build_profile(
        to_spark(session, customers), to_spark(session, monthly), as_of, rules,
        shared_emails=to_spark(session, shared),
    )  # fmt: skip
    profile_rows = spark_to_arrow(profile)
    segment_rows = spark_to_arrow(segment_memberships(to_spark(session, profile_rows), rules))
    everyone = pa.table({"customer_id": affected})
    result, _ = apply_changes(
        lake, "gold", "customer_profile", profile_rows, everyone, ["customer_id"]
    )
    previous = read_rows(
        lake, "gold", "customer_segments", "customer_id", affected, columns=SEGMENT_KEYS
    )
    stale = previous.join(segment_rows.select(SEGMENT_KEYS), SEGMENT_KEYS, join_type="left anti")
    seg_result, _ = apply_changes(
        lake, "gold", "customer_segments", segment_rows, stale, SEGMENT_KEYS
    )
    return result, seg_result, len(affected)
