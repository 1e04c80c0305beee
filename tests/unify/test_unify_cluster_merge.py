"""Connected components (driver and Spark agree), survivorship, link table, pair table."""

from __future__ import annotations

import datetime as dt

import pytest
from unify_builders import rec, records_df

from customer360.unify import (
    cluster,
    link_table,
    load_config,
    merge_profiles,
    pair_table,
    unified_id,
    union_find,
)
from customer360.unify.config import Survivorship

pytestmark = pytest.mark.spark

PAIR_DDL = (
    "left_source string, left_key string, right_source string, right_key string, "
    "rule string, score double"
)


def test_union_find_roots_are_component_minimums():
    edges = [("e", "d"), ("c", "d"), ("a", "z"), ("b", "c"), ("y", "z"), ("d", "e")]
    assert union_find(edges) == {
        "e": "b", "d": "b", "c": "b", "b": "b", "a": "a", "z": "a", "y": "a",
    }  # fmt: skip
    assert union_find([]) == {}


def test_driver_and_spark_clustering_agree(spark):
    def p(a: str, b: str) -> tuple:
        return (*a.split("/"), *b.split("/"), "r", 1.0)

    pairs = spark.createDataFrame(
        [
            # a chain given out of order: diameter 5, so propagation needs several rounds
            p("s/5", "s/6"), p("s/3", "s/4"), p("s/4", "s/5"), p("s/2", "s/3"),
            p("t/9", "s/2"),
            # a star and a plain pair
            p("u/0", "u/1"), p("u/0", "u/2"), p("u/0", "u/3"),
            p("v/1", "w/1"),
        ],
        PAIR_DDL,
    )  # fmt: skip
    keys = ["s/2", "s/3", "s/4", "s/5", "s/6", "t/9", "u/0", "u/1", "u/2", "u/3", "v/1", "w/1",
            "x/1", "x/10"]  # fmt: skip
    records = records_df(spark, [rec(*k.split("/")) for k in keys])
    results = {}
    for method in ("driver", "spark"):
        rows = cluster(pairs, records, method=method).collect()
        results[method] = {
            f"{r.source}/{r.source_key}": (f"{r.anchor_source}/{r.anchor_key}", r.cluster_size,
                                           r.unified_customer_id)
            for r in rows
        }  # fmt: skip
    assert results["driver"] == results["spark"]
    anchors = {k: v[:2] for k, v in results["driver"].items()}
    chain, star = ("s/2", 6), ("u/0", 4)
    assert anchors == {
        "s/2": chain, "s/3": chain, "s/4": chain, "s/5": chain, "s/6": chain, "t/9": chain,
        "u/0": star, "u/1": star, "u/2": star, "u/3": star,
        "v/1": ("v/1", 2), "w/1": ("v/1", 2), "x/1": ("x/1", 1), "x/10": ("x/10", 1),
    }  # fmt: skip
    assert results["driver"]["t/9"][2] == unified_id("s", "2")
    assert results["driver"]["x/10"][2] == unified_id("x", "10")
    with pytest.raises(ValueError, match="method must be auto, driver or spark"):
        cluster(pairs, records, method="graphframes")


def test_survivorship_links_and_pair_table(spark):
    records = records_df(
        spark,
        [
            rec("crm", "1", firstname="Ann", lastname="Lee", name="Ann Lee", gender="female",
                email="ann@crm.com", telephone="111", telephone_e164="+1111",
                streetaddress="1 Old Rd", city="Oldtown", state="CA", postcode="90001",
                country="United States", country_code="US", dateofbirth="1980-05-09",
                modified_at="2020-01-01T00:00:00"),
            rec("erp", "7", firstname="Ann", lastname="Lee-Smith", name="Ann Lee-Smith",
                email="ann@erp.com", telephone="222", city="Newtown", postcode="10001",
                dateofbirth="1980-05-09", modified_at="2023-06-01T00:00:00"),
            rec("web", "3", firstname="Anne", name="Anne", gender="other",
                dateofbirth="1980-09-05", modified_at="2022-01-01T00:00:00"),
            rec("web", "9", name="Solo"),  # matched nothing, no modified_at
        ],
    )  # fmt: skip
    pairs = spark.createDataFrame(
        [("crm", "1", "erp", "7", "email_dob", 1.0), ("erp", "7", "web", "3", "fuzzy", 0.9)],
        PAIR_DDL,
    )
    clusters = cluster(pairs, records).cache()
    groups = load_config().survivorship.groups
    profiles = merge_profiles(records, clusters, Survivorship(groups, ("crm", "erp", "web")))
    got = {r.unified_customer_id: r.asDict() for r in profiles.collect()}
    ann = got[unified_id("crm", "1")]
    assert {k: v for k, v in ann.items() if k != "survivorship"} == {
        "unified_customer_id": unified_id("crm", "1"),
        # most_complete: as many names as crm/1, but longer
        "firstname": "Ann", "lastname": "Lee-Smith", "name": "Ann Lee-Smith",
        "gender": "female",  # source_priority: crm first
        "email": "ann@crm.com",
        # most_recent, taken whole from erp/7: the newer address without mixing in crm's
        # street and state; the phone without an E.164 form
        "telephone": "222", "telephone_e164": None,
        "streetaddress": None, "city": "Newtown", "state": None, "postcode": "10001",
        "country": None, "country_code": None,
        "dateofbirth": dt.date(1980, 5, 9),  # most_frequent: two records agree
        "record_count": 3,
        "sources": ["crm", "erp", "web"],
        "source_records": ["crm/1", "erp/7", "web/3"],
        "last_modified_at": dt.datetime(2023, 6, 1),  # collected as naive UTC
    }  # fmt: skip
    assert ann["survivorship"] == {
        "name": "erp/7", "gender": "crm/1", "email": "crm/1", "telephone": "erp/7",
        "address": "erp/7", "dateofbirth": "crm/1",
    }  # fmt: skip
    solo = got[unified_id("web", "9")]
    assert (solo["name"], solo["gender"], solo["record_count"]) == ("Solo", None, 1)
    assert solo["survivorship"] == {
        "name": "web/9", "gender": None, "email": None, "telephone": None, "address": None,
        "dateofbirth": None,
    }  # fmt: skip

    links = {(r.source, r.source_key): tuple(r)[3:] for r in link_table(clusters, pairs).collect()}
    assert links == {
        ("crm", "1"): ("email_dob", 1.0, "erp", "7", True, 3),
        ("erp", "7"): ("email_dob", 1.0, "crm", "1", False, 3),
        ("web", "3"): ("fuzzy", 0.9, "erp", "7", False, 3),
        ("web", "9"): (None, None, None, None, True, 1),
    }
    explained = pair_table(pairs, clusters).orderBy("score").collect()
    assert [(r.unified_customer_id, r.left_key, r.rule) for r in explained] == [
        (unified_id("crm", "1"), "7", "fuzzy"),
        (unified_id("crm", "1"), "1", "email_dob"),
    ]
