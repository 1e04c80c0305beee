"""Which labels the model gets (derived, from a file, cross-checked) and which rows it learns
from (the scoring scope: members a cancel inside the month brought into the labels are out)."""

from __future__ import annotations

import datetime as dt

import pytest
from churn_builders import transactions_df, txn

from customer360.churn.labels import label_period
from customer360.churn.periods import ChurnPeriods
from customer360.churn.training import (
    DERIVED,
    assemble_labels,
    labelled_rows,
    scope_for_periods,
)

pytestmark = pytest.mark.spark

MARCH, APRIL, MAY = dt.date(2017, 3, 1), dt.date(2017, 4, 1), dt.date(2017, 5, 1)
HISTORY = [
    # History expiry 03-15, renewed 46 days late: labelled churn, in March's scoring scope.
    txn("late", "02-25", "03-15"),
    txn("late", "04-30", "05-30"),
    # History expiry 04-03 (out of scope); a cancel on 03-15 moves it to 03-16, so the
    # official label covers it, but on 1 March nobody could know: not a scoring candidate.
    txn("cancel", "02-25", "04-03"),
    txn("cancel", "03-15", "03-16", True),
    txn("cancel", "04-01", "06-30", plan_days=90),
    # In scope, renewed in time; it will have no features (cannot teach).
    txn("nofeatures", "02-10", "03-10"),
    txn("nofeatures", "03-10", "04-10"),
]
FEATURES = "msno string, period_start date, f double"


def test_training_rows_are_the_scoring_scope_with_features(spark):
    transactions = transactions_df(spark, HISTORY)
    labels = label_period(transactions, MARCH)
    assert {r.msno for r in labels.collect()} == {"late", "cancel", "nofeatures"}
    features = spark.createDataFrame([("late", MARCH, 1.0), ("cancel", MARCH, 2.0)], FEATURES)
    scope = scope_for_periods(transactions, [MARCH, APRIL])
    # March: the February expiries inside March; April: the March ones inside April (the
    # cancel's history expiry 03-16 is not in April, so it is in neither month's scope).
    assert {(r.msno, r.period_start) for r in scope.collect()} == {
        ("late", MARCH),
        ("nofeatures", MARCH),
        ("nofeatures", APRIL),
    }
    rows = labelled_rows(labels, features, scope).collect()
    assert [(r.msno, r.is_churn, r.f) for r in rows] == [("late", 1, 1.0)]
    unscoped = {r.msno for r in labelled_rows(labels, features).collect()}
    assert unscoped == {"late", "cancel"}  # without features "nofeatures" is out either way


def test_labels_come_from_transactions_a_file_fills_the_month_they_cannot_label(spark):
    transactions = transactions_df(spark, HISTORY)
    periods = ChurnPeriods(
        train=(MARCH,),
        validation=APRIL,
        scoring=MAY,
        derived=(MARCH,),
        from_files={"train.csv": MARCH, "train_v2.csv": APRIL},
        coverage={},
    )
    files = spark.createDataFrame(
        [
            ("late", 0, "train.csv"),  # disagrees with the derived label (1): reported
            ("cancel", 0, "train.csv"),
            ("nofeatures", 0, "train.csv"),
            ("april", 1, "train_v2.csv"),
        ],
        "msno string, is_churn int, source_file string",
    )
    result = assemble_labels(transactions, files, periods)
    labels = {(r.msno, r.period_start, r.is_churn) for r in result.labels.collect()}
    assert labels == {
        ("late", MARCH, 1),  # derived, not the file's 0
        ("cancel", MARCH, 0),
        ("nofeatures", MARCH, 0),
        ("april", APRIL, 1),  # train_v2.csv: the transactions cannot label April
    }
    assert result.sources == {"2017-03": DERIVED, "2017-04": "train_v2.csv"}
    check = result.cross_checks["train.csv"]
    assert (check["month"], check["both"], check["disagree"]) == ("2017-03", 3, 1)
    assert check["disagreements"] == [{"msno": "late", "file": 0, "derived": 1}]
    assert result.disagreements == 1
