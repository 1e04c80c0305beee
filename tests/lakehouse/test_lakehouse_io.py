"""Lake round trips on both paths, partition replace, merge, exactly-once appends, evolution."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from customer360.lakehouse import DeltaLake, SchemaMismatchError, WriteMode, WritePath
from customer360.lakehouse.spark_arrow import arrow_to_spark

pytestmark = pytest.mark.spark

SCHEMA = (
    "id long, name string, amount decimal(12,2), score double, active boolean, "
    "born date, seen timestamp, day string"
)


def _rows():
    utc = dt.UTC
    return [
        (
            1,
            "Ann",
            Decimal("10.50"),
            0.5,
            True,
            dt.date(1990, 1, 2),
            dt.datetime(2024, 1, 1, 8, 0, tzinfo=utc),
            "2024-01-01",
        ),
        (
            2,
            "Bob",
            Decimal("7.25"),
            None,
            False,
            None,
            dt.datetime(2024, 1, 2, 9, 30, tzinfo=utc),
            "2024-01-02",
        ),
        (3, "Cé'cile", None, 1.25, None, dt.date(2001, 9, 5), None, "2024-01-02"),
    ]


@pytest.fixture
def lake(tmp_path) -> DeltaLake:
    return DeltaLake(str(tmp_path / "lake"))


@pytest.fixture
def frame(spark):
    return spark.createDataFrame(_rows(), SCHEMA)


def _sorted(df):
    return [tuple(r) for r in df.orderBy("id").collect()]


@pytest.mark.parametrize("path", [WritePath.ARROW, WritePath.DISTRIBUTED])
def test_round_trip_keeps_rows_and_types(spark, lake, frame, path):
    result = lake.write(frame, "bronze", "t", partition_by=["day"], path=path)
    assert result.rows_written == 3 and result.table_rows == 3
    assert result.partition_row_counts == {"day=2024-01-01": 1, "day=2024-01-02": 2}
    for read_path in (WritePath.ARROW, WritePath.DISTRIBUTED):
        back = lake.read(spark, "bronze", "t", path=read_path)
        assert back.schema.simpleString() == frame.schema.simpleString()
        assert _sorted(back) == _sorted(frame)
    schema = pa.schema(DeltaTable(result.uri).schema().to_arrow())
    assert schema.field("seen").type == pa.timestamp("us", tz="UTC")
    assert schema.field("amount").type == pa.decimal128(12, 2)


def test_both_paths_produce_identical_tables(spark, lake, frame):
    a = lake.write(frame, "x", "arrow", partition_by=["day"], path=WritePath.ARROW)
    b = lake.write(frame, "x", "dist", partition_by=["day"], path=WritePath.DISTRIBUTED)
    ta = lake.read_arrow("x", "arrow").sort_by("id")
    tb = lake.read_arrow("x", "dist").sort_by("id")
    assert ta.equals(tb.select(ta.column_names))
    assert a.schema.equals(b.schema)
    assert DeltaTable(a.uri).metadata().partition_columns == ["day"]
    assert DeltaTable(b.uri).metadata().partition_columns == ["day"]


def test_timestamp_ntz_is_stored_as_utc_timestamp(spark, lake):
    df = spark.sql("select 1 as id, timestamp_ntz'2024-05-01 10:00:00' as ts")
    lake.write(df, "x", "ntz", path=WritePath.ARROW)
    lake.write(df, "x", "ntz2", path=WritePath.DISTRIBUTED)
    for name in ("ntz", "ntz2"):
        dt_ = lake.table("x", name)
        assert pa.schema(dt_.schema().to_arrow()).field("ts").type == pa.timestamp("us", tz="UTC")
        assert "timestampNtz" not in (dt_.protocol().writer_features or [])
        value = lake.read_arrow("x", name).column("ts")[0].as_py()
        assert value == dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("path", [WritePath.ARROW, WritePath.DISTRIBUTED])
def test_partition_replace_touches_only_given_partitions(spark, lake, frame, path):
    lake.write(frame, "bronze", "t", partition_by=["day"], path=path)
    day3 = spark.createDataFrame([(9, "Zed", None, None, None, None, None, "2024-01-03")], SCHEMA)
    lake.write(day3, "bronze", "t", mode="replace_partitions", partition_by=["day"], path=path)
    new_day2 = spark.createDataFrame(
        [(20, "New", None, None, None, None, None, "2024-01-02")], SCHEMA
    )
    result = lake.write(
        new_day2, "bronze", "t", mode=WriteMode.REPLACE_PARTITIONS, partition_by=["day"], path=path
    )
    ids = sorted(r.id for r in lake.read(spark, "bronze", "t").collect())
    assert ids == [1, 9, 20]  # day 1 and day 3 untouched, day 2 replaced exactly
    assert result.partition_row_counts == {"day=2024-01-02": 1}
    again = lake.write(
        new_day2, "bronze", "t", mode=WriteMode.REPLACE_PARTITIONS, partition_by=["day"], path=path
    )
    assert again.table_rows == 3  # re-running a partition converges


def test_read_some_partitions_and_past_version(spark, lake, frame):
    first = lake.write(frame, "bronze", "t", partition_by=["day"])
    lake.write(frame.limit(1), "bronze", "t", partition_by=["day"], mode="overwrite")
    some = lake.read(spark, "bronze", "t", partitions={"day": ["2024-01-02"]})
    assert sorted(r.id for r in some.collect()) == []  # current version only has day 1
    old = lake.read(spark, "bronze", "t", version=first.version, partitions={"day": ["2024-01-02"]})
    assert sorted(r.id for r in old.collect()) == [2, 3]
    dist = lake.read(
        spark,
        "bronze",
        "t",
        version=first.version,
        partitions={"day": ["2024-01-02"]},
        path=WritePath.DISTRIBUTED,
    )
    assert sorted(r.id for r in dist.collect()) == [2, 3]


def test_merge_upserts_on_keys(spark, lake, frame):
    lake.write(frame, "silver", "m", mode="merge", merge_keys=["id"])
    changes = spark.createDataFrame(
        [
            (2, "Bobby", Decimal("1.00"), 2.0, True, None, None, "2024-01-02"),
            (4, "Dee", None, None, None, None, None, "2024-01-04"),
        ],
        SCHEMA,
    )
    result = lake.write(changes, "silver", "m", mode="merge", merge_keys=["id"])
    assert result.table_rows == 4
    got = {r.id: r.name for r in lake.read(spark, "silver", "m").collect()}
    assert got == {1: "Ann", 2: "Bobby", 3: "Cé'cile", 4: "Dee"}


def test_merge_rejects_duplicate_source_keys(spark, lake, frame):
    lake.write(frame, "silver", "m", mode="merge", merge_keys=["id"])
    dupes = frame.union(frame)
    with pytest.raises(ValueError, match="appear more than once"):
        lake.write(dupes, "silver", "m", mode="merge", merge_keys=["id"])


@pytest.mark.parametrize("path", [WritePath.ARROW, WritePath.DISTRIBUTED])
def test_exactly_once_append(spark, lake, frame, path):
    first = lake.write(frame, "bronze", "a", mode="append", writer_id="w", batch_id="b1", path=path)
    retry = lake.write(frame, "bronze", "a", mode="append", writer_id="w", batch_id="b1", path=path)
    assert retry.skipped and retry.rows_written == 0 and retry.version == first.version
    lake.write(frame, "bronze", "a", mode="append", writer_id="w", batch_id="b2", path=path)
    assert lake.read_arrow("bronze", "a").num_rows == 6


@pytest.mark.parametrize("path", [WritePath.ARROW, WritePath.DISTRIBUTED])
def test_schema_evolution_adds_nullable_columns(spark, lake, frame, path):
    lake.write(frame, "bronze", "e", mode="append", path=path)
    wider = frame.limit(1).selectExpr("*", "'x' as extra")
    lake.write(wider, "bronze", "e", mode="append", path=path)
    table = lake.read_arrow("bronze", "e")
    assert table.column_names[-1] == "extra"
    values = table.column("extra").to_pylist()
    assert values.count("x") == 1 and values.count(None) == 3


@pytest.mark.parametrize("path", [WritePath.ARROW, WritePath.DISTRIBUTED])
def test_incompatible_type_change_fails_and_leaves_table(spark, lake, frame, path):
    first = lake.write(frame, "bronze", "e", path=path)
    bad = frame.selectExpr("cast(id as string) as id", "name")
    with pytest.raises(SchemaMismatchError, match=r"bronze/e: column 'id' is int64 .* string"):
        lake.write(bad, "bronze", "e", mode="append", path=path)
    assert lake.table("bronze", "e").version() == first.version
    assert lake.read_arrow("bronze", "e").num_rows == 3


def test_partitioning_mismatch_is_refused(spark, lake, frame):
    lake.write(frame, "bronze", "p", partition_by=["day"])
    with pytest.raises(SchemaMismatchError, match="partitioned by"):
        lake.write(frame, "bronze", "p", mode="append")


def test_auto_path_picks_distributed_above_threshold(spark, tmp_path, frame):
    tiny = DeltaLake(str(tmp_path / "lake"), distributed_threshold_bytes=1)
    assert tiny.write(frame, "b", "t").path is WritePath.DISTRIBUTED
    roomy = DeltaLake(str(tmp_path / "lake2"))
    small = spark.range(100).selectExpr("id", "cast(id as string) as s")  # size is estimable
    assert roomy.write(small, "b", "t").path is WritePath.ARROW
    # Unknown size (Python data) goes distributed: never risk collecting a huge frame.
    assert roomy.write(frame, "b", "u").path is WritePath.DISTRIBUTED


def test_vacuum_keeps_current_version_readable(spark, lake, frame):
    lake.write(frame, "gold", "v")
    old_files = set(lake.table("gold", "v").file_uris())
    lake.write(frame.limit(1), "gold", "v")
    removed = lake.vacuum("gold", "v", retention_hours=0)
    base = lake.uri("gold", "v") + "/"
    assert {base + r for r in removed} == old_files
    assert lake.read_arrow("gold", "v").num_rows == 1


def test_replace_where_replaces_matching_rows_even_with_empty_data(lake):
    rows = pa.table({"k": ["a", "a", "b"], "v": [1, 2, 3]})
    lake.replace_where(rows.slice(0, 2), "bronze", "r", {"k": "a"}, partition_by=["k"])
    lake.replace_where(rows.slice(2), "bronze", "r", {"k": "b"}, partition_by=["k"])
    lake.replace_where(
        pa.table({"k": ["a"], "v": [9]}), "bronze", "r", {"k": "a"}, partition_by=["k"]
    )
    assert sorted(lake.read_arrow("bronze", "r").column("v").to_pylist()) == [3, 9]
    lake.replace_where(rows.slice(0, 0), "bronze", "r", {"k": "a"}, partition_by=["k"])
    assert lake.read_arrow("bronze", "r").column("v").to_pylist() == [3]
    with pytest.raises(ValueError, match="rows outside k = 'b'"):
        lake.replace_where(rows, "bronze", "r", {"k": "b"}, partition_by=["k"])


def test_older_shaped_batch_goes_into_an_evolved_table(lake):
    lake.write_arrow(pa.table({"k": ["a"], "v": [1]}), "bronze", "o", partition_by=["k"])
    lake.write_arrow(
        pa.table({"k": ["b"], "v": [2], "extra": ["x"]}),
        "bronze",
        "o",
        mode="append",
        partition_by=["k"],
    )
    lake.replace_where(
        pa.table({"k": ["a"], "v": [3]}), "bronze", "o", {"k": "a"}, partition_by=["k"]
    )
    lake.write_arrow(
        pa.table({"k": ["c"], "v": [4]}), "bronze", "o", mode="append", partition_by=["k"]
    )
    rows = sorted(lake.read_arrow("bronze", "o").to_pylist(), key=lambda r: r["k"])
    assert rows == [
        {"k": "a", "v": 3, "extra": None},
        {"k": "b", "v": 2, "extra": "x"},
        {"k": "c", "v": 4, "extra": None},
    ]


def test_arrow_to_spark_keeps_rows_behind_many_empty_batches(spark):
    # A filtered scan (assets.silver.read_rows) gives hundreds of empty batches; PySpark 4.0's
    # createDataFrame(table) loses the rows that follow them unless the table is one chunk.
    schema = pa.schema([pa.field("x", pa.int64(), nullable=False)])
    empty = pa.record_batch([pa.array([], pa.int64())], schema=schema)
    rows = pa.record_batch([pa.array([7, 8], pa.int64())], schema=schema)
    table = pa.Table.from_batches([empty] * 300 + [rows], schema=schema)
    assert sorted(r.x for r in arrow_to_spark(spark, table).collect()) == [7, 8]
