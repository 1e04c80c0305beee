"""Ingest landing partitions into bronze: Synapse Link export folders and CSV drop days."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from customer360.bronze.rejected import write_rejected
from customer360.lakehouse import DeltaLake, WriteResult
from customer360.synapse_link import (
    ExportFolder,
    LandingFileSystem,
    RejectedRow,
    arrow_schema,
    list_export_folders,
    read_entity,
)
from customer360.tables import PARTITION_COLUMN

Log = Callable[[str], None]
Parse = Callable[[bytes, str], tuple[pa.Table, list[RejectedRow]]]


class MissingPartition(LookupError):
    """A partition whose landing data is not (or not yet completely) there."""


class DroppedFile(Protocol):
    path: str

    @property
    def drop_day(self) -> str: ...


class Landing(Protocol):
    """What ingestion needs of a landing zone (resources/landing.py provides it)."""

    def filesystem(self, area: str) -> LandingFileSystem: ...

    def list_files(self, area: str, suffix: str = "") -> Sequence[DroppedFile]: ...

    def read_bytes(self, area: str, path: str) -> bytes: ...


@dataclass(frozen=True)
class Ingested:
    """What one bronze run wrote: the last write (for the table's metadata) and the counts."""

    result: WriteResult | None
    rows: int
    rejected: int


def is_day_key(key: str) -> bool:
    return len(key) == 10 and key[4] == "-" and "T" not in key


def read_dataverse_partition(
    fs: LandingFileSystem, table: str, key: str
) -> tuple[pa.Table, list[RejectedRow]]:
    """The rows of one partition: a whole incremental folder, or one day of the root layout."""
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
        raise MissingPartition(f"export folder {key!r} is not (or not yet completely) in landing")
    if table not in folder.entities:
        return _empty_for(folders, table), []
    result = read_entity(fs, folder, table)
    return result.table, result.rejected


def ingest_dataverse(
    lake: DeltaLake, landing: Landing, table: str, partitions: Sequence[str], log: Log
) -> Ingested:
    """Each export partition of `table` replaces its rows in bronze/<table>."""
    ingested_at = datetime.now(UTC)
    fs = landing.filesystem("dataverse")
    rows = rejected = 0
    result = None
    for partition in partitions:
        data, bad = read_dataverse_partition(fs, table, partition)
        if data.num_columns == 0:
            log(f"{partition}: no export of {table} yet")
            continue
        result = lake.replace_where(
            _stamp(data, {PARTITION_COLUMN: partition}, ingested_at),
            "bronze",
            table,
            {PARTITION_COLUMN: partition},
            partition_by=[PARTITION_COLUMN],
        )
        rejected += write_rejected(lake, table, partition, bad, ingested_at)
        rows += data.num_rows
        log(f"{table} {partition}: {data.num_rows} rows, {len(bad)} rejected")
    return Ingested(result, rows, rejected)


def ingest_drop_days(
    lake: DeltaLake,
    landing: Landing,
    area: str,
    table: str,
    parse: Parse,
    empty: pa.Schema,
    days: Sequence[str],
    log: Log,
) -> Ingested:
    """CSV files dropped in landing/<area>/: one partition per drop day; each day's files are
    parsed with `parse(data, path)` and replace that day's rows (a re-run converges)."""
    ingested_at = datetime.now(UTC)
    files = landing.list_files(area, suffix=".csv")
    rows = rejected = 0
    result = None
    for day in days:
        parts, bad = [empty.empty_table()], []
        for f in (f for f in files if f.drop_day == day):
            data, rejects = parse(landing.read_bytes(area, f.path), f.path)
            parts.append(data)
            bad += rejects
        data = _stamp(pa.concat_tables(parts), {"_drop_day": day}, ingested_at, first=True)
        result = lake.replace_where(
            data, "bronze", table, {"_drop_day": day}, partition_by=["_drop_day"]
        )
        rejected += write_rejected(lake, table, day, bad, ingested_at)
        rows += data.num_rows
        log(f"{table} {day}: {data.num_rows} rows, {len(bad)} rejected")
    return Ingested(result, rows, rejected)


def _stamp(
    data: pa.Table, partition: dict[str, str], ingested_at: datetime, first: bool = False
) -> pa.Table:
    """Add the ingestion time and the partition column (before or after the time)."""
    n = data.num_rows
    ((name, value),) = partition.items()
    column = pa.array([value] * n, pa.string())
    if first:
        data = data.append_column(name, column)
    data = data.append_column(
        "_ingested_at", pa.array([ingested_at] * n, pa.timestamp("us", "UTC"))
    )
    return data if first else data.append_column(name, column)


def _empty_for(folders: list[ExportFolder], table: str) -> pa.Table:
    for folder in reversed(folders):
        if table in folder.entities:
            return arrow_schema(
                folder.entities[table], include_ingestion_columns=True
            ).empty_table()
    return pa.table({})
