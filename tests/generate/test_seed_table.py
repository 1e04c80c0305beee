"""The crc33_customer seed table: model, rows from seed_data/customer.csv, and a Spark check."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from customer360.generate.customers import SAMPLE_DATA
from customer360.generate.seed_table import (
    crc33_customer_model,
    customer_id_for_cid,
    customer_rows_from_csv,
)
from customer360.synapse_link import (
    LocalFileSystem,
    SynapseLinkWriter,
    list_export_folders,
    read_entity,
    spark_schema,
)

SEED_CSV = SAMPLE_DATA / "customer.csv"  # the packaged copy of the public sample
EXPORT_TIME = datetime(2024, 1, 5, 10, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def seed_rows() -> list[dict[str, object]]:
    return customer_rows_from_csv(SEED_CSV)


def test_crc33_customer_model_columns_and_types():
    model = crc33_customer_model()

    assert [(a.name, a.data_type) for a in model.attributes] == [
        ("Id", "guid"),
        ("SinkCreatedOn", "dateTime"),
        ("SinkModifiedOn", "dateTime"),
        ("crc33_cid", "int64"),
        ("crc33_firstname", "string"),
        ("crc33_lastname", "string"),
        ("crc33_name", "string"),
        ("crc33_gender", "string"),
        ("crc33_email", "string"),
        ("crc33_telephone", "string"),
        ("crc33_country", "string"),
        ("crc33_city", "string"),
        ("crc33_state", "string"),
        ("crc33_postcode", "string"),
        ("crc33_streetaddress", "string"),
        ("crc33_dateofbirth", "dateTime"),
        ("crc33_source", "string"),
        ("statecode", "int32"),
        ("statuscode", "int32"),
        ("versionnumber", "int64"),
        ("createdon", "dateTimeOffset"),
        ("modifiedon", "dateTime"),
        ("IsDelete", "boolean"),
    ]
    assert (model.name, model.partition_granularity) == ("crc33_customer", "Year")


def test_customer_rows_from_csv(seed_rows):
    first = seed_rows[0]

    assert len(seed_rows) == 1400
    assert first == {
        "Id": customer_id_for_cid(0),
        "crc33_cid": 0,
        "crc33_firstname": "Daleen",
        "crc33_lastname": "du",
        "crc33_name": "Daleen du Plessis",
        "crc33_gender": "Female",
        "crc33_email": "daleen.du.plessis@contoso.com",
        "crc33_telephone": "801-555-0100",
        "crc33_country": "United States",
        "crc33_city": "Washington",
        "crc33_state": "DC",
        "crc33_postcode": "20020",
        "crc33_streetaddress": "12345 Main Street",
        "crc33_source": "Source1",
        "crc33_dateofbirth": datetime(1980, 5, 9, tzinfo=UTC),
        "statecode": 0,
        "statuscode": 1,
        "createdon": datetime(2012, 8, 24, tzinfo=UTC),
        "modifiedon": datetime(2012, 8, 24, tzinfo=UTC),
        "versionnumber": 1,
    }
    assert customer_id_for_cid(0) == "9f9cdd07-377b-53e8-b0cc-cc7b8cbe9b89"  # stable across runs
    assert len({row["Id"] for row in seed_rows}) == 1400
    assert sum(row["crc33_lastname"] is None for row in seed_rows) == 7
    assert sum(row["crc33_city"] is None for row in seed_rows) == 15
    assert any(str(row["crc33_postcode"]).startswith("0") for row in seed_rows)


def test_customer_rows_name_the_bad_line(tmp_path):
    bad = tmp_path / "customer.csv"
    header = SEED_CSV.read_text().splitlines()[0]
    bad.write_text(f"{header}\nA,B,A B,F,e,t,US,C,S,1,St,1980-13-01,2012-08-24,7,S1\n")

    with pytest.raises(ValueError, match=r"customer.csv:2: month must be in 1..12"):
        customer_rows_from_csv(bad)


@pytest.mark.spark
def test_seed_export_reads_back_and_loads_into_spark_with_spark_schema(tmp_path, seed_rows, spark):
    model = crc33_customer_model()
    SynapseLinkWriter(tmp_path).write({model.name: (model, seed_rows)}, export_time=EXPORT_TIME)
    fs = LocalFileSystem(tmp_path)
    (folder,) = list_export_folders(fs)

    result = read_entity(fs, folder, model.name)

    assert result.rejected == []
    assert result.table.num_rows == 1400
    assert sorted(p.name for p in (tmp_path / folder.name / model.name).iterdir()) == [
        f"{year}.csv" for year in range(2011, 2022)
    ]
    frame = spark.createDataFrame(
        result.table.to_pandas(), schema=spark_schema(model, include_ingestion_columns=True)
    )
    rows = frame.where("crc33_cid IN (9, 791)").orderBy("crc33_cid")
    assert [tuple(r) for r in rows.select("crc33_email", "crc33_postcode").collect()] == [
        ("louis.de.wet@contoso.com", "06040"),  # the leading zero survives
        ("kert.jogi@contoso.com", "99507"),
    ]
    assert frame.count() == 1400
