"""Hand-made records and the seed-data records for the unify tests."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

from pyspark.sql import functions as F

from customer360.transforms.customer import standardize_customers
from customer360.unify import (
    RECORD_COLUMNS,
    RECORD_DDL,
    CsvSourceMapping,
    load_config,
    read_crm_csv,
    to_records,
)

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "customer360" / "sample_data"
UTC = dt.UTC


def rec(source: str, key: str, **values) -> dict:
    """One standardised record; unspecified attributes are null."""
    row = dict.fromkeys(RECORD_COLUMNS)
    row.update(source=source, source_key=key, **values)
    if isinstance(row["dateofbirth"], str):
        row["dateofbirth"] = dt.date.fromisoformat(row["dateofbirth"])
    if isinstance(row["modified_at"], str):
        row["modified_at"] = dt.datetime.fromisoformat(row["modified_at"]).replace(tzinfo=UTC)
    return row


def records_df(spark, rows: list[dict]):
    return spark.createDataFrame([tuple(r[c] for c in RECORD_COLUMNS) for r in rows], RECORD_DDL)


@cache
def seed_mappings() -> tuple[CsvSourceMapping, CsvSourceMapping]:
    """customer.csv as the `dataverse` source (keyed by cid, like silver/customer) and
    residents_adls.csv as configured in match_rules.yaml."""
    residents = load_config().source("residents").csv
    dataverse = CsvSourceMapping(
        source="dataverse", key="cid", columns=residents.columns, modified="Created_date"
    )
    return dataverse, residents


def seed_records(spark):
    """Both seed files through read_crm_csv → the silver standardisation → to_records."""
    frames = []
    for file_name, mapping in zip(
        ("customer.csv", "residents_adls.csv"), seed_mappings(), strict=True
    ):
        table, rejected = read_crm_csv((SAMPLE_DATA / file_name).read_bytes(), file_name, mapping)
        assert rejected == []
        silver = standardize_customers(spark.createDataFrame(table))
        frames.append(to_records(silver, mapping.source, "source_key", "modified"))
    return frames[0].unionByName(frames[1])


def seed_entity(records):
    """The seed truth as an entity column: residents cid 2000+i is customer cid i (verified
    in the files: same name, e-mail, gender and date of birth for all 140). Everyone else is
    their own person, including the 14 e-mails shared by two records (see docs/unify.md)."""
    cid = F.col("source_key").cast("int")
    planted = (F.col("source") == "residents") & cid.between(2000, 2139)
    own = F.concat_ws("/", "source", "source_key")
    customer = F.concat(F.lit("dataverse/"), (cid - 2000).cast("string"))
    return records.withColumn("entity", F.when(planted, customer).otherwise(own))
