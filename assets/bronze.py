"""Bronze: landing files → append-only Delta tables, one partition per export folder or file drop.

These assets only declare and report; customer360/bronze/ does the work (no Spark, no JVM). Each
partition is a predicate overwrite of exactly that partition, so a retried or re-run partition
converges (exactly-once per partition).
"""

import os
from dataclasses import dataclass

import dagster as dg

from assets.partitions import dataverse_exports, finance_drops
from customer360.bronze.ingest import MissingPartition, ingest_dataverse, ingest_drop_days
from customer360.transforms.finance import BRONZE_SCHEMA, parse_finance_csv
from resources.lakehouse import LakehouseResource, bronze_result
from resources.landing import LandingZoneResource


@dataclass(frozen=True)
class DataverseTable:
    """A Dataverse table exported by Synapse Link and ingested to bronze."""

    name: str
    description: str = ""


def configured_tables() -> list[DataverseTable]:
    """`C360_DATAVERSE_TABLES` (comma-separated logical names), default the sample's table."""
    names = os.environ.get("C360_DATAVERSE_TABLES", "crc33_customer")
    return [DataverseTable(n.strip()) for n in names.split(",") if n.strip()]


def build_dataverse_bronze_asset(table: DataverseTable) -> dg.AssetsDefinition:
    key = dg.AssetKey(["bronze", table.name])

    @dg.asset(
        key=key,
        group_name="bronze",
        kinds={"delta", "csv"},
        partitions_def=dataverse_exports,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=table.description
        or f"Dataverse table {table.name} as Synapse Link exported it: every appended version and "
        "IsDelete row, plus ingestion columns (source file, line, export folder, ingested at).",
        check_specs=[dg.AssetCheckSpec("no_rejected_rows", asset=key)],
        pool="delta_bronze",
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        landing: LandingZoneResource,
        lakehouse: LakehouseResource,
    ) -> dg.MaterializeResult:
        try:
            done = ingest_dataverse(
                lakehouse.lake, landing, table.name, context.partition_keys, context.log.info
            )
        except MissingPartition as exc:
            raise dg.Failure(str(exc)) from exc
        if done.failed:  # the other partitions of this run are written
            raise dg.Failure(
                f"bronze/{table.name}: {len(done.failed)} partition(s) could not be read",
                metadata={key: dg.MetadataValue.text(why) for key, why in done.failed.items()},
            )
        if done.result is None:
            raise dg.Failure(f"nothing to ingest for {table.name} in {context.partition_keys}")
        return bronze_result(lakehouse, done)

    return _bronze


dataverse_bronze_assets = [build_dataverse_bronze_asset(t) for t in configured_tables()]


@dg.asset(
    key=["bronze", "customer_finance"],
    group_name="bronze",
    kinds={"delta", "csv"},
    partitions_def=finance_drops,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Customer finance CSV files dropped in landing/finance/ (cid with spend, and "
    "optionally month and income), typed; one partition per drop day.",
    check_specs=[dg.AssetCheckSpec("no_rejected_rows", asset=["bronze", "customer_finance"])],
    pool="delta_bronze",
)
def customer_finance_bronze(
    context: dg.AssetExecutionContext,
    landing: LandingZoneResource,
    lakehouse: LakehouseResource,
) -> dg.MaterializeResult:
    done = ingest_drop_days(
        lakehouse.lake, landing, "finance", "customer_finance", parse_finance_csv, BRONZE_SCHEMA,
        context.partition_keys, context.log.info,
        once_per_content=True,
    )  # fmt: skip
    return bronze_result(lakehouse, done)
