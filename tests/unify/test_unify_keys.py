"""Normalisation helpers, similarity functions and the uuid5 expression on small known inputs."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pyspark.sql import functions as F

from customer360.unify import normalize_email, normalize_name, normalize_phone, unified_id
from customer360.unify.ids import uuid5_column
from customer360.unify.keys import node_id
from customer360.unify.similarity import python_similarity, similarity

pytestmark = pytest.mark.spark


def test_normalisers(spark):
    names = [
        ("  Zoë  O'Brien-Smith ", "zoe obrien smith"),
        ("Sigurðsson", "sigurdsson"),
        ("Hana'i  Sharbatly", "hanai sharbatly"),
        ("ÆSA Ørsted", "aesa orsted"),
        ("José\u0301", "jose"),  # a combining accent left after the precomposed one
        ("Ɗanjuma Ọkafọr", "danjuma okafor"),
        ("Shani Bar-Niv", "shani bar niv"),
        (" -- ", None),
        (None, None),
    ]
    emails = [
        (" Ann.Lee+News@Contoso.COM ", "ann.lee@contoso.com"),
        ("bo@x.com", "bo@x.com"),
        ("+tag@x.com", None),  # nothing left of the local part
        ("no-at-sign", None),
        ("a@b@c", None),
        (None, None),
    ]
    phones = [("+18015550100", "801-555-0100", "+18015550100"), (None, "(06) 123-45", "0612345"),
              (None, "12-34", None), (None, None, None)]  # fmt: skip
    rows = max(len(names), len(emails), len(phones))
    df = spark.createDataFrame(
        [
            (
                names[i][0] if i < len(names) else None,
                emails[i][0] if i < len(emails) else None,
                phones[i][0] if i < len(phones) else None,
                phones[i][1] if i < len(phones) else None,
                i,
            )
            for i in range(rows)
        ],
        "name string, email string, e164 string, phone string, i int",
    )
    out = (
        df.select(
            "i",
            normalize_name(F.col("name")).alias("n"),
            normalize_email(F.col("email")).alias("e"),
            normalize_phone(F.col("e164"), F.col("phone")).alias("p"),
        )
        .orderBy("i")
        .collect()
    )
    assert [r.n for r in out] == [expected for _, expected in names]
    assert [r.e for r in out[: len(emails)]] == [expected for _, expected in emails]
    assert [r.p for r in out[: len(phones)]] == [expected for *_, expected in phones]


def test_similarity_methods_and_uuid5(spark):
    cases = [
        ("jaro_winkler", "martha", "marhta", 0.9611),
        ("jaro_winkler", "luca", "luca", 1.0),
        ("jaro_winkler", "ann", None, None),
        ("token_sort", "lee ann", "ann lee", 1.0),
        ("token_sort", "ann lee", "ann leigh", 0.6667),
        ("levenshtein", "kitten", "sitting", 0.5714),
        ("exact", "a", "a", 1.0),
        ("exact", "a", "b", 0.0),
        ("exact", None, None, None),
    ]
    df = spark.createDataFrame(
        [(i, m, a, b) for i, (m, a, b, _) in enumerate(cases)],
        "i int, method string, a string, b string",
    )
    columns = [
        F.when(F.col("method") == m, similarity(m, F.col("a"), F.col("b")))
        for m in dict.fromkeys(c[0] for c in cases)
    ]
    got = df.select("i", F.coalesce(*columns).alias("s")).orderBy("i").collect()
    assert [r.s for r in got] == [c[3] for c in cases]
    assert python_similarity("jaro_winkler", "martha", "marhta") == 0.9611
    assert python_similarity("token_sort", "lee ann", "ann leigh") == 0.6667
    assert python_similarity("levenshtein", "kitten", "sitting") == 0.5714

    dates = [
        (dt.date(1980, 5, 9), dt.date(1980, 5, 9), 1.0),
        (dt.date(1980, 5, 9), dt.date(1980, 9, 5), 0.9),  # day and month swapped
        (dt.date(1980, 5, 9), dt.date(1980, 5, 8), 0.875),  # one digit
        (dt.date(1981, 2, 7), dt.date(2000, 8, 29), 0.125),
        (dt.date(1980, 5, 9), None, None),
    ]
    names = ["dataverse/0", "résidents/2000", "x/ключ", ""]
    dd = spark.createDataFrame(
        [(i, a, b, names[i] if i < len(names) else "n") for i, (a, b, _) in enumerate(dates)],
        "i int, a date, b date, name string",
    )
    got = (
        dd.select("i", similarity("date", F.col("a"), F.col("b")).alias("s"),
                  uuid5_column(F.col("name")).alias("u"),
                  uuid5_column(F.col("name"), uuid.NAMESPACE_DNS).alias("u_dns"))
        .orderBy("i").collect()
    )  # fmt: skip
    assert [r.s for r in got] == [d[2] for d in dates]
    namespace = uuid.UUID("a23debe6-9f4e-572c-86b9-e39666dbe4d9")
    for row, name in zip(got, [*names, "n"], strict=True):
        assert row.u == str(uuid.uuid5(namespace, name))
        assert row.u_dns == str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
    assert unified_id("dataverse", "0") == "5a1f29cc-ab48-5e41-8a7a-ad4284472ccb"


def test_node_ids_sort_like_source_key_tuples(spark):
    keys = [("a", "z"), ("ab", "a"), ("a", "b c"), ("a-b", "0"), ("a.b", "0"), ("A", "9")]
    df = spark.createDataFrame(keys, "source string, source_key string")
    ordered = df.orderBy(node_id(F.col("source"), F.col("source_key"))).collect()
    assert [(r.source, r.source_key) for r in ordered] == sorted(keys)
