"""Each match rule of match_rules.yaml on tiny hand-made records; blocking limits; evaluate()."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from unify_builders import rec, records_df

from customer360.unify import (
    best_pairs,
    candidate_pairs,
    evaluate,
    load_config,
    oversized_blocks,
    score_pairs,
    to_records,
    validate_records,
)
from customer360.unify.similarity import python_similarity

pytestmark = pytest.mark.spark

RECORDS = [
    # email_dob (and name_dob_fuzzy, email_name_dob_typo): same person, new phone
    rec("dataverse", "1", firstname="Ann", lastname="Lee", name="Ann Lee",
        email="ann.lee@x.com", dateofbirth="1980-05-09", telephone_e164="+15550001111"),
    rec("residents", "1", firstname="Ann", lastname="Lee", name="Ann Lee",
        email="Ann.Lee+shop@x.com", dateofbirth="1980-05-09", telephone_e164="+15550002222"),
    # phone_name_dob (and phone_name_fuzzy, name_dob_fuzzy): new e-mail
    rec("dataverse", "2", firstname="Bob", lastname="Stone", name="Bob Stone",
        email="bob@x.com", dateofbirth="1975-01-02", telephone_e164="+15550003333"),
    rec("residents", "2", firstname="Bob", lastname="Stone", name="Bob Stone",
        email="bob@y.com", dateofbirth="1975-01-02", telephone_e164="+15550003333"),
    # the same household phone, another person: no match
    rec("dataverse", "5", firstname="Eve", lastname="Stone", name="Eve Stone",
        email="eve@x.com", dateofbirth="1975-09-09", telephone_e164="+15550003333"),
    # name_dob_fuzzy: typos in both names, nothing else shared
    rec("dataverse", "3", firstname="Catherine", lastname="Miller", name="Catherine Miller",
        email="cat@x.com", dateofbirth="1990-03-04"),
    rec("residents", "3", firstname="Catherin", lastname="Millar", name="Catherin Millar",
        email="cm@y.com", dateofbirth="1990-03-04"),
    # a nickname with the same date of birth: close enough for a human to look at
    rec("residents", "8", firstname="Cathy", lastname="Miller", name="Cathy Miller",
        dateofbirth="1990-03-04"),
    # email_name_dob_typo: day and month swapped
    rec("dataverse", "4", firstname="Dan", lastname="Wu", name="Dan Wu",
        email="dan.wu@x.com", dateofbirth="1985-06-07"),
    rec("residents", "4", firstname="Dan", lastname="Wu", name="Dan Wu",
        email="dan.wu@x.com", dateofbirth="1985-07-06"),
    # one e-mail, two dates of birth: review, never a match
    rec("dataverse", "6", firstname="Kert", lastname="Jogi", name="Kert Jogi",
        email="kert.jogi@x.com", dateofbirth="1997-10-30"),
    rec("dataverse", "7", firstname="Kert", lastname="Jogi", name="Kert Jogi",
        email="kert.jogi@x.com", dateofbirth="1999-09-17"),
]  # fmt: skip


def _mean(*values: float) -> float:
    return round(sum(values) / len(values), 4)


def test_each_rule_scores_and_decides(spark):
    # The five exact-score rules; the two recall rules (nickname table, Jaro-Winkler) are
    # covered by tests/unify/test_explain.py and test_hard_cases.py (with them, Cathy and
    # Catherine Miller, same birthday, merge: Cathy is a nickname of Catherine).
    rules = load_config().rules[:5]
    scored_df = score_pairs(candidate_pairs(records_df(spark, RECORDS), rules), rules).cache()
    scored = scored_df.collect()
    got = {
        (r.rule, f"{r.left_source}/{r.left_key}", f"{r.right_source}/{r.right_key}"): (
            r.score,
            r.decision,
        )
        for r in scored
    }
    lev, ts = "levenshtein", "token_sort"
    catherine = _mean(
        python_similarity(lev, "catherine", "catherin"),
        python_similarity(lev, "miller", "millar"),
        python_similarity(ts, "catherine miller", "catherin millar"),
    )
    cathy = _mean(
        python_similarity(lev, "catherine", "cathy"),
        python_similarity(lev, "miller", "miller"),
        python_similarity(ts, "catherine miller", "cathy miller"),
    )
    catherin_cathy = _mean(
        python_similarity(lev, "catherin", "cathy"),
        python_similarity(lev, "millar", "miller"),
        python_similarity(ts, "catherin millar", "cathy miller"),
    )
    # same last name and phone; 19750102 vs 19750909: two digits differ
    eve_bob = _mean(python_similarity(lev, "bob", "eve"), 1.0, 0.75)
    assert (catherine, cathy, catherin_cathy, eve_bob) == (0.8657, 0.7106, 0.6667, 0.5833)
    assert got == {
        ("email_dob", "dataverse/1", "residents/1"): (1.0, "match"),
        ("email_dob", "dataverse/4", "residents/4"): (None, "no_match"),
        ("email_dob", "dataverse/6", "dataverse/7"): (None, "no_match"),
        ("phone_name_dob", "dataverse/2", "residents/2"): (1.0, "match"),
        ("name_dob_fuzzy", "dataverse/1", "residents/1"): (1.0, "match"),
        ("name_dob_fuzzy", "dataverse/2", "residents/2"): (1.0, "match"),
        ("name_dob_fuzzy", "dataverse/3", "residents/3"): (catherine, "match"),
        ("name_dob_fuzzy", "dataverse/3", "residents/8"): (cathy, "review"),
        ("name_dob_fuzzy", "residents/3", "residents/8"): (catherin_cathy, "review"),
        ("email_name_dob_typo", "dataverse/1", "residents/1"): (1.0, "match"),
        ("email_name_dob_typo", "dataverse/4", "residents/4"): (0.95, "match"),
        ("email_name_dob_typo", "dataverse/6", "dataverse/7"): (0.6875, "review"),
        ("phone_name_fuzzy", "dataverse/2", "residents/2"): (1.0, "match"),
        ("phone_name_fuzzy", "dataverse/2", "dataverse/5"): (eve_bob, "no_match"),
        ("phone_name_fuzzy", "dataverse/5", "residents/2"): (eve_bob, "no_match"),
    }

    pairs = {
        (r.left_key, r.right_key, r.rule, r.score, tuple(r.matched_rules))
        for r in best_pairs(scored_df).collect()
    }
    assert pairs == {
        ("1", "1", "email_dob", 1.0, ("email_dob", "name_dob_fuzzy", "email_name_dob_typo")),
        ("2", "2", "phone_name_dob", 1.0,
         ("phone_name_dob", "name_dob_fuzzy", "phone_name_fuzzy")),
        ("3", "3", "name_dob_fuzzy", catherine, ("name_dob_fuzzy",)),
        ("4", "4", "email_name_dob_typo", 0.95, ("email_name_dob_typo",)),
    }  # fmt: skip


def test_oversized_blocks_are_skipped_and_reported(spark):
    rule = dataclasses.replace(load_config().rules[0], max_block_size=2)
    shared = {"email": "info@x.com", "dateofbirth": "1970-01-01"}
    records = records_df(
        spark,
        [
            rec("s", "1", **shared),
            rec("s", "2", **shared),
            rec("s", "3", **shared),  # three share the key: over the limit of 2
            rec("s", "4", email="pair@x.com", dateofbirth="1970-01-01"),
            rec("s", "5", email="pair@x.com", dateofbirth="1970-01-01"),
            rec("s", "6", dateofbirth="1970-01-01"),  # no e-mail: never blocked by it
            rec("s", "7", dateofbirth="1970-01-01"),
        ],
    )
    pairs = candidate_pairs(records, [rule]).collect()
    assert [(p.left_key, p.right_key) for p in pairs] == [("4", "5")]
    skipped = oversized_blocks(records, [rule]).collect()
    assert [tuple(r) for r in skipped] == [("email_dob", "email_key", "info@x.com", 3)]


def test_unknown_rule_field_is_refused(spark):
    rule = dataclasses.replace(load_config().rules[0], require_equal=("email_key", "shoe_size"))
    with pytest.raises(ValueError, match=r"rule 'email_dob': unknown field\(s\) \['shoe_size'\]"):
        candidate_pairs(records_df(spark, RECORDS[:2]), [rule])


def test_evaluate_counts_pairs_once_in_either_orientation(spark):
    cols = "rule string, left_source string, left_key string, right_source string, right_key string"
    found = spark.createDataFrame(
        [
            ("a", "s", "1", "t", "1"),  # true
            ("b", "t", "1", "s", "1"),  # the same pair, reversed, by another rule
            ("b", "s", "2", "t", "9"),  # false
            ("a", "s", "3", "t", "3"),  # true
        ],
        cols,
    )
    truth = spark.createDataFrame(
        [("s", "1", "t", "1"), ("t", "3", "s", "3"), ("s", "4", "t", "4"), ("s", "5", "t", "5")],
        "left_source string, left_key string, right_source string, right_key string",
    )
    result = evaluate(found, truth)
    assert {k: v for k, v in result.items() if k != "per_rule"} == {
        "pairs": 3,
        "truth_pairs": 4,
        "true_positives": 2,
        "false_positives": 1,
        "false_negatives": 2,
        "precision": 0.666667,
        "recall": 0.5,
        "f1": 0.571429,
        "false_positive_sample": [("s/2", "t/9")],
        "false_negative_sample": [("s/4", "t/4"), ("s/5", "t/5")],
    }
    assert result["per_rule"] == {
        "a": {"pairs": 2, "true_positives": 2, "precision": 1.0, "recall": 0.5, "f1": 0.666667},
        "b": {"pairs": 2, "true_positives": 1, "precision": 0.5, "recall": 0.25, "f1": 0.333333},
    }


def test_records_from_silver_and_their_validation(spark):
    silver = spark.createDataFrame(
        [(7, " Ann ", "ann@x.com", "1980-05-09", "2024-01-02 03:04:05")],
        "cid long, name string, email string, dateofbirth string, changed string",
    )
    row = to_records(silver, "shop", "cid", "changed").first()
    assert (row.source, row.source_key, row.name, row.email, row.firstname) == (
        "shop", "7", " Ann ", "ann@x.com", None,
    )  # fmt: skip
    assert (row.dateofbirth, row.modified_at) == (
        dt.date(1980, 5, 9), dt.datetime(2024, 1, 2, 3, 4, 5),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"source 'shop': no key column 'id'"):
        to_records(silver, "shop", "id")
    with pytest.raises(ValueError, match="source name 'my shop' is invalid"):
        to_records(silver, "my shop", "cid")

    bad = records_df(
        spark,
        [rec("s", "1"), rec("s", "1"), rec("s", None), rec("t", "2"), rec("t", "2"),
         rec("t", "2"), rec("u/v", "3")],
    )  # fmt: skip
    with pytest.raises(ValueError) as error:
        validate_records(bad)
    assert str(error.value) == (
        "records: invalid source names ['u/v'] (letters, digits, _ . - only); "
        "records without source or source_key (count per source): {'s': 1}; "
        "2 (source, source_key) repeated, e.g. (source, key, count) [('s', '1', 2), ('t', '2', 3)]"
    )
    validate_records(records_df(spark, RECORDS))  # the hand-made records are fine
