"""Conversions between Spark and Arrow that keep the lake's type rules (Dagster-free)."""

from __future__ import annotations

import pyarrow as pa

from customer360.lakehouse.schema import normalize_arrow_schema, normalize_arrow_table


def utc_timestamps(df):
    """Cast `timestamp_ntz` columns to `timestamp` so no table ever gets the timestampNtz feature
    by accident (older Delta readers cannot open it)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType

    casts = {
        f.name: F.col(f"`{f.name}`").cast("timestamp")
        for f in df.schema.fields
        if isinstance(f.dataType, TimestampNTZType)
    }
    return df.withColumns(casts) if casts else df


def spark_to_arrow(df) -> pa.Table:
    """Collect a (small) Spark DataFrame to Arrow with the lake's type rules applied."""
    table = utc_timestamps(df).toArrow()
    return normalize_arrow_table(table)


def arrow_to_spark(session, data: pa.Table):
    """A Spark DataFrame of a (small) Arrow table, typed by the lake's Arrow → Spark rules."""
    schema = arrow_schema_to_spark(data.schema)
    if data.num_rows == 0:  # Spark cannot take a table without chunks
        return session.createDataFrame([], schema)
    # One chunk: PySpark 4.0 drops the rows of a table whose many leading record batches are
    # empty (as a filtered scan gives), tests/lakehouse/test_spark_arrow.py shows it.
    return session.createDataFrame(data.combine_chunks(), schema=schema)


def spark_schema_to_arrow(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return normalize_arrow_schema(to_arrow_schema(spark_schema, timezone="UTC"))


def arrow_schema_to_spark(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def estimated_size_bytes(df) -> int | None:
    """Spark's optimizer estimate of a DataFrame's size, or None where it is not available
    (Spark Connect has no JVM handle on the client)."""
    try:
        size = df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
        size = int(size if isinstance(size, int) else size.toString())
    except Exception:
        return None
    # Spark reports Long.MaxValue when it cannot estimate (e.g. data from a Python RDD).
    return None if size >= 2**63 - 1 else size


def is_local_master(spark) -> bool:
    """True for `local[...]` sessions, where the driver and executors share one file system."""
    try:
        return spark.sparkContext.master.startswith("local")
    except Exception:  # Spark Connect: no SparkContext on the client
        return False
