"""Ingest landing partitions into bronze: Synapse Link export folders and CSV drop days.

Isolation: one bad export folder (an invalid model.json) fails its own partition, the others are
written; one file of a folder or drop day that cannot be read (or, for a drop day, parsed) is set
aside whole (a reject at line 0 with its reason, and a note), the other files are written.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from customer360.bronze.drops import day_files, ingested_hashes
from customer360.bronze.max_length import MAX_LENGTH_COLUMN, max_length_violations
from customer360.bronze.rejected import write_rejected
from customer360.lakehouse import DeltaLake, WriteResult
from customer360.synapse_link import (
    EntityModel,
    ExportFolder,
    LandingFileSystem,
    ReadResult,
    RejectedRow,
    SynapseLinkFormatError,
    arrow_schema,
    list_export_folders,
    read_entity,
)
from customer360.tables import PARTITION_COLUMN

Log = Callable[[str], None]
Parse = Callable[[bytes, str], tuple[pa.Table, list[RejectedRow]]]
# A version of a record: Synapse Link may write it twice (retries); bronze keeps it once.
VERSION_KEY = ("Id", "versionnumber", "SinkModifiedOn")


class MissingPartition(LookupError):
    """A partition whose landing data is not (or not yet completely) there."""


class BadPartition(ValueError):
    """A partition that cannot be read (e.g. its folder's model.json is invalid)."""


class DroppedFile(Protocol):
    path: str

    @property
    def drop_day(self) -> str: ...


class Landing(Protocol):
    """What ingestion needs of a landing zone (resources/landing.py provides it)."""

    def filesystem(self, area: str) -> LandingFileSystem: ...

    def list_files(self, area: str, suffix: str = "") -> Sequence[DroppedFile]: ...

    def read_bytes(self, area: str, path: str) -> bytes: ...


@dataclass
class Ingested:
    """What one bronze run wrote: the last write (for the table's metadata) and the counts, and
    what it set aside: partitions that failed (key → reason), lines held back because their
    file is still being written, repeated versions dropped, files skipped or reported."""

    result: WriteResult | None
    rows: int
    rejected: int
    failed: dict[str, str] = field(default_factory=dict)
    held_back: int = 0
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)


def is_day_key(key: str) -> bool:
    return len(key) == 10 and key[4] == "-" and "T" not in key


def read_dataverse_partition(fs: LandingFileSystem, table: str, key: str) -> ReadResult:
    """The rows of one partition: a whole incremental folder, or one day of the root layout,
    with ``_max_length_exceeded`` (the model.json maxLength check) added."""
    folders = list_export_folders(fs)
    if is_day_key(key):
        root = next((f for f in folders if f.name == ""), None)
        if root is not None and root.error is not None:
            raise BadPartition(f"root layout cannot be read: {root.error}")
        if root is None or table not in root.entities:
            return ReadResult(_empty_for(folders, table))
        result = read_entity(fs, root, table)
        days = pc.strftime(result.table["SinkModifiedOn"], format="%Y-%m-%d")
        result.table = result.table.filter(pc.equal(days, key))
        return _checked(result, root.entities[table])
    folder = next((f for f in folders if f.name == key), None)
    if folder is None:
        raise MissingPartition(f"export folder {key!r} is not (or not yet completely) in landing")
    if folder.error is not None:
        raise BadPartition(f"export folder {key} cannot be read: {folder.error}")
    if table not in folder.entities:
        return ReadResult(_empty_for(folders, table))
    return _checked(read_entity(fs, folder, table), folder.entities[table])


def ingest_dataverse(
    lake: DeltaLake, landing: Landing, table: str, partitions: Sequence[str], log: Log
) -> Ingested:
    """Each export partition of `table` replaces its rows in bronze/<table>. A partition that
    cannot be read is recorded in `failed` and the others are still written."""
    ingested_at = datetime.now(UTC)
    fs = landing.filesystem("dataverse")
    done = Ingested(None, 0, 0)
    for partition in partitions:
        try:
            read = read_dataverse_partition(fs, table, partition)
        except (BadPartition, SynapseLinkFormatError) as exc:
            done.failed[partition] = str(exc)
            log(f"{table} {partition}: FAILED, {exc}")
            continue
        if read.table.num_columns == 0:
            log(f"{partition}: no export of {table} yet")
            continue
        data, duplicates = _one_row_per_version(read.table)
        done.result = lake.replace_where(
            _stamp(data, {PARTITION_COLUMN: partition}, ingested_at),
            "bronze",
            table,
            {PARTITION_COLUMN: partition},
            partition_by=[PARTITION_COLUMN],
        )
        rejected = [*read.files_set_aside, *read.rejected]
        done.rejected += write_rejected(lake, table, partition, rejected, ingested_at)
        done.rows += data.num_rows
        done.duplicates += duplicates
        done.held_back += len(read.held_back)
        done.notes += [f"{r.file}: {r.reason}" for r in read.files_set_aside]
        done.notes += [f"{r.file} line {r.line}: {r.reason}" for r in read.held_back]
        log(
            f"{table} {partition}: {data.num_rows} rows, {len(read.rejected)} rejected, "
            f"{len(read.files_set_aside)} files set aside, "
            f"{duplicates} repeated versions dropped, {len(read.held_back)} lines held back"
        )
    return done


def ingest_drop_days(
    lake: DeltaLake,
    landing: Landing,
    area: str,
    table: str,
    parse: Parse,
    empty: pa.Schema,
    days: Sequence[str],
    log: Log,
    *,
    once_per_content: bool = False,
) -> Ingested:
    """CSV files dropped in landing/<area>/: one partition per drop day; each day's files are
    parsed with `parse(data, path)` and replace that day's rows (a re-run converges). A file
    `parse` refuses (ValueError) is rejected whole; the day's other files are written.

    `once_per_content`: a file whose bytes were already ingested (same SHA-256, in bronze under
    another day or an earlier path) is skipped, so a re-sent file counts once; then
    the table's schema (`empty`) must have a `_content_hash` column (`customer360.bronze.drops`)."""
    ingested_at = datetime.now(UTC)
    files = landing.list_files(area, suffix=".csv")
    done = Ingested(None, 0, 0)
    for day in days:
        seen = ingested_hashes(lake, table, day) if once_per_content else None
        parts, bad, notes = day_files(landing, area, files, day, parse, seen)
        data = _stamp(pa.concat_tables([empty.empty_table(), *parts], promote_options="default"),
                      {"_drop_day": day}, ingested_at, first=True)  # fmt: skip
        done.result = lake.replace_where(
            data, "bronze", table, {"_drop_day": day}, partition_by=["_drop_day"]
        )
        done.rejected += write_rejected(lake, table, day, bad, ingested_at)
        done.rows += data.num_rows
        done.notes += notes
        log(f"{table} {day}: {data.num_rows} rows, {len(bad)} rejected" + "".join(
            f"; {note}" for note in notes))  # fmt: skip
    return done


def _checked(read: ReadResult, model: EntityModel) -> ReadResult:
    read.table = read.table.append_column(
        pa.field(MAX_LENGTH_COLUMN, pa.string()), max_length_violations(read.table, model)
    )
    return read


def _one_row_per_version(data: pa.Table) -> tuple[pa.Table, int]:
    """The first row (file order) of each (Id, versionnumber, SinkModifiedOn), and how many
    repeats were dropped: a record re-written by a retry, or read again from a grown file,
    arrives once."""
    if data.num_rows == 0 or not all(c in data.column_names for c in VERSION_KEY):
        return data, 0
    numbered = data.append_column("_row", pa.array(range(data.num_rows), pa.int64()))
    first = numbered.group_by(list(VERSION_KEY), use_threads=False).aggregate([("_row", "min")])
    if first.num_rows == data.num_rows:
        return data, 0
    keep = pc.sort_indices(first["_row_min"])
    rows = pc.take(first["_row_min"], keep)
    return data.take(rows), data.num_rows - first.num_rows


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
            schema = arrow_schema(folder.entities[table], include_ingestion_columns=True)
            return schema.append(pa.field(MAX_LENGTH_COLUMN, pa.string())).empty_table()
    return pa.table({})
