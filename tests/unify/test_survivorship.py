"""The driver's survivorship (customer360.unify.survivorship) gives the rows Spark gives.

Random records over three sources — missing values, missing and equal modified dates, values
that agree or not, accents and non-Latin text (lengths in code points) — are grouped into
profiles and merged with every strategy, by merge.merge_profiles in Spark and by
survivorship.merge_profiles on the driver.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pyarrow as pa
import pytest
from arrow_rows import sorted_rows
from pyspark.sql import functions as F
from unify_builders import rec, records_df

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import load_config, merge_profiles, survivorship, to_records

pytestmark = pytest.mark.spark

UTC = dt.UTC


def _records(seed: int = 5, count: int = 300) -> list[dict]:
    rng = random.Random(seed)
    stamps = [None, dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 3, 1, 12, tzinfo=UTC)]
    rows = []
    for i in range(count):
        rows.append(
            rec(
                rng.choice(["dataverse", "residents", "shop"]),
                str(i),
                firstname=rng.choice([None, "Ann", "Anne", "Zoë", "李"]),
                lastname=rng.choice([None, "Lee", "Leigh"]),
                name=rng.choice([None, "Ann Lee", "Anne Leigh"]),
                gender=rng.choice([None, "female", "male"]),
                email=rng.choice([None, "a@x.com", "b@x.com"]),
                telephone=rng.choice([None, "0123"]),
                city=rng.choice([None, "Zürich", "Bern"]),
                postcode=rng.choice([None, "8000"]),
                dateofbirth=rng.choice([None, "1980-01-02", "1980-02-01"]),
                modified_at=rng.choice(stamps),
            )
        )
    return rows


def test_driver_survivorship_equals_spark(spark):
    records = _records()
    rng = random.Random(9)
    links = pa.table(
        {
            "source": [r["source"] for r in records],
            "source_key": [r["source_key"] for r in records],
            "unified_customer_id": [f"p{rng.randrange(60)}" for _ in records],
        }
    )
    records_spark = records_df(spark, records).cache()
    rules = load_config().survivorship
    strategies = {g.strategy for g in rules.groups}
    assert strategies == {"most_complete", "source_priority", "most_recent", "most_frequent"}
    for priority in (rules.source_priority, ()):
        config = dataclasses.replace(rules, source_priority=priority)
        expected = spark_to_arrow(
            merge_profiles(records_spark, spark.createDataFrame(links), config)
        )
        got = survivorship.merge_profiles(spark_to_arrow(records_spark), links, config)
        assert got.num_rows == expected.num_rows == 60
        assert sorted_rows(got) == sorted_rows(expected)
    records_spark.unpersist()


def test_records_table_equals_to_records(spark):
    rows = pa.table(
        {
            "cid": pa.array([1, 2, 3], pa.int64()),
            "firstname": ["Ann", None, "Bo"],
            "dateofbirth": pa.array([dt.date(1980, 1, 2), None, None], pa.date32()),
            "modifiedon": pa.array([None, dt.datetime(2024, 1, 1, tzinfo=UTC), None],
                                   pa.timestamp("us", tz="UTC")),
            "SinkModifiedOn": pa.array([dt.datetime(2023, 5, 5, tzinfo=UTC)] * 2 + [None],
                                       pa.timestamp("us", tz="UTC")),
        }
    )  # fmt: skip
    frame = spark.createDataFrame(rows)
    expected = spark_to_arrow(
        to_records(
            frame.withColumn("_m", F.coalesce("modifiedon", "SinkModifiedOn")),
            "dataverse", "cid", "_m",
        )
    )  # fmt: skip
    got = survivorship.records_table(rows, "dataverse", "cid", ("modifiedon", "SinkModifiedOn"))
    assert sorted_rows(got) == sorted_rows(expected)
    assert got.column_names == expected.column_names
