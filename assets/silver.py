"""Silver: clean names and values, history (SCD2) maintained by merge, current state, finance.

These assets only declare and report; the work is in customer360/silver/ (Dagster-free).
silver/customer (+ quarantine) is maintained incrementally: each run re-derives only the
customers whose history changed since its last build and applies them in one Delta commit per
table. silver/customer_finance is rebuilt only when bronze finance changed. Anything unexpected
(no recorded state, a table changed elsewhere, most customers changed, `full_refresh` asked)
takes the full rebuild. See docs/medallion.md "Incremental runs".

Pools (one step at a time per pool with the instance `customer360 dev` writes): the history and
silver/customer form one chain (`silver_customer`), finance another (`silver_finance`). The
writes are also safe by themselves (pinned-version commits, customer360/lakehouse/store.py).
"""

import dagster as dg

from assets.keys import CUSTOMER_KEY, FINANCE_KEY, HISTORY_KEY, QUARANTINE_KEY, crm_bronze_key
from assets.partitions import dataverse_exports
from assets.refresh import CUSTOMER_AUTOMATION, EAGER, RefreshConfig
from customer360.silver.current import customers_not_landed, refresh_current
from customer360.silver.finance import (
    NOT_LANDED,
    finance_landed,
    orphan_customers,
    refresh_finance,
)
from customer360.silver.history import merge_partitions
from customer360.silver.merged_bronze import merged_live_ids
from customer360.silver.no_export import empty_current, no_export_reason
from customer360.tables import CUSTOMER_TABLE
from customer360.unify import unify_config
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

#: The writers of silver/customer_history → silver/customer (+ quarantine).
CUSTOMER_POOL = "silver_customer"


@dg.asset(
    key=HISTORY_KEY,
    group_name="silver",
    kinds={"pyspark", "delta"},
    deps=[dg.AssetKey(["bronze", CUSTOMER_TABLE])],
    partitions_def=dataverse_exports,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=EAGER,
    description="SCD type 2 history of customers (valid_from, valid_to, is_current, is_deleted): "
    "every version Synapse Link exported, standardised. Maintained incrementally: each export "
    "partition merges its versions and re-chains only the customers it touches.",
    pool=CUSTOMER_POOL,
)
def customer_history(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    merged = merge_partitions(spark.spark_session, lakehouse.lake, context.partition_keys)
    return dg.MaterializeResult(
        metadata=write_metadata(
            merged.result,
            versions_merged=merged.result.rows_written,
            merged_at=merged.marker.isoformat(),
        )
    )


@dg.multi_asset(
    name="silver__customer_and_quarantine",
    specs=[
        dg.AssetSpec(
            CUSTOMER_KEY,
            deps=[HISTORY_KEY],
            description="Current state per Id: latest version, deletes removed (a re-create "
            "revives), publisher prefix stripped, values standardised and validated. Updated "
            "incrementally from the history rows merged since the last build.",
            kinds={"pyspark", "delta"},
            automation_condition=CUSTOMER_AUTOMATION,
            # No Synapse Link export yet: empty, with the reason (see _before_the_export).
        ),
        dg.AssetSpec(
            QUARANTINE_KEY,
            deps=[HISTORY_KEY],
            description="Current customers that fail validation, with the rules they break "
            "(failed_rules); nothing is lost between silver/customer and this table.",
            kinds={"pyspark", "delta"},
            automation_condition=CUSTOMER_AUTOMATION,
        ),
    ],
    group_name="silver",
    pool=CUSTOMER_POOL,
    check_specs=[
        dg.AssetCheckSpec("customer_schema", asset=CUSTOMER_KEY, blocking=True,
                          description="pandera: keys unique, required columns present, formats"),
        dg.AssetCheckSpec("reconciliation", asset=CUSTOMER_KEY, blocking=True,
                          description="live Ids in the bronze data the history merged = rows "
                                      "in silver + quarantine"),
        dg.AssetCheckSpec("quarantine_empty", asset=QUARANTINE_KEY),
    ],
)  # fmt: skip
def customer_current(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    if customers_not_landed(lakehouse.lake) is not None:
        yield from _before_the_export(context, lakehouse)
        return
    done = refresh_current(spark.spark_session, lakehouse.lake, config.full_refresh)
    if done.reason:
        context.log.info(f"silver/customer: full rebuild ({done.reason})")
    yield dg.MaterializeResult(
        asset_key=CUSTOMER_KEY, metadata=write_metadata(done.valid, **done.refresh_metadata())
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata=write_metadata(
            done.quarantine,
            refresh=done.refresh,
            failed_rules=dg.MetadataValue.json(done.failed_rules),
        ),
    )
    yield dg.AssetCheckResult(
        check_name="customer_schema",
        asset_key=CUSTOMER_KEY,
        passed=done.schema_ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failure_cases": dg.MetadataValue.md(done.failure_cases or "none"),
                  "rows_validated": done.rows_validated},
    )  # fmt: skip
    silver_rows, quarantined_rows = done.valid.table_rows, done.quarantine.table_rows
    yield _reconciliation(lakehouse, done.history_version, silver_rows, quarantined_rows)
    yield dg.AssetCheckResult(
        check_name="quarantine_empty",
        asset_key=QUARANTINE_KEY,
        passed=quarantined_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": quarantined_rows},
    )


def _before_the_export(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """No Synapse Link export yet: empty tables (customer360/silver/no_export.py), so identity
    and profile build from another CRM source alone, or build empty when none landed either.
    Never Dagster's skip: a "Materialize all" backfill fails when a targeted asset gets no
    status. The reason is in the log, the metadata and on every check."""
    sources = [m.source for m in unify_config().csv_sources
               if lakehouse.exists(*crm_bronze_key(m.source).path)]  # fmt: skip
    reason = no_export_reason(sources)
    context.log.info(f"silver/customer skipped: {reason}")
    valid, quarantine = empty_current(lakehouse.lake)
    for key, result in ((CUSTOMER_KEY, valid), (QUARANTINE_KEY, quarantine)):
        yield dg.MaterializeResult(asset_key=key,
                                   metadata=write_metadata(result, skipped=reason))  # fmt: skip
    for check, key in (("customer_schema", CUSTOMER_KEY), ("reconciliation", CUSTOMER_KEY),
                       ("quarantine_empty", QUARANTINE_KEY)):  # fmt: skip
        yield dg.AssetCheckResult(check_name=check, asset_key=key, passed=True,
                                  metadata={"skipped": reason})  # fmt: skip


def _reconciliation(
    lakehouse: LakehouseResource, history_version: int, silver_rows: int, quarantined_rows: int
) -> dg.AssetCheckResult:
    """Compared with the bronze partitions the history merged, at the versions it read them (not
    with everything in bronze now): a folder landing meanwhile cannot fail it."""
    merged = merged_live_ids(lakehouse.lake, history_version)
    return dg.AssetCheckResult(
        check_name="reconciliation",
        asset_key=CUSTOMER_KEY,
        passed=merged.live_ids == silver_rows + quarantined_rows,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"bronze_live_ids": merged.live_ids, "silver_rows": silver_rows,
                  "quarantined_rows": quarantined_rows,
                  "history_version": history_version, "compared_with": merged.basis,
                  "bronze_partitions": merged.partitions if merged.partitions is not None else -1,
                  "partitions_reingested_since_merge": merged.reread_partitions},
    )  # fmt: skip


@dg.asset(
    key=FINANCE_KEY,
    group_name="silver",
    kinds={"pyspark", "delta"},
    deps=[dg.AssetKey(["bronze", "customer_finance"]), CUSTOMER_KEY],
    automation_condition=EAGER,
    pool="silver_finance",
    description="Customer finance, typed, one row per customer and month (latest drop wins; a "
    "file without months counts for the month it was dropped). Rebuilt when bronze finance "
    "changed; otherwise only its checks run again. Optional: before any finance drop it is "
    "skipped (metadata `skipped`, no table) and the profile's finance measures are null.",
    check_specs=[
        dg.AssetCheckSpec("one_row_per_customer_month", asset=FINANCE_KEY, blocking=True),
        dg.AssetCheckSpec("customers_exist", asset=FINANCE_KEY,
                          description="referential integrity: every cid is a silver customer"),
    ],
)  # fmt: skip
def customer_finance_silver(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
) -> dg.MaterializeResult:
    if not finance_landed(lakehouse.lake):
        return _finance_not_landed(context)
    done = refresh_finance(lambda: spark.spark_session, lakehouse.lake, config.full_refresh)
    orphans = orphan_customers(lakehouse.lake)
    reason = {"full_refresh_reason": done.reason} if done.reason else {}
    return dg.MaterializeResult(
        metadata=write_metadata(
            done.result, customers=orphans.customers, refresh=done.refresh, **reason
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="one_row_per_customer_month", passed=done.duplicate_keys == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"duplicate_keys": done.duplicate_keys},
            ),
            _customers_exist(lakehouse, orphans.count, orphans.sample),
        ],
    )  # fmt: skip


def _customers_exist(lakehouse: LakehouseResource, count: int, sample: list) -> dg.AssetCheckResult:
    """Before the first export every finance customer is an orphan: nothing to compare with
    yet, so the check is skipped with that reason (the orphans still counted)."""
    metadata = {"orphan_customers": count, "orphan_sample": dg.MetadataValue.json(sample)}
    not_landed = customers_not_landed(lakehouse.lake)
    if not_landed is not None:
        metadata["skipped"] = not_landed
    return dg.AssetCheckResult(
        check_name="customers_exist", passed=count == 0 or not_landed is not None,
        severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
    )  # fmt: skip


def _finance_not_landed(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Nothing to build yet, which is not a failure: say so where people look (the
    materialisation's metadata, the checks' metadata, the log); no table is written."""
    context.log.info(f"silver/customer_finance skipped: {NOT_LANDED}")
    skipped = {"skipped": NOT_LANDED}
    return dg.MaterializeResult(
        metadata={**skipped, "dagster/row_count": 0},
        check_results=[
            dg.AssetCheckResult(check_name=name, passed=True, metadata=skipped)
            for name in ("one_row_per_customer_month", "customers_exist")
        ],
    )
