"""The official labelling rules: the three worked examples of the KKBox data page, and the Scala
labeller's ordering/cancel/gap rules on small histories with known answers."""

from __future__ import annotations

import datetime as dt

import pytest
from churn_builders import d, transactions_df, txn

from customer360.churn.labels import churn_history, label_period, scoring_candidates

pytestmark = pytest.mark.spark

MARCH = dt.date(2017, 3, 1)


# The official data page's three worked examples, as (transaction date, expiry, is_cancel).
EXAMPLE_1 = [  # renewal 46 days after the 03-15 expiry: churned
    txn("u1", "01-01", "02-28"),
    txn("u1", "02-25", "03-15"),
    txn("u1", "04-30", "05-30"),
]
EXAMPLE_2 = [  # the cancel moves the expiry back to 03-16; renewal 04-01: not churned
    txn("u2", "01-01", "02-28"),
    txn("u2", "02-25", "04-03"),
    txn("u2", "03-15", "03-16", True),
    txn("u2", "04-01", "06-30", plan_days=90),
]
EXAMPLE_3 = [  # as example 2 but renewed 03-18 to 04-02, outside March: not labelled
    txn("u3", "01-01", "02-28"),
    txn("u3", "02-25", "04-03"),
    txn("u3", "03-15", "03-16", True),
    txn("u3", "03-18", "04-02"),
]
# The Scala labeller's other rules, one member each.
RULES = [
    txn("nofuture", "02-10", "03-10"),  # nothing after → churn, no gap
    txn("gap29", "02-10", "03-10"),
    txn("gap29", "04-08", "05-08"),  # 29 days after expiry → renewed
    txn("gap30", "02-10", "03-10"),
    txn("gap30", "04-09", "05-09"),  # 30 days → churn
    txn("early", "02-20", "03-20"),
    txn("early", "03-15", "04-20"),  # renewal before expiry → gap -5, still in scope
    txn("oldhistory", "01-15", "03-10"),  # history is only the month before the period
    txn("outofperiod", "02-10", "04-10"),
    # Same day, different plans: signatures compare as strings, "993041" > "1493041",
    # so the 99 row sorts first and the 149 row (expiry 03-05) is the last one.
    txn("tie", "02-10", "03-25", list_price=99),
    txn("tie", "02-10", "03-05", list_price=149),
    txn("tie", "04-10", "05-10"),
    # Same day, same plan: the subscription sorts before the cancel.
    txn("samecancel", "02-10", "03-12", True),
    txn("samecancel", "02-10", "03-20"),
    txn("samecancel", "04-12", "05-12"),
    # A cancel after the period (before the renewal) moves the reference expiry earlier.
    txn("futurecancel", "02-10", "03-25"),
    txn("futurecancel", "04-05", "03-15", True),
    txn("futurecancel", "04-20", "05-20"),
]


@pytest.fixture(scope="module")
def march_labels(spark) -> dict[str, tuple]:
    """One Spark job labels every history above (members are independent of each other)."""
    rows = EXAMPLE_1 + EXAMPLE_2 + EXAMPLE_3 + RULES
    out = label_period(transactions_df(spark, rows), MARCH).collect()
    assert {r["period_start"] for r in out} == {MARCH}
    return {r["msno"]: (r["is_churn"], r["last_expire"], r["renewal_gap_days"]) for r in out}


def test_official_example_1_late_renewal_is_churn(march_labels):
    assert march_labels["u1"] == (1, d("03-15"), 46)


def test_official_example_2_cancel_moves_expiry_back_and_renewal_is_in_time(march_labels):
    assert march_labels["u2"] == (0, d("03-16"), 16)


def test_official_example_3_renewal_inside_period_moves_member_out_of_scope(march_labels):
    assert "u3" not in march_labels


def test_scala_labeller_rules_on_small_histories(march_labels):
    rules = {k: v for k, v in march_labels.items() if k not in ("u1", "u2", "u3")}
    assert rules == {
        "nofuture": (1, d("03-10"), None),
        "gap29": (0, d("03-10"), 29),
        "gap30": (1, d("03-10"), 30),
        "early": (0, d("03-20"), -5),
        "tie": (1, d("03-05"), 36),
        "samecancel": (1, d("03-12"), 31),
        "futurecancel": (1, d("03-25"), 36),
    }


def test_several_periods_in_one_pass_scoring_candidates_and_history(spark):
    rows = [
        txn("u1", "01-01", "02-28"),
        txn("u1", "02-25", "03-15"),
        txn("u1", "04-30", "05-30"),
        txn("feb", "01-05", "02-04"),
        txn("feb", "02-04", "03-06"),  # renewed on time for Feb, then gone in March
        txn("u2", "01-01", "02-28"),
        txn("u2", "02-25", "04-03"),
        txn("u2", "03-15", "03-16", True),
    ]
    tx = transactions_df(spark, rows)
    from customer360.churn.labels import label_periods

    labels = label_periods(tx, [dt.date(2017, 2, 1), MARCH])
    got = sorted((r["period_start"], r["msno"], r["is_churn"]) for r in labels.collect())
    assert got == [
        (dt.date(2017, 2, 1), "feb", 0),
        (dt.date(2017, 2, 1), "u1", 0),  # 02-28 expiry, renewed 02-25
        (dt.date(2017, 2, 1), "u2", 0),
        (MARCH, "feb", 1),
        (MARCH, "u1", 1),
        (MARCH, "u2", 1),  # cancel moved expiry to 03-16; no renewal
    ]
    # Without the future, March's candidates come from February's last transactions only.
    candidates = scoring_candidates(tx, MARCH).collect()
    assert sorted((r["msno"], r["last_expire"]) for r in candidates) == [
        ("feb", d("03-06")),
        ("u1", d("03-15")),
    ]
    history = churn_history(labels)
    assert history.to_dict("list") == {
        "period_start": [dt.date(2017, 2, 1), MARCH],
        "members": [3, 3],
        "churners": [0, 3],
        "churn_rate": [0.0, 1.0],
    }
