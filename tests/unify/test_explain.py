"""Explaining a pair: shared blocking keys, each comparison's level and weight, the deciding
rule; computed with the run's own functions (no Spark needed)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from customer360.unify.explain import explain_pair, explain_references
from customer360.unify.schema import RECORD_COLUMNS

BEN = dict(source="dataverse", source_key="1", firstname="Benjamin", lastname="Okafor",
           name="Benjamin Okafor", dateofbirth=dt.date(1980, 3, 7), postcode="98101",
           email="ben.okafor@x.com")  # fmt: skip
BEN2 = dict(source="residents", source_key="2", firstname="Ben", lastname="Okafr",
            name="Ben Okafr", dateofbirth=dt.date(1980, 3, 7), postcode="98101")  # fmt: skip
# A household member: same last name, mailbox and postcode, another first name and birthday.
WIFE = dict(source="residents", source_key="3", firstname="Ngozi", lastname="Okafor",
            name="Ngozi Okafor", dateofbirth=dt.date(1982, 11, 2), postcode="98101",
            email="ben.okafor@x.com")  # fmt: skip
STRANGER = dict(source="residents", source_key="4", firstname="Ann", lastname="Lee",
                name="Ann Lee", dateofbirth=dt.date(1990, 1, 1))  # fmt: skip


def _rule(explained: dict, name: str) -> dict:
    return next(r for r in explained["rules"] if r["rule"] == name)


def test_nickname_and_typo_pair_is_explained_as_a_match():
    explained = explain_pair(BEN, BEN2)
    assert explained["decision"] == "match"
    # Both name rules match; the near-date rule (postcode agreeing too) scores higher.
    assert explained["deciding_rule"] == "name_variant_near_dob"
    shared = {(b["rule"], b["blocking"]) for b in explained["shared_blocks"]}
    assert ("name_variant_dob", "dateofbirth, postcode_key") in shared
    rule = _rule(explained, "name_variant_dob")
    assert rule["decision"] == "match"
    assert _rule(explained, "name_variant_near_dob")["score"] > rule["score"]
    first = next(c for c in rule["comparisons"] if c["field"] == "firstname_key")
    assert first["level"] == "nickname or full form (name table)"
    assert first["similarity"] == 0.95 and first["weight"] == 1.0
    assert rule["require_equal"] == {"dateofbirth": True}
    assert rule["score"] >= rule["threshold"]
    # The older Levenshtein rule alone would only have sent it to review.
    assert _rule(explained, "name_dob_fuzzy")["decision"] == "review"


def test_household_member_is_not_merged_and_the_reason_is_shown():
    explained = explain_pair(BEN, WIFE)
    assert explained["decision"] == "review"  # the shared mailbox: a human decides
    typo = _rule(explained, "email_name_dob_typo")
    assert typo["compared"] and typo["decision"] == "review"
    assert _rule(explained, "email_dob")["require_equal"] == {"email_key": True,
                                                            "dateofbirth": False}  # fmt: skip
    assert _rule(explained, "name_variant_near_dob")["score"] is None  # at_least failed


def test_pair_sharing_no_block_is_never_compared():
    explained = explain_pair(BEN, STRANGER)
    assert explained["shared_blocks"] == []
    assert {r["decision"] for r in explained["rules"]} == {"not compared"}
    assert explained["decision"] == "no_match" and explained["deciding_rule"] is None


def test_references_are_looked_up_and_missing_ones_named():
    table = pa.Table.from_pylist([{c: r.get(c) for c in RECORD_COLUMNS} for r in (BEN, BEN2)])

    def load(keys: pa.Table) -> pa.Table:
        return table

    text = explain_references("dataverse/1", "residents/2", load)
    assert text.splitlines()[0] == "decision: match (rule name_variant_near_dob)"
    assert "firstname_key: 'benjamin' vs 'ben' → nickname or full form" in text
    with pytest.raises(ValueError, match="residents/9"):
        explain_references("dataverse/1", "residents/9", load)
