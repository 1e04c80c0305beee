"""transactions_clean, subscription_windows and transactions_enhanced on hand-made histories."""

from __future__ import annotations

import datetime as dt

import pytest
from churn_builders import d, transactions_df, txn

from customer360.churn.transactions import (
    subscription_windows,
    transactions_clean,
    transactions_enhanced,
)

pytestmark = pytest.mark.spark


def test_clean_keeps_one_final_record_per_day_with_the_official_tie_rules(spark):
    rows = [
        # Two renewals of the same plan: the later expiry is last; max expiry kept.
        txn("a", "01-10", "02-10"),
        txn("a", "01-10", "02-20"),
        # Subscription then cancel of the same plan: the cancel is final, min expiry kept.
        txn("b", "01-10", "02-10"),
        txn("b", "01-10", "01-15", True),
        # Different plans: "993041" > "1493041" as strings, so the 149 row is final; it is a
        # subscription, so the day's max expiry (from the 99 row) is kept.
        txn("c", "01-10", "02-20", list_price=99, paid=99),
        txn("c", "01-10", "02-09", list_price=149, paid=120),
        # Two cancels: the earliest expiry is last.
        txn("e", "01-10", "01-20", True),
        txn("e", "01-10", "01-15", True),
        txn("e", "01-11", "02-11"),
    ]
    clean = transactions_clean(transactions_df(spark, rows))
    got = sorted(
        (r["msno"], r["transaction_date"], r["plan_list_price"], r["actual_amount_paid"],
         r["is_cancel"], r["membership_expire_date"], r["discount"])
        for r in clean.collect()
    )  # fmt: skip
    assert got == [
        ("a", d("01-10"), 149, 149, 0, d("02-20"), 0),
        ("b", d("01-10"), 149, 149, 1, d("01-15"), 0),
        ("c", d("01-10"), 149, 120, 0, d("02-20"), 29),
        ("e", d("01-10"), 149, 149, 1, d("01-15"), 0),
        ("e", d("01-11"), 149, 149, 0, d("02-11"), 0),
    ]


def _history(spark):
    rows = [
        txn("s", "2016-01-01", "2016-01-31"),
        txn("s", "2016-01-31", "2016-03-01", paid=100, method=38, auto_renew=0),
        # 45 days after 03-01: a new subscription.
        txn("s", "2016-04-15", "2016-05-15"),
        # Backdated expiry (before its transaction): floored to 05-10, ends the subscription.
        txn("s", "2016-05-10", "2016-05-01", True, list_price=99, paid=99, method=38),
        txn("t", "2016-02-01", "2016-03-02"),
        # Exactly 30 days after the expiry: still the same subscription.
        txn("u", "2016-01-01", "2016-01-31"),
        txn("u", "2016-03-01", "2016-03-31"),
    ]
    return transactions_clean(transactions_df(spark, rows))


def test_subscription_windows_split_on_gaps_over_30_days_and_floor_backdated_expiry(spark):
    clean = _history(spark).cache()
    windows = [tuple(r) for r in subscription_windows(clean).orderBy("subscription_id").collect()]
    assert windows == [
        (1, "s", d("2016-01-01"), d("2016-03-01")),
        (2, "u", d("2016-01-01"), d("2016-03-31")),
        (3, "t", d("2016-02-01"), d("2016-03-02")),
        (4, "s", d("2016-04-15"), d("2016-05-10")),
    ]
    # as_of: only transactions before it exist, so the second subscription of s is still open.
    as_of = subscription_windows(clean, as_of=dt.date(2016, 4, 20))
    assert sorted(tuple(r)[1:] for r in as_of.collect()) == [
        ("s", d("2016-01-01"), d("2016-03-01")),
        ("s", d("2016-04-15"), d("2016-05-15")),
        ("t", d("2016-02-01"), d("2016-03-02")),
        ("u", d("2016-01-01"), d("2016-03-31")),
    ]


def test_enhanced_log_has_changes_within_each_subscription(spark):
    clean = _history(spark)
    enhanced = transactions_enhanced(clean, subscription_windows(clean)).where("msno = 's'")
    columns = [
        "subscription_id",
        "days_since_last_transaction",
        "change_in_list_price",
        "change_in_actual_amount_paid",
        "change_in_discount",
        "change_in_payment_plan_days",
        "change_in_payment_method_id",
        "change_in_cancellation",
        "change_in_auto_renew",
        "days_change_in_membership_expire_date",
    ]
    got = [tuple(r) for r in enhanced.select(*columns).orderBy("transaction_date").collect()]
    assert got == [
        (1, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # first of its subscription: all zero
        (1, 30, 0, -49, 49, 0, 1, 0, -1, 30),  # discount 49, method 41→38, auto-renew off
        (4, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # a new subscription starts from zero again
        (4, 25, -50, -50, 0, 0, 1, 1, 0, -14),  # cancel; expiry moved back 14 days
    ]
