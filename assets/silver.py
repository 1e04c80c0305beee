"""Silver: clean names and values, history (SCD2) maintained by merge, current state, finance."""

import dagster as dg
import pandera.pandas as pa_schema
from pyspark.sql import functions as F

from assets.bronze import PARTITION_COLUMN
from customer360.partitions import dataverse_exports
from customer360.transforms.customer import (
    EMAIL_PATTERN,
    split_valid,
    standardize_customers,
)
from customer360.transforms.dataverse import (
    as_versions,
    current_state,
    history_chains,
    live_ids,
    strip_prefix,
)
from customer360.transforms.finance import monthly_finance
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

CUSTOMER_TABLE = "crc33_customer"
PUBLISHER_PREFIX = "crc33_"
HISTORY_KEY = dg.AssetKey(["silver", "customer_history"])
CUSTOMER_KEY = dg.AssetKey(["silver", "customer"])
QUARANTINE_KEY = dg.AssetKey(["silver", "customer_quarantine"])
FINANCE_KEY = dg.AssetKey(["silver", "customer_finance"])
EAGER = dg.AutomationCondition.eager()

# Ingestion bookkeeping that stays in bronze.
_BRONZE_ONLY = (PARTITION_COLUMN, "_ingested_at", "IsDelete", "SinkCreatedOn")


def _clean_versions(bronze_rows):
    cleaned = standardize_customers(strip_prefix(bronze_rows, PUBLISHER_PREFIX))
    return as_versions(cleaned).drop(*_BRONZE_ONLY)


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
    pool="delta_silver",
)
def customer_history(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    session = spark.spark_session
    changes = _clean_versions(
        lakehouse.read(
            session, "bronze", CUSTOMER_TABLE, partitions={PARTITION_COLUMN: context.partition_keys}
        )
    )
    if lakehouse.exists("silver", "customer_history"):
        touched = changes.select("Id").distinct()
        before = lakehouse.read(session, "silver", "customer_history").join(
            touched, "Id", "left_semi"
        )
        changes = before.drop("valid_to", "is_current").unionByName(
            changes, allowMissingColumns=True
        )
        changes = changes.dropDuplicates(["history_key"])
    chains = history_chains(changes)
    result = lakehouse.write(
        chains, "silver", "customer_history", mode="merge", merge_keys=["history_key"]
    )
    return dg.MaterializeResult(
        metadata=write_metadata(result, versions_merged=result.rows_written)
    )


CUSTOMER_SCHEMA = pa_schema.DataFrameSchema(
    {
        "Id": pa_schema.Column(str, unique=True, nullable=False),
        "cid": pa_schema.Column("int64", nullable=False, unique=True),
        "email": pa_schema.Column(str, pa_schema.Check.str_matches(EMAIL_PATTERN)),
        "gender": pa_schema.Column(
            str, pa_schema.Check.isin(["female", "male", "non_binary", "other"]), nullable=True
        ),
        "country_code": pa_schema.Column(str, pa_schema.Check.str_length(2, 2), nullable=True),
        "postcode": pa_schema.Column(str, nullable=True),
        "telephone_e164": pa_schema.Column(
            str, pa_schema.Check.str_matches(r"^\+[1-9][0-9]{6,14}$"), nullable=True
        ),
    },
    strict=False,
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CUSTOMER_KEY,
            deps=[HISTORY_KEY],
            description="Current state per Id: latest version, deletes removed (a re-create "
            "revives), publisher prefix stripped, values standardised and validated.",
            kinds={"pyspark", "delta"},
            automation_condition=EAGER,
        ),
        dg.AssetSpec(
            QUARANTINE_KEY,
            deps=[HISTORY_KEY],
            description="Current customers that fail validation, with the rules they break "
            "(failed_rules); nothing is lost between silver/customer and this table.",
            kinds={"pyspark", "delta"},
            automation_condition=EAGER,
        ),
    ],
    group_name="silver",
    check_specs=[
        dg.AssetCheckSpec("customer_schema", asset=CUSTOMER_KEY, blocking=True,
                          description="pandera: keys unique, required columns present, formats"),
        dg.AssetCheckSpec("reconciliation", asset=CUSTOMER_KEY, blocking=True,
                          description="live Ids in bronze = rows in silver + quarantine"),
        dg.AssetCheckSpec("quarantine_empty", asset=QUARANTINE_KEY),
    ],
)  # fmt: skip
def customer_current(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
):
    session = spark.spark_session
    history = lakehouse.read(session, "silver", "customer_history")
    current = current_state(history).cache()
    valid, quarantined = split_valid(current)
    valid_result = lakehouse.write(valid, "silver", "customer")
    quarantine_result = lakehouse.write(quarantined, "silver", "customer_quarantine")
    current.unpersist()
    yield dg.MaterializeResult(asset_key=CUSTOMER_KEY, metadata=write_metadata(valid_result))
    rules = (
        lakehouse.read(session, "silver", "customer_quarantine")
        .select(F.explode("failed_rules").alias("rule"))
        .groupBy("rule")
        .count()
        .collect()
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata=write_metadata(
            quarantine_result,
            failed_rules=dg.MetadataValue.json({r.rule: r["count"] for r in rules}),
        ),
    )

    table = lakehouse.read_arrow("silver", "customer").to_pandas()
    try:
        CUSTOMER_SCHEMA.validate(table, lazy=True)
        schema_ok, failures = True, ""
    except pa_schema.errors.SchemaErrors as exc:
        schema_ok = False
        failures = exc.failure_cases.head(20).to_markdown()
    yield dg.AssetCheckResult(
        check_name="customer_schema",
        asset_key=CUSTOMER_KEY,
        passed=schema_ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failure_cases": dg.MetadataValue.md(failures or "none")},
    )

    bronze_live = live_ids(lakehouse.read(session, "bronze", CUSTOMER_TABLE)).count()
    silver_rows, quarantined_rows = valid_result.table_rows, quarantine_result.table_rows
    yield dg.AssetCheckResult(
        check_name="reconciliation",
        asset_key=CUSTOMER_KEY,
        passed=bronze_live == silver_rows + quarantined_rows,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"bronze_live_ids": bronze_live, "silver_rows": silver_rows,
                  "quarantined_rows": quarantined_rows},
    )  # fmt: skip
    yield dg.AssetCheckResult(
        check_name="quarantine_empty",
        asset_key=QUARANTINE_KEY,
        passed=quarantined_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": quarantined_rows},
    )


@dg.asset(
    key=FINANCE_KEY,
    group_name="silver",
    kinds={"pyspark", "delta"},
    deps=[dg.AssetKey(["bronze", "customer_finance"]), CUSTOMER_KEY],
    automation_condition=EAGER,
    description="Customer finance, typed, one row per customer and month (latest drop wins; a "
    "file without months counts for the month it was dropped).",
    check_specs=[
        dg.AssetCheckSpec("one_row_per_customer_month", asset=FINANCE_KEY, blocking=True),
        dg.AssetCheckSpec("customers_exist", asset=FINANCE_KEY,
                          description="referential integrity: every cid is a silver customer"),
    ],
)  # fmt: skip
def customer_finance_silver(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    session = spark.spark_session
    monthly = monthly_finance(lakehouse.read(session, "bronze", "customer_finance"))
    result = lakehouse.write(monthly, "silver", "customer_finance")
    written = lakehouse.read(session, "silver", "customer_finance").cache()
    duplicates = written.groupBy("cid", "month").count().filter("count > 1").count()
    customers = lakehouse.read(session, "silver", "customer", columns=["cid"])
    orphans = written.join(customers, "cid", "left_anti").select("cid").distinct()
    orphan_count = orphans.count()
    sample = [r.cid for r in orphans.orderBy("cid").limit(20).collect()]
    written.unpersist()
    return dg.MaterializeResult(
        metadata=write_metadata(result, customers=customers.count()),
        check_results=[
            dg.AssetCheckResult(
                check_name="one_row_per_customer_month", passed=duplicates == 0,
                severity=dg.AssetCheckSeverity.ERROR, metadata={"duplicate_keys": duplicates},
            ),
            dg.AssetCheckResult(
                check_name="customers_exist", passed=orphan_count == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"orphan_customers": orphan_count,
                          "orphan_sample": dg.MetadataValue.json(sample)},
            ),
        ],
    )  # fmt: skip
