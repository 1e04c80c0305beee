"""An incremental profile update derives the rows a full build derives.

Random profiles (several Dataverse and CRM records each, some without finance, churn or dates)
go through customer360.gold.profile.profile_frames (Spark: the full build's definition) and through
profile_inputs.profile_inputs + profile.profile_columns (the incremental path: inputs joined on
the driver, derived columns and segment rules in Spark). Monthly amounts are drawn so that
averages land exactly on rounding halves (Spark rounds a decimal average twice, HALF_UP).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pyarrow as pa
import pytest
from arrow_rows import sorted_rows

from customer360.gold.profile import profile_frames
from customer360.lakehouse.spark_arrow import arrow_to_spark, spark_to_arrow
from customer360.transforms import profile_inputs
from customer360.transforms.profile import SegmentRules, profile_columns
from customer360.unify import load_config
from customer360.unify.lake_records import DATAVERSE_SOURCE
from customer360.unify.schema import RECORD_DDL

pytestmark = pytest.mark.spark

UTC = dt.UTC
AS_OF = dt.datetime(2024, 6, 3, tzinfo=UTC)


def _inputs(seed: int = 21, profiles: int = 80):
    rng = random.Random(seed)
    records, links, customers, monthly, churn = [], [], [], [], []
    cid = 1000
    for p in range(profiles):
        uid = f"u{p:03d}"
        for _ in range(rng.randint(1, 3)):
            source = rng.choice([DATAVERSE_SOURCE, DATAVERSE_SOURCE, "residents"])
            cid += 1
            key = str(cid)
            stamp = rng.choice([None, dt.datetime(2020, 2, 29, 13, tzinfo=UTC),
                                dt.datetime(2023, 6, 3, 23, 59, tzinfo=UTC)])  # fmt: skip
            dob = rng.choice(
                [None, dt.date(1980, 6, 3), dt.date(2000, 2, 29), dt.date(1960, 1, 31)]
            )
            records.append((source, key, rng.choice(["Ann", None]), "Lee", None, "female",
                            rng.choice(["a@x.com", f"{p}@x.com", None]), "0123", None, "CH",
                            "CH", "Bern", None, "3000", None, dob, stamp))  # fmt: skip
            links.append({"unified_customer_id": uid, "source": source, "source_key": key})
            if source != DATAVERSE_SOURCE:
                continue
            created = dt.datetime(rng.choice([2015, 2023, 2024]), rng.randint(1, 12), 3, 7,
                                  tzinfo=UTC)  # fmt: skip
            customers.append({"cid": cid, "Id": f"id-{cid}", "createdon": created})
            for month in rng.sample(
                ["2024-01", "2024-02", "2024-03", "2024-04"], rng.randint(0, 4)
            ):
                spend = rng.choice([None, Decimal("0.00"), Decimal("1000.01"), Decimal("2500.02"),
                                    Decimal("4000.03"), Decimal("0.05")])  # fmt: skip
                monthly.append(
                    {
                        "cid": cid,
                        "month": month,
                        "spend": spend,
                        "income": rng.choice([None, Decimal("3000.00"), Decimal("1.01")]),
                    }
                )
            if rng.random() < 0.5:
                churn.append({"cid": cid, "churn_probability": round(rng.random(), 3),
                              "churn_risk_band": rng.choice(["low", "high"])})  # fmt: skip
    money = pa.decimal128(18, 2)
    monthly_schema = pa.schema([("cid", pa.int64()), ("month", pa.string()),
                                ("spend", money), ("income", money)])  # fmt: skip
    customer_schema = pa.schema([("cid", pa.int64()), ("Id", pa.string()),
                                 ("createdon", pa.timestamp("us", tz="UTC"))])  # fmt: skip
    return (
        records,
        pa.Table.from_pylist(links),
        pa.Table.from_pylist(customers, customer_schema),
        pa.Table.from_pylist(monthly, monthly_schema),
        pa.Table.from_pylist(churn),
    )


@pytest.mark.parametrize("with_churn", [True, False])
def test_incremental_profile_rows_equal_the_full_builds(spark, with_churn):
    records, links, customers, monthly, churn = _inputs()
    rules = SegmentRules.load()
    records_df = spark.createDataFrame(records, RECORD_DDL)
    expected = spark_to_arrow(
        profile_frames(
            arrow_to_spark(spark, links), records_df, arrow_to_spark(spark, customers),
            arrow_to_spark(spark, monthly),
            arrow_to_spark(spark, churn) if with_churn else None, rules, AS_OF,
        )
    )  # fmt: skip
    inputs = profile_inputs.profile_inputs(
        spark_to_arrow(records_df), links, customers, monthly, churn if with_churn else None,
        load_config().survivorship, DATAVERSE_SOURCE, AS_OF,
    )  # fmt: skip
    got = spark_to_arrow(profile_columns(arrow_to_spark(spark, inputs), rules))
    assert got.column_names == expected.column_names
    assert got.num_rows == expected.num_rows == 80
    assert sorted_rows(got) == sorted_rows(expected.cast(got.schema))
    # Not vacuous: averages, churn and segments are there.
    assert len(set(expected["avg_monthly_spend"].to_pylist())) > 3
    assert len(set(expected["value_segment"].to_pylist())) > 2
    assert (expected["churn_probability"].null_count < 80) == with_churn
