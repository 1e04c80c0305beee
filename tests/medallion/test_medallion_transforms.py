"""Unit tests of the pure medallion transforms on small hand-made data with known answers."""

import datetime as dt

import pytest
from pyspark.sql import functions as F

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.transforms.customer import split_valid, standardize_customers
from customer360.transforms.dataverse import (
    as_versions,
    current_state,
    history_chains,
    live_ids,
    strip_prefix,
)
from customer360.transforms.finance import monthly_finance, parse_finance_csv
from customer360.transforms.profile import (
    SegmentRules,
    build_profile,
    churn_per_profile,
    dataverse_facts,
    finance_measures,
    segment_memberships,
)
from customer360.transforms.profile_inputs import segment_rows

pytestmark = pytest.mark.spark
T = dt.datetime


def _raw(spark, rows):
    return spark.createDataFrame(
        rows, "Id string, SinkModifiedOn timestamp, versionnumber long, IsDelete boolean, v string"
    )


def test_latest_version_wins_delete_wins_and_recreate_revives(spark):
    utc = dt.UTC
    raw = _raw(
        spark,
        [
            ("a", T(2024, 1, 1, tzinfo=utc), 1, None, "a1"),
            ("a", T(2024, 1, 2, tzinfo=utc), 2, None, "a2"),
            ("b", T(2024, 1, 1, tzinfo=utc), 1, None, "b1"),
            ("b", T(2024, 1, 3, tzinfo=utc), 5, True, None),  # deleted
            ("c", T(2024, 1, 1, tzinfo=utc), 1, None, "c1"),
            ("c", T(2024, 1, 2, tzinfo=utc), 2, True, None),
            ("c", T(2024, 1, 4, tzinfo=utc), 3, None, "c3"),  # re-created
            ("d", T(2024, 1, 5, tzinfo=utc), 7, None, "d7"),
            ("d", T(2024, 1, 5, tzinfo=utc), 7, True, None),  # same instant: the delete wins
            ("a", T(2024, 1, 2, tzinfo=utc), 2, None, "a2"),  # exported twice
        ],
    )
    history = history_chains(as_versions(raw))
    assert history.count() == 9
    current = {r.Id: r.v for r in current_state(history).collect()}
    assert current == {"a": "a2", "c": "c3"}
    chain_c = history.filter("Id = 'c'").orderBy("valid_from").collect()
    assert [(r.is_deleted, r.is_current) for r in chain_c] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert chain_c[0].valid_to == chain_c[1].valid_from
    assert sorted(r.Id for r in live_ids(raw).collect()) == ["a", "c"]


def test_strip_prefix_only_touches_prefixed_columns(spark):
    df = spark.createDataFrame([(1, "x", "y")], "crc33_cid int, crc33_email string, Id string")
    assert strip_prefix(df, "crc33_").columns == ["cid", "email", "Id"]


def _customers(spark, rows):
    schema = (
        "Id string, cid long, firstname string, lastname string, name string, email string, "
        "telephone string, country string, postcode string, gender string, dateofbirth timestamp"
    )
    return spark.createDataFrame(rows, schema)


def test_standardize_cleans_values(spark):
    dob = dt.datetime(1990, 5, 17, tzinfo=dt.UTC)
    df = _customers(
        spark,
        [
            ("1", 1, "  Ann ", "Lee", "Ann Lee", " ANN@X.COM ", "801-555-0100", "United States",
             "6040", "Female", dob),
            ("2", 2, "Bo", None, "Bo", "bo@x.com", "+44 20 7946 0958", "UK", "SW1A 1AA",
             "Gender neutral", None),
            ("3", 3, "Cy", "Z", "Cy Z", "cy@x.com", "020 7946 0958", "gb", "06040", "m", None),
            ("4", 4, "Di", "Q", "Di Q", "di@x.com", "12", "Narnia", None, "robot", None),
        ],
    )  # fmt: skip
    out = {r.Id: r for r in standardize_customers(df).collect()}
    assert out["1"].firstname == "Ann" and out["1"].email == "ann@x.com"
    assert out["1"].telephone_e164 == "+18015550100" and out["1"].country_code == "US"
    assert out["1"].postcode == "06040"  # leading zero restored for a US ZIP
    assert out["1"].gender == "female" and out["1"].dateofbirth == dt.date(1990, 5, 17)
    assert out["2"].telephone_e164 == "+442079460958" and out["2"].gender == "non_binary"
    assert out["3"].telephone_e164 == "+442079460958" and out["3"].country_code == "GB"
    assert out["3"].postcode == "06040" and out["3"].gender == "male"
    assert out["4"].telephone_e164 is None and out["4"].country_code is None
    assert out["4"].gender == "other" and out["4"].telephone == "12"  # raw kept


def test_split_valid_puts_every_row_in_exactly_one_place(spark):
    df = standardize_customers(
        _customers(
            spark,
            [
                ("1", 1, "A", "B", "A B", "a@b.co", None, "US", None, None, None),
                ("2", 2, None, None, None, "not-an-email", None, "US", None, None, None),
                (
                    "3",
                    None,
                    "C",
                    None,
                    None,
                    "c@d.co",
                    None,
                    "US",
                    None,
                    None,
                    dt.datetime(1850, 1, 1, tzinfo=dt.UTC),
                ),
            ],
        )
    )
    valid, quarantined = split_valid(df, today=dt.date(2024, 1, 1))
    assert [r.Id for r in valid.collect()] == ["1"]
    rules = {r.Id: sorted(r.failed_rules) for r in quarantined.collect()}
    assert rules == {
        "2": ["email_valid", "name_present"],
        "3": ["cid_present", "dateofbirth_plausible"],
    }


def test_finance_parser_reads_cr_only_and_rejects_bad_rows():
    lines = ["cid,month,income,spend", "1,2024-01,100.5,20", "2,2024-13,1,1", "x,2024-01,1,1"]
    data = ("\r".join([*lines, "3,,,-5", "4,2024-02,,7"]) + "\r").encode()
    table, rejected = parse_finance_csv(data, "f.csv")
    assert table.column("cid").to_pylist() == [1, 4]
    assert [str(v) for v in table.column("income").to_pylist()] == ["100.50", "None"]
    assert [(r.line, r.reason) for r in rejected] == [
        (3, "month '2024-13' is not yyyy-MM"),
        (4, "cid 'x' is not an integer"),
        (5, "spend '-5' must be a non-negative amount"),
    ]
    with pytest.raises(ValueError, match=r"g\.csv: header .* lacks required column"):
        parse_finance_csv(b"id,spend\n1,2\n", "g.csv")


def test_monthly_finance_latest_drop_wins_and_undated_files_use_drop_month(spark):
    rows = [
        (1, None, None, 10.0, "spend.csv", 2, "2024-03-05"),
        (1, "2024-03", 100.0, 30.0, "monthly.csv", 2, "2024-03-09"),
        (1, "2024-02", 100.0, 20.0, "monthly.csv", 3, "2024-03-09"),
        (2, None, None, 5.0, "spend.csv", 3, "2024-03-05"),
    ]
    bronze = spark.createDataFrame(
        rows,
        "cid long, month string, income double, spend double, _source_file string, "
        "_source_line long, _drop_day string",
    )
    got = {(r.cid, r.month): r.spend for r in monthly_finance(bronze).collect()}
    assert got == {(1, "2024-03"): 30.0, (1, "2024-02"): 20.0, (2, "2024-03"): 5.0}


MERGED_DDL = (
    "unified_customer_id string, firstname string, lastname string, name string, "
    "gender string, email string, telephone string, telephone_e164 string, "
    "streetaddress string, city string, state string, postcode string, country string, "
    "country_code string, dateofbirth date, record_count int, sources array<string>, "
    "source_records array<string>, last_modified_at timestamp, survivorship map<string,string>"
)


def test_profile_measures_segments_churn_and_flags(spark, tmp_path):
    """u1 = Dataverse cids 1 and 3 (one person, two records) + a residents record; u2 = cid 2;
    u3 = a residents-only person sharing u2's e-mail."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "age_bands: [{name: young, min: 0, max: 29}, {name: older, min: 30, max: 200}]\n"
        "value_segment: [{name: big, when: 'avg_monthly_spend >= 50'},\n"
        "                {name: small, when: 'true'}]\n"
        "life_stage_segment: [{name: any, when: 'true'}]\n"
        "extra_segments: [{name: new_customer, when: 'tenure_years < 1'}]\n"
    )
    rules = SegmentRules.load(rules_file)
    utc = dt.UTC
    merged = spark.createDataFrame(
        [
            ("u1", "A", None, "A", "female", "a@x.co", "1", "+11234567890", "s", "c", "s", "p",
             "US", "US", dt.date(2000, 1, 1), 3, ["dataverse", "residents"],
             ["dataverse/1", "dataverse/3", "residents/9"], None, {}),
            ("u2", "B", "B", "B", "male", "same@x.co", None, None, "s", None, "s", "p",
             "US", "US", dt.date(1980, 1, 1), 1, ["dataverse"], ["dataverse/2"], None, {}),
            ("u3", "C", "C", "C", None, "same@x.co", None, None, None, "c", None, None,
             None, None, None, 1, ["residents"], ["residents/8"], None, {}),
        ],
        MERGED_DDL,
    )  # fmt: skip
    links = spark.createDataFrame(
        [("u1", "1"), ("u1", "3"), ("u2", "2")], "unified_customer_id string, source_key string"
    )
    customers = spark.createDataFrame(
        [(1, "i1", dt.datetime(2023, 6, 1, tzinfo=utc)),
         (3, "i3", dt.datetime(2023, 9, 1, tzinfo=utc)),
         (2, "i2", dt.datetime(2020, 1, 1, tzinfo=utc))],
        "cid long, Id string, createdon timestamp",
    )  # fmt: skip
    first_seen = spark.createDataFrame(
        [("u1", dt.datetime(2023, 1, 1, tzinfo=utc)), ("u3", dt.datetime(2024, 1, 1, tzinfo=utc))],
        "unified_customer_id string, _first_seen timestamp",
    )
    monthly = (
        spark.createDataFrame(
            [("1", "2024-01", 200.0, 100.0), ("1", "2024-02", 200.0, 0.0),
             ("3", "2024-01", None, 20.0), ("2", "2024-01", 100.0, 10.0)],
            "source_key string, month string, income double, spend double",
        )
        .withColumn("income", F.col("income").cast("decimal(18,2)"))
        .withColumn("spend", F.col("spend").cast("decimal(18,2)"))
        .join(links, "source_key")
    )  # fmt: skip
    churn = churn_per_profile(
        links,
        spark.createDataFrame(
            [(1, 0.2, "low"), (3, 0.7, "high"), (2, 0.4, "medium")],
            "cid long, churn_probability double, churn_risk_band string",
        ),
    )
    as_of = F.lit(dt.datetime(2024, 3, 1, tzinfo=utc)).cast("timestamp")
    facts = dataverse_facts(links, customers)
    measures = finance_measures(monthly, key="unified_customer_id")
    built = build_profile(merged, facts, first_seen, measures, churn, as_of, rules)
    profile = {r.unified_customer_id: r for r in built.collect()}
    one, two, three = profile["u1"], profile["u2"], profile["u3"]
    # Both Dataverse records' January spend adds up: 120 in January, 0 in February.
    assert float(one.total_spend) == 120.0 and float(one.avg_monthly_spend) == 60.0
    assert one.months_active == 1 and one.spend_to_income_ratio == 0.3
    assert (one.customer_id, one.cid, one.dataverse_cids) == ("i1", 1, [1, 3])
    assert one.created_on == dt.datetime(2023, 1, 1)  # the residents record is older
    assert (one.churn_probability, one.churn_risk_band) == (0.7, "high")  # the riskiest member
    assert one.age == 24 and one.age_band == "young" and one.value_segment == "big"
    assert two.age == 44 and two.age_band == "older" and two.value_segment == "small"
    assert one.tenure_years == 1.17 and two.tenure_years == 4.17
    assert three.cid is None and three.dq_no_finance and three.churn_probability is None
    assert three.tenure_years == 0.17 and three.value_segment == "small"
    assert not one.dq_duplicate_email and two.dq_duplicate_email and three.dq_duplicate_email
    assert one.dq_missing_lastname and not two.dq_missing_lastname and two.dq_missing_city
    members = segment_memberships(built, rules).collect()
    extra = sorted(r.unified_customer_id for r in members if r.segment == "new_customer")
    assert extra == ["u3"] and len(members) == 3 + 3 + 2 + 1  # u3 has no age band
    # The driver's version (incremental updates, one-machine rebuilds): the same rows and order.
    on_driver = segment_rows(spark_to_arrow(built), rules)
    assert on_driver.equals(spark_to_arrow(segment_memberships(built, rules)))
    without_churn = build_profile(merged, facts, first_seen, measures, None, as_of, rules)
    assert without_churn.filter("churn_probability IS NOT NULL").count() == 0


def test_segment_rules_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("age_bands: []\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: invalid segment rules"):
        SegmentRules.load(bad)


def test_finance_parser_line_numbers_survive_blank_lines_and_field_count_errors():
    data = b"\xef\xbb\xbfcid,spend\r\n1,5\r\n\r\n2,6,7\r\n\r\n3,1.234\r\n4,8\r\n"
    table, rejected = parse_finance_csv(data, "crlf.csv")
    assert table.column("cid").to_pylist() == [1, 4]
    assert table.column("_source_line").to_pylist() == [2, 7]
    assert [(r.line, r.raw, r.reason) for r in rejected] == [
        (4, "2,6,7", "has 3 fields, the header has 2"),
        (6, "3,1.234", "spend '1.234' is not an amount (max 2 decimals)"),
    ]
