"""The one way the platform reads and writes Delta tables at `<lake root>/<layer>/<table>`.

Two physical paths, one format (see DESIGN.md "Spark and Delta"):
- arrow: the Spark DataFrame is collected to Arrow and written with delta-rs `write_deltalake`
  (small data; also the only path for merge, which runs in delta-rs's merge engine);
- distributed: executors write Parquet under the table root and the driver commits the files with
  `create_write_transaction`; reads hand the snapshot's file list to `spark.read.parquet`.
Both produce identical tables; `WritePath.AUTO` picks by estimated size.

Concurrent writers: a write that passes `read_version` (the version its data was computed from,
or `NEW_TABLE` when it saw no table) commits directly on that version or not at all — any commit
by someone else in between raises `WriteConflict` and nothing is written, so the caller re-reads
and recomputes (optimistic concurrency; docs/medallion.md "Concurrent runs").
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, Transaction

from customer360.lakehouse import files
from customer360.lakehouse.arrow_sql import sql_text
from customer360.lakehouse.schema import (
    SchemaMismatchError,
    check_compatible,
    conform_to_table,
    delta_schema_to_arrow,
    normalize_arrow_table,
)
from customer360.lakehouse.spark_arrow import (
    arrow_schema_to_spark,
    estimated_size_bytes,
    is_local_master,
    spark_schema_to_arrow,
    spark_to_arrow,
    utc_timestamps,
)

log = logging.getLogger(__name__)

#: Above this estimated size a write or read takes the distributed path.
DEFAULT_DISTRIBUTED_THRESHOLD_BYTES = 256 * 1024 * 1024
#: `read_version` of a writer that found no table: it must create it, or conflict.
NEW_TABLE = -1


class WriteConflict(Exception):
    """Another writer committed to the table after the version this write was computed from;
    nothing was written. Re-read and try again (customer360.lakehouse.incremental.on_conflict)."""


class WriteMode(StrEnum):
    OVERWRITE = "overwrite"
    APPEND = "append"
    REPLACE_PARTITIONS = "replace_partitions"
    MERGE = "merge"


class WritePath(StrEnum):
    AUTO = "auto"
    ARROW = "arrow"
    DISTRIBUTED = "distributed"


@dataclass(frozen=True)
class WriteResult:
    """What a write did; `metadata()` turns it into Dagster-ready plain values."""

    uri: str
    version: int
    rows_written: int
    table_rows: int
    schema: pa.Schema
    partition_by: tuple[str, ...] = ()
    partition_row_counts: dict[str, int] = field(default_factory=dict)
    path: WritePath = WritePath.ARROW
    skipped: bool = False  # True when an exactly-once append had already been committed


def partition_key(values: Mapping[str, Any], partition_by: Sequence[str]) -> str:
    """A readable name for one partition, e.g. `day=2024-01-01` or `a=1/b=x`."""
    return "/".join(f"{c}={values[c]}" for c in partition_by)


class DeltaLake:
    """Delta tables under one root URI (a local folder or `abfss://…`)."""

    def __init__(
        self,
        root: str,
        storage_options: Mapping[str, str] | None = None,
        distributed_threshold_bytes: int = DEFAULT_DISTRIBUTED_THRESHOLD_BYTES,
    ) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {}) or None
        self.distributed_threshold_bytes = distributed_threshold_bytes

    # ------------------------------------------------------------------ lookup
    def uri(self, layer: str, table: str) -> str:
        return f"{self.root}/{layer}/{table}"

    def exists(self, layer: str, table: str) -> bool:
        return DeltaTable.is_deltatable(self.uri(layer, table), self.storage_options)

    def table(self, layer: str, table: str, version: int | None = None) -> DeltaTable:
        uri = self.uri(layer, table)
        try:
            return DeltaTable(uri, version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            raise FileNotFoundError(f"no Delta table at {uri}") from None

    def _existing(self, uri: str) -> DeltaTable | None:
        try:
            return DeltaTable(uri, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def _pinned(self, uri: str, read_version: int | None) -> DeltaTable | None:
        """The snapshot a pinned write commits through: the latest version when unpinned, None
        when the writer saw no table (and there still is none)."""
        if read_version is None:
            return self._existing(uri)
        if read_version == NEW_TABLE:
            if self._existing(uri) is not None:
                raise WriteConflict(f"{uri} was created by another writer meanwhile")
            return None
        return DeltaTable(uri, version=read_version, storage_options=self.storage_options)

    # ------------------------------------------------------------------ writes
    def write(
        self,
        df,
        layer: str,
        table: str,
        *,
        mode: WriteMode | str = WriteMode.OVERWRITE,
        partition_by: Sequence[str] | None = None,
        merge_keys: Sequence[str] | None = None,
        path: WritePath | str = WritePath.AUTO,
        writer_id: str | None = None,
        batch_id: str | None = None,
        description: str | None = None,
        read_version: int | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Write a Spark DataFrame. See the module docstring for the two paths.

        `writer_id` + `batch_id` make an append exactly-once: a retry of a committed batch adds
        nothing (Delta app transactions). `read_version`: commit on exactly that version (or
        create the table, `NEW_TABLE`), else `WriteConflict`. `commit_metadata`: recorded in the
        data commit's commitInfo (atomically with the rows; arrow path only).
        """
        mode, path = WriteMode(mode), WritePath(path)
        if mode is WriteMode.MERGE or path is WritePath.ARROW:
            chosen = WritePath.ARROW
        elif path is WritePath.DISTRIBUTED:
            chosen = WritePath.DISTRIBUTED
        else:
            chosen = self._choose_path(df)
        if chosen is WritePath.ARROW:
            return self.write_arrow(
                spark_to_arrow(df),
                layer,
                table,
                mode=mode,
                partition_by=partition_by,
                merge_keys=merge_keys,
                writer_id=writer_id,
                batch_id=batch_id,
                description=description,
                read_version=read_version,
                commit_metadata=commit_metadata,
            )
        if commit_metadata:
            raise ValueError("commit_metadata needs the arrow path (merge or path='arrow')")
        return self._write_distributed(
            utc_timestamps(df),
            layer,
            table,
            mode,
            tuple(partition_by or ()),
            writer_id,
            batch_id,
            read_version,
        )

    def _choose_path(self, df) -> WritePath:
        if not is_local_master(df.sparkSession):
            return WritePath.DISTRIBUTED
        size = estimated_size_bytes(df)
        if size is None or size > self.distributed_threshold_bytes:
            return WritePath.DISTRIBUTED
        return WritePath.ARROW

    def write_arrow(
        self,
        data: pa.Table,
        layer: str,
        table: str,
        *,
        mode: WriteMode | str = WriteMode.OVERWRITE,
        partition_by: Sequence[str] | None = None,
        merge_keys: Sequence[str] | None = None,
        writer_id: str | None = None,
        batch_id: str | None = None,
        description: str | None = None,
        read_version: int | None = None,
        commit_metadata: Mapping[str, str] | None = None,
        writer_properties: WriterProperties | None = None,
    ) -> WriteResult:
        """Write an Arrow table with delta-rs (also used by assets that never start Spark).
        `read_version` and `commit_metadata` as in `write`; `writer_properties`: the Parquet
        encoding of an append or overwrite (delta-rs defaults when None)."""
        uri = self.uri(layer, table)
        with conflicts_raised(uri, read_version):
            return self._write_arrow(
                data, uri, WriteMode(mode), tuple(partition_by or ()), merge_keys,
                _app_id(writer_id, batch_id), description, read_version, commit_metadata,
                writer_properties,
            )  # fmt: skip

    def _write_arrow(
        self,
        data: pa.Table,
        uri: str,
        mode: WriteMode,
        partition_by: tuple[str, ...],
        merge_keys: Sequence[str] | None,
        app_id: str | None,
        description: str | None,
        read_version: int | None,
        commit_metadata: Mapping[str, str] | None = None,
        writer_properties: WriterProperties | None = None,
    ) -> WriteResult:
        data = normalize_arrow_table(data)
        existing = self._pinned(uri, read_version)
        # A pinned write commits through the snapshot it read (delta-rs then refuses to commit
        # on top of anyone else's commit); an unpinned one through the latest version.
        target = existing if read_version is not None and existing is not None else uri
        create_mode = "error" if read_version is not None else "overwrite"
        schema_mode = None
        if existing is not None:
            _check_partitioning(uri, existing, partition_by)
            table_schema = delta_schema_to_arrow(existing.schema())
            new_columns = check_compatible(uri, table_schema, data.schema)
            schema_mode = "merge" if new_columns else None
            data = conform_to_table(data, table_schema)
        if app_id and existing is not None and existing.transaction_version(app_id) is not None:
            log.info("%s: batch %s already committed; nothing written", uri, app_id)
            return self._result(uri, 0, data.schema, partition_by, {}, WritePath.ARROW, True)
        commit = _commit_properties(app_id, mode, read_version is not None, commit_metadata)

        if mode is WriteMode.MERGE:
            self._merge_arrow(data, uri, existing, merge_keys, schema_mode, commit,
                              create_mode, partition_by, description)  # fmt: skip
        elif mode is WriteMode.REPLACE_PARTITIONS:
            if not partition_by:
                raise ValueError(f"replace_partitions into {uri} needs partition_by")
            present = _distinct_partitions(data, partition_by)
            if not present:
                if existing is None:  # nothing to replace, but the table should exist
                    write_deltalake(uri, data, mode="overwrite", partition_by=list(partition_by),
                                    storage_options=self.storage_options)  # fmt: skip
                return self._result(uri, 0, data.schema, partition_by, {}, WritePath.ARROW)
            predicate = None if existing is None else _partition_predicate(present, data.schema)
            write_deltalake(
                target, data, mode="overwrite" if existing is not None else create_mode,
                partition_by=list(partition_by), predicate=predicate, schema_mode=schema_mode,
                storage_options=self.storage_options, commit_properties=commit,
                description=description,
            )  # fmt: skip
        else:
            write_deltalake(
                target,
                data,
                mode=mode.value if existing is not None else create_mode,
                partition_by=list(partition_by) or None,
                schema_mode=schema_mode,
                storage_options=self.storage_options,
                commit_properties=commit,
                description=description,
                writer_properties=writer_properties,
            )
        counts = _arrow_partition_counts(data, partition_by)
        committed = None if read_version is None else read_version + 1
        if committed is not None and mode is WriteMode.MERGE and existing is not None:
            committed = existing.version()  # a merge that changes nothing commits nothing
        return self._result(
            uri, data.num_rows, data.schema, partition_by, counts, WritePath.ARROW,
            version=committed,
        )  # fmt: skip

    def _merge_arrow(
        self,
        data: pa.Table,
        uri: str,
        existing: DeltaTable | None,
        merge_keys: Sequence[str] | None,
        schema_mode: str | None,
        commit: CommitProperties,
        create_mode: str,
        partition_by: tuple[str, ...],
        description: str | None,
    ) -> None:
        """Upsert on `merge_keys` (a new table is created with the rows)."""
        if not merge_keys:
            raise ValueError(f"merge into {uri} needs merge_keys")
        if existing is None:
            write_deltalake(uri, data, mode=create_mode, partition_by=list(partition_by) or None,
                            storage_options=self.storage_options, commit_properties=commit,
                            description=description)  # fmt: skip
            return
        _check_unique_keys(uri, data, merge_keys)
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in merge_keys)
        (
            existing.merge(data, predicate, source_alias="s", target_alias="t",
                           merge_schema=schema_mode == "merge", commit_properties=commit)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )  # fmt: skip

    def replace_where(
        self,
        data: pa.Table,
        layer: str,
        table: str,
        where: Mapping[str, Any],
        *,
        partition_by: Sequence[str] | None = None,
    ) -> WriteResult:
        """Atomically replace every row matching `where` (column = value) with `data`, which may
        be empty: re-running a partition whose input shrank converges too."""
        uri = self.uri(layer, table)
        data = normalize_arrow_table(data)
        partition_by = tuple(partition_by or ())
        for column, value in where.items():
            if data.num_rows and pc.any(pc.not_equal(data[column], value)).as_py():
                raise ValueError(f"{uri}: rows outside {column} = {value!r} in replace_where")
        existing = self._existing(uri)
        schema_mode = None
        if existing is None:
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                partition_by=list(partition_by) or None,
                storage_options=self.storage_options,
            )
        else:
            _check_partitioning(uri, existing, partition_by)
            table_schema = delta_schema_to_arrow(existing.schema())
            if check_compatible(uri, table_schema, data.schema):
                schema_mode = "merge"
            data = conform_to_table(data, table_schema)
            predicate = _partition_predicate([dict(where)], table_schema)
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                predicate=predicate,
                schema_mode=schema_mode,
                partition_by=list(partition_by) or None,
                storage_options=self.storage_options,
                commit_properties=_commit_properties(None, WriteMode.REPLACE_PARTITIONS),
            )
        counts = {partition_key(where, list(where)): data.num_rows}
        return self._result(uri, data.num_rows, data.schema, partition_by, counts, WritePath.ARROW)

    def _write_distributed(
        self,
        df,
        layer: str,
        table: str,
        mode: WriteMode,
        partition_by: tuple[str, ...],
        writer_id: str | None,
        batch_id: str | None,
        read_version: int | None = None,
    ) -> WriteResult:
        uri = self.uri(layer, table)
        with conflicts_raised(uri, read_version):
            return self._commit_distributed(
                df, uri, mode, partition_by, _app_id(writer_id, batch_id), read_version
            )

    def _commit_distributed(
        self,
        df,
        uri: str,
        mode: WriteMode,
        partition_by: tuple[str, ...],
        app_id: str | None,
        read_version: int | None,
    ) -> WriteResult:
        """Stage the DataFrame's Parquet files from the executors, then commit them on the
        table (created, or its schema evolved, first) in one transaction."""
        if mode is WriteMode.MERGE:
            raise ValueError("merge runs on the arrow path")
        if mode is WriteMode.REPLACE_PARTITIONS and not partition_by:
            raise ValueError(f"replace_partitions into {uri} needs partition_by")
        schema = spark_schema_to_arrow(df.schema)
        existing = self._pinned(uri, read_version)
        strict = read_version is not None
        commit_schema, new_columns = _commit_schema(uri, existing, schema, partition_by)
        if app_id and existing is not None and existing.transaction_version(app_id) is not None:
            log.info("%s: batch %s already committed; nothing written", uri, app_id)
            return self._result(uri, 0, schema, partition_by, {}, WritePath.DISTRIBUTED, True)

        written, actions = _stage_parquet(df, uri, partition_by, self.storage_options)
        counts: Counter[str] = Counter()
        for f in written:
            if partition_by:
                counts[partition_key(f.partition_values, partition_by)] += f.num_rows
        rows = sum(f.num_rows for f in written)

        target = self._table_for_commit(uri, existing, commit_schema, partition_by, new_columns,
                                        schema, mode, strict)  # fmt: skip
        committed = target.version() + 1 if strict else None
        commit = _commit_properties(app_id, mode, strict)
        if not _commit_files(target, actions, written, mode, commit_schema, partition_by, commit):
            return self._result(uri, 0, schema, partition_by, {}, WritePath.DISTRIBUTED)
        return self._result(
            uri, rows, schema, partition_by, dict(counts), WritePath.DISTRIBUTED,
            version=committed,
        )  # fmt: skip

    def _table_for_commit(
        self,
        uri: str,
        existing: DeltaTable | None,
        commit_schema: pa.Schema,
        partition_by: tuple[str, ...],
        new_columns: list[str],
        schema: pa.Schema,
        mode: WriteMode,
        strict: bool,
    ) -> DeltaTable:
        """The table the staged files are committed on: created when there is none; with the
        new columns added when the data brings some (`create_write_transaction` does not evolve
        the schema itself)."""
        if existing is None:
            DeltaTable.create(
                uri,
                commit_schema,
                partition_by=list(partition_by) or None,
                storage_options=self.storage_options,
            )
            return DeltaTable(uri, version=0 if strict else None,
                              storage_options=self.storage_options)  # fmt: skip
        if not new_columns:
            return existing
        # Harmless if the data commit then fails: the new nullable columns read as null.
        fields = DeltaSchema.from_arrow(pa.schema([schema.field(c) for c in new_columns]))
        base = existing.version()
        existing.alter.add_columns(
            fields.fields, commit_properties=_commit_properties(None, mode, strict)
        )
        # A pinned write goes on from exactly its own schema commit.
        next_version = base + 1 if strict else None
        return DeltaTable(uri, version=next_version, storage_options=self.storage_options)

    def _result(
        self, uri, rows, schema, partition_by, counts, path, skipped=False, version=None
    ) -> WriteResult:
        # A pinned write reports the version it committed, not whatever came after it.
        dt = DeltaTable(uri, version=version, storage_options=self.storage_options)
        return WriteResult(
            uri=uri,
            version=dt.version(),
            rows_written=rows,
            table_rows=count_rows(dt),
            schema=delta_schema_to_arrow(dt.schema()),
            partition_by=tuple(partition_by),
            partition_row_counts=counts,
            path=path,
            skipped=skipped,
        )

    # ------------------------------------------------------------------ reads
    def read(
        self,
        spark,
        layer: str,
        table: str,
        *,
        partitions: Mapping[str, Sequence[Any]] | None = None,
        version: int | None = None,
        columns: Sequence[str] | None = None,
        path: WritePath | str = WritePath.AUTO,
    ):
        """Read a table (or some partitions, or a past version) as a Spark DataFrame."""
        dt = self.table(layer, table, version)
        path = WritePath(path)
        if path is WritePath.AUTO:
            big = table_size_bytes(dt) > self.distributed_threshold_bytes
            path = WritePath.DISTRIBUTED if big or not is_local_master(spark) else WritePath.ARROW
        if path is WritePath.ARROW:
            data = read_arrow_table(dt, partitions, columns)
            spark_schema = arrow_schema_to_spark(data.schema)
            if data.num_rows == 0:  # Spark cannot take a table without chunks
                return spark.createDataFrame([], spark_schema)
            return spark.createDataFrame(data, schema=spark_schema)
        return _read_distributed(spark, dt, partitions, columns)

    def read_arrow(
        self,
        layer: str,
        table: str,
        *,
        partitions: Mapping[str, Sequence[Any]] | None = None,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Read into Arrow without Spark (for assets that never start a JVM)."""
        return read_arrow_table(self.table(layer, table, version), partitions, columns)

    def vacuum(self, layer: str, table: str, retention_hours: int = 168) -> list[str]:
        dt = self.table(layer, table)
        return dt.vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )


# ---------------------------------------------------------------------- helpers
def _commit_schema(
    uri: str, existing: DeltaTable | None, schema: pa.Schema, partition_by: Sequence[str]
) -> tuple[pa.Schema, list[str]]:
    """The schema a commit of `schema`'s data declares, and the columns it adds: the table's
    columns first, new ones appended (the data must be compatible with the table)."""
    if existing is None:
        return schema, []
    _check_partitioning(uri, existing, partition_by)
    table_schema = delta_schema_to_arrow(existing.schema())
    new_columns = check_compatible(uri, table_schema, schema)
    return pa.schema(list(table_schema) + [schema.field(c) for c in new_columns]), new_columns


def _commit_files(
    table: DeltaTable,
    actions: list,
    written: list,
    mode: WriteMode,
    commit_schema: pa.Schema,
    partition_by: tuple[str, ...],
    commit: CommitProperties,
) -> bool:
    """Commit the staged files: a partition replace overwrites exactly the partitions the files
    are in (False, nothing committed, when there are none); other modes append or overwrite."""
    if mode is WriteMode.REPLACE_PARTITIONS:
        present = [dict(f.partition_values) for f in written]
        unique = [dict(t) for t in {tuple(sorted(p.items())) for p in present}]
        if not unique:
            return False
        filters = [[(c, "=", p[c]) for c in partition_by] for p in unique]
        table.create_write_transaction(
            actions,
            mode="overwrite",
            schema=commit_schema,
            partition_by=list(partition_by),
            partition_filters=filters if len(filters) > 1 else filters[0],
            commit_properties=commit,
        )
        return True
    table.create_write_transaction(
        actions,
        mode=mode.value,
        schema=commit_schema,
        partition_by=list(partition_by) or None,
        commit_properties=commit,
    )
    return True


def _stage_parquet(df, uri: str, partition_by: tuple[str, ...], storage_options) -> tuple:
    """Executors write the DataFrame into a fresh folder under the table root; only a commit of
    the returned add actions makes the files part of the table, so a failed job leaves orphans
    for vacuum, never bad data. Returns the files written and their add actions."""
    staging = f"spark-{uuid.uuid4().hex}"
    writer = df.write.mode("errorifexists")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.parquet(files.join(uri, staging))
    written = files.list_parquet(uri, staging, storage_options)
    now_ms = int(time.time() * 1000)
    actions = [
        AddAction(
            path=f.relative_path,
            size=f.size,
            partition_values=f.partition_values,
            modification_time=now_ms,
            data_change=True,
            stats=json.dumps({"numRecords": f.num_rows}),
        )
        for f in written
    ]
    return written, actions


def count_rows(dt: DeltaTable) -> int:
    actions = pa.table(dt.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    return int(pc.sum(actions.column("num_records")).as_py() or 0)


def table_size_bytes(dt: DeltaTable) -> int:
    actions = pa.table(dt.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    return int(pc.sum(actions.column("size_bytes")).as_py() or 0)


def partition_row_counts(dt: DeltaTable) -> dict[str, int]:
    """Row count per partition of the current snapshot, from the log (no data read)."""
    partition_by = dt.metadata().partition_columns
    if not partition_by:
        return {}
    actions = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    counts: Counter[str] = Counter()
    for a in actions:
        values = {c: a[f"partition.{c}"] for c in partition_by}
        counts[partition_key(values, partition_by)] += a["num_records"] or 0
    return dict(counts)


def read_arrow_table(dt: DeltaTable, partitions=None, columns=None) -> pa.Table:
    filters = _partition_filters(partitions)
    data = pa.table(
        dt.to_pyarrow_table(partitions=filters, columns=list(columns) if columns else None)
    )
    return normalize_arrow_table(data)


def _read_distributed(spark, dt: DeltaTable, partitions, columns):
    from pyspark.sql import functions as F

    schema = delta_schema_to_arrow(dt.schema())
    partition_by = list(dt.metadata().partition_columns)
    data_schema = pa.schema([f for f in schema if f.name not in partition_by])
    wanted = _selected_files(dt, partition_by, partitions)
    spark_schema = arrow_schema_to_spark(schema)
    if not wanted:
        return spark.createDataFrame([], spark_schema).select(*(columns or schema.names))
    uris = [u for u, _ in wanted]
    df = spark.read.schema(arrow_schema_to_spark(data_schema)).parquet(*uris)
    if partition_by:
        # Files do not carry partition columns (Delta keeps them in the log): join them back by
        # file path, typed as the table declares, never inferred from folder names.
        rows = [(files.normalize_path(u), *[pv.get(c) for c in partition_by]) for u, pv in wanted]
        mapping = spark.createDataFrame(
            rows, ["_c360_file", *[f"_p_{c}" for c in partition_by]]
        ).hint("broadcast")
        # Same spelling as files.normalize_path, in SQL so no Python worker is involved.
        file_col = F.regexp_replace(F.url_decode(F.col("_metadata.file_path")), "^file:/+", "/")
        df = df.withColumn("_c360_file", file_col).join(mapping, "_c360_file")
        for c in partition_by:
            df = df.withColumn(c, F.col(f"_p_{c}").cast(spark_schema[c].dataType))
        df = df.select(*schema.names)
    return df.select(*(columns or schema.names))


def _selected_files(dt: DeltaTable, partition_by, partitions) -> list[tuple[str, dict]]:
    actions = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    base = dt.table_uri.rstrip("/")
    out = []
    for a in actions:
        values = {c: a.get(f"partition.{c}") for c in partition_by}
        if partitions and not all(
            _as_partition_str(values.get(c)) in {_as_partition_str(v) for v in allowed}
            for c, allowed in partitions.items()
        ):
            continue
        out.append((files.join(base, unquote(a["path"])), values))
    return out


def _as_partition_str(v) -> str | None:
    return None if v is None else str(v)


def _partition_filters(partitions):
    if not partitions:
        return None
    return [(c, "in", [str(v) for v in values]) for c, values in partitions.items()]


def _check_partitioning(uri: str, dt: DeltaTable, partition_by: Sequence[str]) -> None:
    current = tuple(dt.metadata().partition_columns)
    if current != tuple(partition_by):
        raise SchemaMismatchError(
            f"table {uri} is partitioned by {list(current)} but the write asked for "
            f"{list(partition_by)}; the table was left unchanged"
        )


def _check_unique_keys(uri: str, data: pa.Table, keys: Sequence[str]) -> None:
    grouped = data.group_by(list(keys)).aggregate([([], "count_all")])
    dupes = grouped.filter(pc.greater(grouped["count_all"], 1))
    if dupes.num_rows:
        example = {k: dupes[k][0].as_py() for k in keys}
        raise ValueError(
            f"merge into {uri}: {dupes.num_rows} key(s) appear more than once in the source, "
            f"e.g. {example}"
        )


def _distinct_partitions(data: pa.Table, partition_by: Sequence[str]) -> list[dict]:
    if data.num_rows == 0:
        return []
    return data.select(list(partition_by)).group_by(list(partition_by)).aggregate([]).to_pylist()


def _arrow_partition_counts(data: pa.Table, partition_by: Sequence[str]) -> dict[str, int]:
    if not partition_by or data.num_rows == 0:
        return {}
    grouped = data.group_by(list(partition_by)).aggregate([([], "count_all")]).to_pylist()
    return {partition_key(g, partition_by): g["count_all"] for g in grouped}


def _sql_literal(value: Any, type_: pa.DataType) -> str:
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return str(value)
    if pa.types.is_boolean(type_):
        return "true" if value else "false"
    text = value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)
    return sql_text(text)


def _partition_predicate(present: list[dict], schema: pa.Schema) -> str:
    clauses = []
    for values in present:
        parts = []
        for col, value in values.items():
            if value is None:
                parts.append(f"`{col}` IS NULL")
            else:
                parts.append(f"`{col}` = {_sql_literal(value, schema.field(col).type)}")
        clauses.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(clauses)


def _app_id(writer_id: str | None, batch_id: str | None) -> str | None:
    if writer_id is None and batch_id is None:
        return None
    if not writer_id or not batch_id:
        raise ValueError("exactly-once writes need both writer_id and batch_id")
    return f"{writer_id}/{batch_id}"


def _commit_properties(
    app_id: str | None,
    mode: WriteMode,
    strict: bool = False,
    extra: Mapping[str, str] | None = None,
) -> CommitProperties:
    """`strict`: commit on the snapshot's version + 1 or fail (no delta-rs commit retries,
    which would rebase the commit onto someone else's). `extra`: more commitInfo fields."""
    meta = {**(extra or {}), "customer360.mode": mode.value}
    txns = [Transaction(app_id, 1)] if app_id else None
    retries = 0 if strict else None
    return CommitProperties(custom_metadata=meta, app_transactions=txns, max_commit_retries=retries)


@contextmanager
def conflicts_raised(uri: str, read_version: int | None) -> Iterator[None]:
    """delta-rs's failed commit (or a lost race to create the table) as `WriteConflict`."""
    try:
        yield
    except CommitFailedError as exc:
        raise WriteConflict(f"{uri}: another writer committed first ({exc})") from exc
    except DeltaError as exc:
        if read_version == NEW_TABLE and "already exists" in str(exc):
            raise WriteConflict(f"{uri} was created by another writer meanwhile") from exc
        raise
