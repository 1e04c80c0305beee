"""Bronze: landing files → append-only Delta tables, one partition per export folder or file drop.

Bronze needs no Spark: files are parsed into Arrow and written with delta-rs, so ingest never
starts a JVM. Each partition is written with a predicate overwrite of exactly that partition, so a
retried or re-run partition converges (exactly-once per partition).
"""

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from customer360.lakehouse import WriteResult
from customer360.partitions import dataverse_exports, finance_drops
from customer360.synapse_link import (
    ExportFolder,
    RejectedRow,
    list_export_folders,
    read_entity,
)
from customer360.transforms.finance import BRONZE_SCHEMA, parse_finance_csv
from resources.lakehouse import LakehouseResource, write_metadata
from resources.landing import LandingZoneResource

PARTITION_COLUMN = "_partition"
REJECTED_TABLE = "_rejected"
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source_table", pa.string()),
        pa.field("partition", pa.string()),
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class DataverseTable:
    """A Dataverse table exported by Synapse Link and ingested to bronze."""

    name: str
    description: str = ""


def configured_tables() -> list[DataverseTable]:
    """`C360_DATAVERSE_TABLES` (comma-separated logical names), default the sample's table."""
    names = os.environ.get("C360_DATAVERSE_TABLES", "crc33_customer")
    return [DataverseTable(n.strip()) for n in names.split(",") if n.strip()]


def is_day_key(key: str) -> bool:
    return len(key) == 10 and key[4] == "-" and "T" not in key


def _write_rejected(
    lakehouse: LakehouseResource,
    table: str,
    partition: str,
    rejected: Iterable[RejectedRow],
    ingested_at: datetime,
) -> int:
    rows = [
        {
            "source_table": table,
            "partition": partition,
            "file": r.file,
            "line": r.line,
            "raw": r.raw,
            "reason": r.reason,
            "ingested_at": ingested_at,
        }
        for r in rejected
    ]
    data = pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA)
    lakehouse.lake.replace_where(
        data, "bronze", REJECTED_TABLE, {"source_table": table, "partition": partition}
    )
    return len(rows)


def _stamp(data: pa.Table, partition: str, ingested_at: datetime) -> pa.Table:
    n = data.num_rows
    data = data.append_column(
        "_ingested_at", pa.array([ingested_at] * n, pa.timestamp("us", "UTC"))
    )
    return data.append_column(PARTITION_COLUMN, pa.array([partition] * n, pa.string()))


def read_dataverse_partition(
    landing: LandingZoneResource, table: str, key: str
) -> tuple[pa.Table, list[RejectedRow]]:
    """The rows of one partition: a whole incremental folder, or one day of the root layout."""
    fs = landing.filesystem("dataverse")
    folders = list_export_folders(fs)
    if is_day_key(key):
        root = next((f for f in folders if f.name == ""), None)
        if root is None or table not in root.entities:
            return _empty_for(folders, table), []
        result = read_entity(fs, root, table)
        days = pc.strftime(result.table["SinkModifiedOn"], format="%Y-%m-%d")
        return result.table.filter(pc.equal(days, key)), result.rejected
    folder = next((f for f in folders if f.name == key), None)
    if folder is None:
        raise dg.Failure(f"export folder {key!r} is not (or not yet completely) in landing")
    if table not in folder.entities:
        return _empty_for(folders, table), []
    result = read_entity(fs, folder, table)
    return result.table, result.rejected


def _empty_for(folders: list[ExportFolder], table: str) -> pa.Table:
    from customer360.synapse_link import arrow_schema

    for folder in reversed(folders):
        if table in folder.entities:
            return arrow_schema(
                folder.entities[table], include_ingestion_columns=True
            ).empty_table()
    return pa.table({})


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
        ingested_at = datetime.now(UTC)
        rows = rejected = 0
        result = None
        for partition in context.partition_keys:
            data, bad = read_dataverse_partition(landing, table.name, partition)
            if data.num_columns == 0:
                context.log.warning(f"{partition}: no export of {table.name} yet")
                continue
            result = lakehouse.lake.replace_where(
                _stamp(data, partition, ingested_at),
                "bronze",
                table.name,
                {PARTITION_COLUMN: partition},
                partition_by=[PARTITION_COLUMN],
            )
            rejected += _write_rejected(lakehouse, table.name, partition, bad, ingested_at)
            rows += data.num_rows
            context.log.info(f"{table.name} {partition}: {data.num_rows} rows, {len(bad)} rejected")
        if result is None:
            raise dg.Failure(f"nothing to ingest for {table.name} in {context.partition_keys}")
        return bronze_result(lakehouse, result, rows, rejected)

    return _bronze


dataverse_bronze_assets = [build_dataverse_bronze_asset(t) for t in configured_tables()]


def ingest_file_drops(
    context: dg.AssetExecutionContext,
    landing: LandingZoneResource,
    lakehouse: LakehouseResource,
    area: str,
    table: str,
    parse: Callable[[bytes, str], tuple[pa.Table, list[RejectedRow]]],
    empty: pa.Schema,
) -> dg.MaterializeResult:
    """Bronze for CSV files dropped in landing/<area>/: one partition per drop day; each day's
    files are parsed with `parse(data, path)` and replace that day's rows (a re-run converges);
    rejected rows go to bronze/_rejected with file, line and reason."""
    ingested_at = datetime.now(UTC)
    files = landing.list_files(area, suffix=".csv")
    rows = rejected = 0
    result = None
    for day in context.partition_keys:
        parts, bad = [empty.empty_table()], []
        for f in (f for f in files if f.drop_day == day):
            data, rejects = parse(landing.read_bytes(area, f.path), f.path)
            parts.append(data)
            bad += rejects
        data = pa.concat_tables(parts)
        data = data.append_column("_drop_day", pa.array([day] * data.num_rows, pa.string()))
        data = data.append_column(
            "_ingested_at", pa.array([ingested_at] * data.num_rows, pa.timestamp("us", "UTC"))
        )
        result = lakehouse.lake.replace_where(
            data, "bronze", table, {"_drop_day": day}, partition_by=["_drop_day"]
        )
        rejected += _write_rejected(lakehouse, table, day, bad, ingested_at)
        rows += data.num_rows
        context.log.info(f"{table} {day}: {data.num_rows} rows, {len(bad)} rejected")
    return bronze_result(lakehouse, result, rows, rejected)


def bronze_result(
    lakehouse: LakehouseResource, result: WriteResult, rows: int, rejected: int
) -> dg.MaterializeResult:
    """What every bronze asset reports: the write, its rejected rows and the WARN check."""
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            rows_written=rows,
            rejected_rows=rejected,
            rejected_table=dg.MetadataValue.path(lakehouse.uri("bronze", REJECTED_TABLE)),
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="no_rejected_rows",
                passed=rejected == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rejected_rows": rejected},
            )
        ],
    )


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
    return ingest_file_drops(
        context, landing, lakehouse, "finance", "customer_finance", parse_finance_csv, BRONZE_SCHEMA
    )
