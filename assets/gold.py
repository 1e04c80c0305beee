"""Gold: the unified customer profile (one row per real person) and segment membership.

The profile takes each person's surviving identity and contact from their linked source records
(gold/customer_source_link and the survivorship rules of match_rules.yaml), adds finance measures
over all their Dataverse records, tenure, age band, segments (segments.yaml), the churn risk of
their riskiest KKBox member when churn predictions exist, and data-quality flags. The work is in
customer360/gold/profile.py (incremental by default; docs/unify.md and docs/medallion.md).

Finance and churn are enrichments. silver/customer_finance is a dependency that materialises
even before any finance landed (`skipped`). Churn risk is deliberately NOT a dependency: within a
run Dagster skips everything downstream of a failed step, and the Customer 360 must not wait for
the churn domain (a KKBox drop it cannot use). The profile reads the last good
gold/customer_churn_risk when there is one, says which in its `enrichments` metadata, runs after
the churn steps of the same run (lower priority) and follows each new churn risk by automation.
"""

import dagster as dg

from assets.keys import (
    CHURN_RISK_KEY,
    CUSTOMER_KEY,
    FINANCE_KEY,
    PROFILE_KEY,
    SEGMENTS_KEY,
    SOURCE_LINK_KEY,
    crm_silver_key,
)
from assets.refresh import EAGER, RefreshConfig
from assets.table_docs import TABLE_DESCRIPTIONS
from customer360.gold.checks import lake_check_figures
from customer360.gold.profile import ProfileFigures, profile_figures, refresh_profiles
from customer360.unify import unify_config
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

#: A new churn risk re-derives the profile although it is not a dependency (see above).
CHURN_RISK_UPDATED = (
    dg.AutomationCondition.asset_matches(CHURN_RISK_KEY, dg.AutomationCondition.newly_updated())
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("churn risk updated")
PROFILE_AUTOMATION = EAGER | CHURN_RISK_UPDATED
#: Run after every ready step of other domains (in-process runs pick ready steps by priority):
#: in a run that also builds churn, the profile then reads this run's churn risk if it succeeded.
AFTER_ENRICHMENTS = {"dagster/priority": "-1"}
NO_CUSTOMERS = (
    "no customer records yet (no Synapse Link export and no other CRM source landed): empty tables"
)


def _profile_deps() -> list[dg.AssetKey]:
    csv_sources = [crm_silver_key(m.source) for m in unify_config().csv_sources]
    return [SOURCE_LINK_KEY, CUSTOMER_KEY, *csv_sources, FINANCE_KEY]


@dg.multi_asset(
    name="gold__customer_profile_and_segments",
    specs=[
        dg.AssetSpec(PROFILE_KEY, deps=_profile_deps(), kinds={"pyspark", "delta"},
                     automation_condition=PROFILE_AUTOMATION,
                     description=TABLE_DESCRIPTIONS[PROFILE_KEY]),
        dg.AssetSpec(SEGMENTS_KEY, deps=[PROFILE_KEY], kinds={"pyspark", "delta"},
                     automation_condition=EAGER, description=TABLE_DESCRIPTIONS[SEGMENTS_KEY]),
    ],
    group_name="gold",
    op_tags=AFTER_ENRICHMENTS,
    check_specs=[
        dg.AssetCheckSpec("one_row_per_unified_customer", asset=PROFILE_KEY, blocking=True),
        dg.AssetCheckSpec("every_customer_segmented", asset=SEGMENTS_KEY, blocking=True),
        dg.AssetCheckSpec("duplicate_emails_flagged", asset=PROFILE_KEY),
    ],
)  # fmt: skip
def customer_profile(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    lake = lakehouse.lake
    build = refresh_profiles(
        lambda: spark.spark_session, lake, config.full_refresh, context.log.info
    )
    for name, used in build.enrichments.items():
        context.log.info(f"gold/customer_profile enrichment {name}: {used}")
    figures = profile_figures(
        lake, lakehouse.plot_path(f"segments-{context.run_id}"), build.tables.get("profile")
    )
    details = dict(build.details)
    # e.g. finance alone landed: empty tables, with the reason on both
    empty = {"skipped": NO_CUSTOMERS} if figures.table.num_rows == 0 else {}
    details.update(empty)
    if "phases" in details:
        details["phases"] = dg.MetadataValue.json(details["phases"])
    yield dg.MaterializeResult(
        asset_key=PROFILE_KEY,
        metadata=write_metadata(
            build.profiles,
            refresh=build.refresh,
            **details,
            as_of=str(build.as_of),
            profiles=figures.table.num_rows,
            multi_record_profiles=figures.multi_record_profiles,
            value_segments=dg.MetadataValue.json(figures.value_segments),
            life_stage_segments=dg.MetadataValue.json(figures.life_stage_segments),
            churn_risk_bands=dg.MetadataValue.json(figures.churn_risk_bands),
            duplicate_email_rows=figures.duplicate_flagged,
            enrichments=dg.MetadataValue.json(build.enrichments),
            segment_rules=dg.MetadataValue.path(str(build.rules_path)),
            segments_plot=lakehouse.plot_metadata(
                figures.plot, "profiles by value × life-stage segment"
            ),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=SEGMENTS_KEY,
        metadata=write_metadata(build.segments, refresh=build.refresh, **empty),
    )
    yield from _checks(lake, figures, build.tables)


def _checks(lake, figures: ProfileFigures, tables: dict):
    table, flagged = figures.table, figures.duplicate_flagged
    f = lake_check_figures(lake, table, tables.get("links"), tables.get("segments"))
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
        passed=flagged == f["sharing"], severity=dg.AssetCheckSeverity.WARN,
        metadata={"flagged": flagged, "profiles_sharing_an_email": int(f["sharing"])},
    )  # fmt: skip
