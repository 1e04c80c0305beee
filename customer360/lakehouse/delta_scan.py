"""Scan a Delta snapshot with DuckDB's own Parquet reader when its files are the snapshot.

DuckDB reading the snapshot through a pyarrow dataset goes through Arrow's scanner: single
pass, no filter pushdown for a semi-join. Its native `read_parquet` over the same files is three
to six times faster on the million-row tables of an incremental run (docs/medallion.md
"Benchmark"). That is only the same data when the files alone describe the snapshot, which
`plain_parquet_files` checks; otherwise callers keep the dataset path.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from deltalake import DeltaTable

from customer360.lakehouse.arrow_sql import arrow_query, sql_name
from customer360.lakehouse.schema import normalize_arrow_table

# Reader features that do not change what the Parquet files hold (timestampNtz only allows a
# column type DuckDB reads natively). Column mapping renames physical columns and deletion
# vectors hide rows: both need the log, so those tables take the dataset path.
_HARMLESS_READER_FEATURES = frozenset({"timestampNtz"})


def plain_parquet_files(table: DeltaTable) -> list[str] | None:
    """The snapshot's data files as local paths, when reading exactly those files as Parquet
    gives the snapshot: local storage, no partition columns (their values live in the log and
    the folder names, not in the files), no column mapping or deletion vectors, at least one
    file. None otherwise."""
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    if protocol.min_reader_version == 2 or not features <= _HARMLESS_READER_FEATURES:
        return None
    metadata = table.metadata()
    if metadata.partition_columns:
        return None
    if metadata.configuration.get("delta.columnMapping.mode", "none") != "none":
        return None
    files = [path.removeprefix("file://") for path in table.file_uris()]
    if not files or not all(path.startswith("/") for path in files):
        return None
    return files


def rows_with_keys(
    table: DeltaTable,
    key: str,
    values: pa.Array,
    *,
    columns: Sequence[str] | None = None,
    only_if: str | None = None,
) -> pa.Table:
    """The rows of `table` (the snapshot it was opened at) whose `key` is in `values`: only
    `columns` (default all), only rows whose boolean column `only_if` is true when given. The
    result has the snapshot's Arrow types.

    DuckDB streams the files through a semi-join: the whole table is never in memory and the
    key set is hashed once."""
    dataset = table.to_pyarrow_dataset()
    wanted = list(columns) if columns else dataset.schema.names
    keys = pa.table({"_key": values.cast(dataset.schema.field(key).type)})
    condition = f" AND {sql_name(only_if)}" if only_if else ""
    files = plain_parquet_files(table)
    if files is None:
        rows = arrow_query(
            f"SELECT {_select(wanted)} FROM ds WHERE {sql_name(key)} IN (SELECT _key FROM keys)"
            f"{condition}",
            ds=dataset,
            keys=keys,
        )
    else:
        scan = "read_parquet(?, union_by_name = true)"
        # A column added to the table after a file was written is missing from that file
        # (union_by_name fills it with nulls) and, until a file has it, from every file.
        present = set(arrow_query(f"SELECT * FROM {scan} LIMIT 0", [files]).column_names)
        stored = [c for c in wanted if c in present]
        rows = arrow_query(
            f"SELECT {_select(stored)} FROM {scan} "
            f"WHERE {sql_name(key)} IN (SELECT _key FROM keys){condition}",
            [files],
            keys=keys,
        )
        for name in wanted:
            if name not in present:
                rows = rows.append_column(name, pa.nulls(rows.num_rows, pa.null()))
    schema = pa.schema([dataset.schema.field(c) for c in wanted])
    return normalize_arrow_table(rows.select(wanted).cast(schema))


def _select(names: Sequence[str]) -> str:
    return ", ".join(sql_name(c) for c in names)
