"""rows_with_keys: DuckDB's Parquet reader over a plain snapshot gives exactly the rows and types
the dataset path gives; tables whose files are not the snapshot take the dataset path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import DeltaTable, Schema, write_deltalake

from customer360.lakehouse import delta_scan
from customer360.lakehouse.delta_scan import plain_parquet_files, rows_with_keys

UTC = dt.UTC


def _batch(first: int, count: int) -> pa.Table:
    ids = list(range(first, first + count))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"n{i}" if i % 7 else None for i in ids]),
            "amount": pa.array([Decimal(i) / 4 for i in ids], pa.decimal128(12, 2)),
            "seen": pa.array(
                [dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            "live": pa.array([i % 3 != 0 for i in ids]),
            "tags": pa.array([[f"t{i % 4}", "x"] for i in ids], pa.list_(pa.string())),
            "origin": pa.array(
                [[("name", f"src/{i}")] for i in ids], pa.map_(pa.string(), pa.string())
            ),
        }
    )


@pytest.fixture
def evolved(tmp_path) -> DeltaTable:
    """Three files; the last one written after a column was added (older files lack it)."""
    uri = str(tmp_path / "t")
    write_deltalake(uri, _batch(0, 500))
    write_deltalake(uri, _batch(500, 500), mode="append")
    newer = _batch(1000, 200)
    newer = newer.append_column("segment", pa.array([f"s{i % 5}" for i in range(200)]))
    write_deltalake(uri, newer, mode="append", schema_mode="merge")
    return DeltaTable(uri)


def _by_dataset(table: DeltaTable, *args, **kwargs) -> pa.Table:
    original = delta_scan.plain_parquet_files
    delta_scan.plain_parquet_files = lambda _table: None
    try:
        return rows_with_keys(table, *args, **kwargs)
    finally:
        delta_scan.plain_parquet_files = original


def test_plain_snapshot_is_read_natively_with_the_dataset_paths_rows_and_types(evolved):
    assert plain_parquet_files(evolved) is not None and len(plain_parquet_files(evolved)) == 3
    keys = pa.array([3, 499, 500, 1001, 1199, 5000], pa.int64())
    native = rows_with_keys(evolved, "id", keys)
    reference = _by_dataset(evolved, "id", keys)
    assert native.schema == reference.schema == evolved.to_pyarrow_dataset().schema
    assert native.sort_by("id").equals(reference.sort_by("id"))
    assert native.sort_by("id")["id"].to_pylist() == [3, 499, 500, 1001, 1199]
    assert native.sort_by("id")["segment"].to_pylist() == [None, None, None, "s1", "s4"]


def test_projection_and_only_if(evolved):
    keys = pa.array(list(range(0, 1200, 10)), pa.int64())
    native = rows_with_keys(evolved, "id", keys, columns=["id", "tags"], only_if="live")
    assert native.column_names == ["id", "tags"]
    assert native.sort_by("id")["id"].to_pylist() == [i for i in range(0, 1200, 10) if i % 3]
    reference = _by_dataset(evolved, "id", keys, columns=["id", "tags"], only_if="live")
    assert native.sort_by("id").equals(reference.sort_by("id"))


def test_a_column_no_file_has_yet_comes_back_null(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, _batch(0, 50))
    table = DeltaTable(uri)
    table.alter.add_columns(Schema.from_arrow(pa.schema([pa.field("late", pa.string())])).fields)
    table = DeltaTable(uri)
    rows = rows_with_keys(table, "id", pa.array([1, 2], pa.int64()), columns=["id", "late"])
    assert rows.sort_by("id").to_pylist() == [{"id": 1, "late": None}, {"id": 2, "late": None}]


def test_partitioned_and_empty_tables_take_the_dataset_path(tmp_path):
    uri = str(tmp_path / "p")
    data = _batch(0, 20).append_column("day", pa.array(["a", "b"] * 10))
    write_deltalake(uri, data, partition_by=["day"])
    table = DeltaTable(uri)
    assert plain_parquet_files(table) is None  # partition values are not in the files
    rows = rows_with_keys(table, "id", pa.array([0, 1], pa.int64()), columns=["id", "day"])
    assert rows.sort_by("id").to_pylist() == [{"id": 0, "day": "a"}, {"id": 1, "day": "b"}]

    empty = str(tmp_path / "e")
    write_deltalake(empty, _batch(0, 0))
    assert plain_parquet_files(DeltaTable(empty)) is None
    assert rows_with_keys(DeltaTable(empty), "id", pa.array([1], pa.int64())).num_rows == 0
