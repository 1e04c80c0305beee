"""A configured CSV source (second CRM system): bronze parsing with rejects, then the silver rules
(newest row per key, standardisation, validation into a quarantine)."""

import datetime as dt

import pytest

from customer360.transforms.crm import latest_per_key, split_valid, standardize_source
from customer360.unify import CsvSourceMapping, read_crm_csv

pytestmark = pytest.mark.spark

MAPPING = CsvSourceMapping(
    source="shop",
    key="Customer No",
    modified="Updated",
    columns={"firstname": "First", "lastname": "Last", "email": "Mail", "telephone": "Phone",
             "country": "Country", "dateofbirth": "Born"},
)  # fmt: skip
FILE = (
    "Customer No,First,Last,Mail,Phone,Country,Born,Updated\r\n"
    "7, Ann ,Lee, ANN@X.CO ,(801) 555-0123,USA,1990-02-03,2024-01-01\r\n"
    "8,Bo,,not-an-email,,Canada,1985-05-06,2024-01-01\r\n"
    "9,,,,,,,2024-01-01\r\n"
    "10,Cy,Doe,cy@x.co,,,2150-01-01,2024-01-01\r\n"
    "11,Di,Roe,di@x.co,,,1970-13-01,2024-01-01\r\n"
    "12,Ed,Poe,ed@x.co\r\n"
)


def _bronze(spark, files: list[tuple[str, str, str]]):
    """(content, file name, drop day) → the rows bronze/crm_<source> holds for them."""
    tables = []
    for content, name, day in files:
        table, _ = read_crm_csv(content.encode(), name, MAPPING)
        tables.append(
            spark.createDataFrame(table.to_pandas()).selectExpr("*", f"'{day}' AS _drop_day")
        )
    out = tables[0]
    for t in tables[1:]:
        out = out.unionByName(t)
    return out


def test_bronze_parse_keeps_file_line_and_rejects_with_reasons():
    table, rejected = read_crm_csv(FILE.encode(), "crm2/shop.csv", MAPPING)
    assert table.column("source_key").to_pylist() == ["7", "8", "9", "10"]
    assert table.column("_source_line").to_pylist() == [2, 3, 4, 5]
    assert [(r.file, r.line) for r in rejected] == [("crm2/shop.csv", 6), ("crm2/shop.csv", 7)]
    assert "dateofbirth '1970-13-01' is not an ISO date" in rejected[0].reason
    assert rejected[1].reason == "has 4 fields, the header has 8"


def test_silver_takes_the_newest_row_standardises_and_quarantines(spark):
    later = (
        "Customer No,First,Last,Mail,Phone,Country,Born,Updated\n"
        "7,Ann,Lee,ann@new.co,,USA,1990-02-03,2024-02-01\n"
    )
    bronze = _bronze(spark, [(FILE, "a.csv", "2024-01-01"), (later, "b.csv", "2024-02-02")])
    rows = standardize_source(latest_per_key(bronze))
    valid, quarantined = split_valid(rows, today=dt.date(2025, 1, 1))
    good = {r.source_key: r for r in valid.collect()}
    bad = {r.source_key: sorted(r.failed_rules) for r in quarantined.collect()}
    assert sorted(good) == ["7"] and good["7"].email == "ann@new.co"  # the newer drop wins
    assert good["7"].firstname == "Ann" and good["7"].country_code == "US"
    assert good["7"].modified_at == dt.datetime(2024, 2, 1)
    assert good["7"].gender is None and good["7"].city is None  # not mapped: null
    assert bad == {
        "8": ["email_valid"],
        "9": ["name_present"],
        "10": ["dateofbirth_plausible"],
    }
    first = standardize_source(latest_per_key(_bronze(spark, [(FILE, "a.csv", "2024-01-01")])))
    ann = first.filter("source_key = '7'").first()
    assert (ann.email, ann.telephone_e164) == ("ann@x.co", "+18015550123")
