"""read_crm_csv (generic CSV source reader) and match_rules.yaml validation; no Spark."""

from __future__ import annotations

import copy

import pytest
import yaml
from unify_builders import SAMPLE_DATA, seed_mappings

from customer360.unify import CsvSourceMapping, load_config, parse_config, read_crm_csv
from customer360.unify.config import DEFAULT_CONFIG

MAPPING = CsvSourceMapping(
    source="shop",
    key="Customer ID",
    columns={"email": "E-mail", "dateofbirth": "Born", "name": "Name"},
    modified="Changed",
    required=("email",),
)
HEADER = "Customer ID,Name,E-mail,Born,Changed,Ignored\n"


def test_seed_files_parse_completely():
    dataverse, residents = seed_mappings()
    customers, rejected_c = read_crm_csv(
        (SAMPLE_DATA / "customer.csv").read_bytes(), "customer.csv", dataverse
    )
    others, rejected_r = read_crm_csv(
        (SAMPLE_DATA / "residents_adls.csv").read_bytes(), "residents_adls.csv", residents
    )
    assert (customers.num_rows, others.num_rows, rejected_c, rejected_r) == (1400, 740, [], [])
    assert customers.column_names == [
        "source_key", "firstname", "lastname", "name", "gender", "email", "telephone",
        "country", "city", "state", "postcode", "streetaddress", "dateofbirth", "modified",
        "_source_file", "_source_line",
    ]  # fmt: skip
    first = customers.slice(0, 1).to_pylist()[0]
    assert first["source_key"] == "0"
    assert first["name"] == "Daleen du Plessis"
    assert first["postcode"] == "20020"  # text: a leading zero would survive
    assert first["modified"] == "2012-08-24"
    assert first["_source_line"] == 2
    assert others.column("source_key").to_pylist()[-1] == "2139"


def test_line_endings_quotes_trimming_and_blank_values():
    body = (
        "1, Ann Lee ,ANN@x.com,1990-01-02,2024-01-01T10:00:00Z,zz\n"
        '2,"Lee, Bo\nJr",bo@x.com,,2024-01-02,zz\n'
        "\n"
        "3,Cy,cy@x.com, ,,zz\n"
    )
    for text in (HEADER + body, (HEADER + body).replace("\n", "\r\n")):
        table, rejected = read_crm_csv(text.encode(), "shop.csv", MAPPING)
        assert rejected == []
        rows = table.to_pylist()
        assert [r["source_key"] for r in rows] == ["1", "2", "3"]
        assert rows[0]["name"] == "Ann Lee"
        assert rows[0]["email"] == "ANN@x.com"  # case is the silver standardisation's job
        assert rows[1]["name"].replace("\r", "") == "Lee, Bo\nJr"
        assert rows[1]["dateofbirth"] is None
        assert rows[2]["dateofbirth"] is None and rows[2]["modified"] is None
        assert [r["_source_line"] for r in rows] == [2, 4, 6]
    cr_only = (HEADER + "1,Ann,a@x.com,1990-01-02,2024-01-01,zz\n").replace("\n", "\r")
    table, rejected = read_crm_csv(cr_only.encode("utf-8-sig"), "cr.csv", MAPPING)
    assert (table.num_rows, rejected) == (1, [])


def test_bad_rows_are_rejected_with_file_line_and_reason():
    body = (
        "1,Ann,a@x.com,1990-01-02,2024-01-01,zz\n"
        "2,Bo,b@x.com\n"
        ",Cy,c@x.com,1990-01-02,2024-01-01,zz\n"
        "1,Ann again,a2@x.com,1990-01-02,2024-01-01,zz\n"
        "4,Di,,31/12/1990,2024-13-01,zz\n"
        "5,Ed,e@x.com,1991-02-03,2024-01-01,zz\n"
    )
    table, rejected = read_crm_csv((HEADER + body).encode(), "shop.csv", MAPPING)
    assert table.column("source_key").to_pylist() == ["1", "5"]
    assert [(r.file, r.line, r.reason) for r in rejected] == [
        ("shop.csv", 3, "has 3 fields, the header has 6"),
        ("shop.csv", 4, "key column 'Customer ID' is blank"),
        ("shop.csv", 5, "duplicate key '1' (first at line 2)"),
        (
            "shop.csv",
            6,
            "email is blank; dateofbirth '31/12/1990' is not an ISO date; "
            "modified '2024-13-01' is not an ISO date",
        ),
    ]
    assert rejected[0].raw == "2,Bo,b@x.com"


def test_unreadable_files_raise_naming_the_file():
    with pytest.raises(ValueError, match=r"shop.csv: header lacks column\(s\) \['Born'\]"):
        read_crm_csv(b"Customer ID,Name,E-mail,Changed\n1,a,b,c\n", "shop.csv", MAPPING)
    with pytest.raises(ValueError, match=r"latin.csv: not UTF-8 \(byte 50\)"):
        read_crm_csv(HEADER.encode() + b"1,Jos\xe9\n", "latin.csv", MAPPING)
    with pytest.raises(ValueError, match="source name 'my shop' is invalid"):
        read_crm_csv(HEADER.encode(), "x.csv", CsvSourceMapping(source="my shop", key="x"))
    table, rejected = read_crm_csv(b"", "empty.csv", MAPPING)
    assert (table.num_rows, table.num_columns, rejected) == (0, 7, [])


def test_default_configuration_loads():
    config = load_config()
    assert [r.name for r in config.rules] == [
        "email_dob", "phone_name_dob", "name_dob_fuzzy", "email_name_dob_typo",
        "phone_name_fuzzy", "name_variant_dob", "name_variant_near_dob", "rare_name_near_dob",
        "name_postcode_dob",
    ]  # fmt: skip
    variant = config.rules[5].compare[0]
    assert (variant.field, variant.method, variant.at_least) == ("firstname_key", "name_variant",
                                                                 0.85)  # fmt: skip
    fuzzy = config.rules[2]
    assert (fuzzy.threshold, fuzzy.review_threshold, fuzzy.max_block_size) == (0.75, 0.6, 500)
    assert fuzzy.blocking[0] == ("dateofbirth", "substr(lastname_key, 1, 2)")
    assert [s.name for s in config.sources] == ["dataverse", "residents"]
    assert config.survivorship.source_priority == ("dataverse", "residents")
    assert str(config.id_namespace) == "a23debe6-9f4e-572c-86b9-e39666dbe4d9"
    assert config.source("residents").csv.key == "cid"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["matching"]["rules"][2]["compare"][0].update(method="soundalike"),
         "rule 'name_dob_fuzzy': unknown method 'soundalike'"),
        (lambda c: c["matching"]["rules"][2].update(review_threshold=0.9),
         r"review_threshold 0.9 must be in \[0, threshold\)"),
        (lambda c: c["matching"]["rules"][0].update(blocking=[]),
         "needs at least one non-empty blocking key list"),
        (lambda c: c["survivorship"]["groups"].pop(1),
         r"attributes in no group: \['gender'\]"),
        (lambda c: c["survivorship"]["groups"][1]["columns"].append("email"),
         "'email' is in groups 'gender' and 'email'"),
        (lambda c: c["sources"].append({"name": "dataverse"}), "source names must be unique"),
        (lambda c: c.pop("id_namespace"), "missing key 'id_namespace'"),
    ],
)  # fmt: skip
def test_invalid_configuration_is_refused_with_the_reason(change, message):
    raw = copy.deepcopy(yaml.safe_load(DEFAULT_CONFIG.read_text()))
    change(raw)
    with pytest.raises(ValueError, match=message):
        parse_config(raw, "rules.yaml")
