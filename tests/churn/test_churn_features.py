"""Transaction and activity features on a hand-made history with known answers; no leakage."""

from __future__ import annotations

import datetime as dt

import pytest
from churn_builders import d, transactions_df, txn

from customer360.churn.features import (
    ACTIVITY_FEATURES,
    FEATURE_COLUMNS,
    TRANSACTION_FEATURES,
    features_for_periods,
)
from customer360.churn.transactions import transactions_clean

pytestmark = pytest.mark.spark

MARCH = dt.date(2017, 3, 1)
FEBRUARY = dt.date(2017, 2, 1)
LOG_SCHEMA = (
    "msno string, date date, num_25 int, num_50 int, num_75 int, num_985 int, num_100 int, "
    "num_unq int, total_secs double"
)
MEMBER_SCHEMA = (
    "msno string, city int, bd int, gender string, registered_via int, registration_init_time date"
)


@pytest.fixture(scope="module")
def features(spark) -> dict:
    rows = [
        txn("f", "2016-06-01", "2016-07-01"),  # an earlier, separate subscription
        txn("f", "2016-12-01", "2016-12-31"),
        txn("f", "2016-12-31", "2017-01-31"),
        txn("f", "2017-01-31", "2017-03-02", paid=120),
        txn("f", "2017-02-20", "2017-02-25", True, auto_renew=0),
        txn("f", "2017-03-05", "2017-04-05"),  # after P: must not count
        txn("g", "2016-10-01", "2016-10-31"),  # lapsed long before P: no current subscription
        txn("h", "2017-03-02", "2017-04-02"),  # only after P
        txn("k", "2017-02-15", "2017-03-15", plan_days=30, list_price=99, paid=99),
    ]
    logs = [
        ("f", d("2017-01-29"), 0, 0, 0, 0, 5, 5, 1200.0),  # before the 30-day window
        ("f", d("2017-02-01"), 1, 0, 0, 0, 4, 5, 1000.0),
        ("f", d("2017-02-01"), 0, 0, 0, 0, 2, 2, 500.0),  # second row the same day
        ("f", d("2017-02-10"), 2, 1, 0, 0, 3, 6, 900.0),
        ("f", d("2017-02-27"), 0, 0, 0, 1, 1, 2, 400.0),  # after the 02-25 expiry
        ("f", d("2017-03-01"), 9, 9, 9, 9, 9, 9, 9999.0),  # at P: must not count
    ]
    members = [
        ("f", 5, 25, "female", 7, d("2015-01-01")),
        ("k", 13, 90, None, 9, d("2016-01-01")),  # bd 90 → NULL
    ]
    clean = transactions_clean(transactions_df(spark, rows))
    frame = features_for_periods(
        clean,
        spark.createDataFrame(logs, LOG_SCHEMA),
        spark.createDataFrame(members, MEMBER_SCHEMA),
        [FEBRUARY, MARCH],
    )
    assert frame.columns == ["msno", "period_start", *FEATURE_COLUMNS]
    return {(r["period_start"], r["msno"]): r.asDict() for r in frame.collect()}


def test_only_members_with_a_current_subscription_get_features(features):
    assert sorted(features) == [(FEBRUARY, "f"), (MARCH, "f"), (MARCH, "k")]


def test_transaction_features_of_the_last_transaction_and_its_subscription(features):
    got = {name: features[(MARCH, "f")][name] for name in TRANSACTION_FEATURES}
    assert got == {
        "start_year": 2016,
        "start_month": 12,
        "subscription_age": 81,  # 2016-12-01 → 2017-02-20
        "renewals": 2,  # the 12-31 and 01-31 transactions moved the expiry later
        "total_list_price": 298,
        "total_amount_paid": 269,
        "total_discount": 29,
        "days_since_last_account_action": 9,
        "last_plan_list_price": 149,
        "last_actual_amount_paid": 149,
        "last_discount": 0,
        "last_payment_plan_days": 30,
        "last_payment_method": 41,
        "last_is_cancel": 1,
        "last_is_auto_renew": 0,
        "last_change_in_list_price": 0,
        "last_change_in_discount": -29,
        "last_change_in_payment_plan_days": 0,
        "last_change_in_payment_method_id": 0,
        "last_change_in_cancellation": 1,
        "last_change_in_auto_renew": -1,
        "last_days_change_in_membership_expire_date": -5,
        "days_until_expiration": 4,  # 02-25 → 03-01
        "total_subscription_count": 2,
        "city": 5,
        "bd": 25,
        "gender": 0,
        "registered_via": 7,
    }
    # In February the same member's last transaction is the 01-31 renewal, expiring after P.
    february = features[(FEBRUARY, "f")]
    assert (february["days_until_expiration"], february["last_is_cancel"]) == (-29, 0)
    k = features[(MARCH, "k")]
    assert (k["bd"], k["gender"], k["city"], k["total_subscription_count"]) == (None, None, 13, 1)


def test_activity_features_over_the_30_days_before_the_period(features):
    got = {name: features[(MARCH, "f")][name] for name in ACTIVITY_FEATURES}
    expected = {
        "days_total": 30,  # 01-30 … 02-28
        "days_with_session": 3,
        "ratio_days_with_session_to_days": 3 / 30,
        "days_after_exp": 3,  # 02-26, 02-27, 02-28
        "days_after_exp_with_session": 1,
        "ratio_days_after_exp_with_session_to_days_after_exp": 1 / 3,
    }
    totals = {
        "sessions_total": (4, 1),
        "seconds_total": (2800.0, 400.0),
        "number_uniq": (15, 2),
        "number_total": (15, 2),
    }
    for x, (total, after) in totals.items():
        expected |= {
            x: total,
            f"ratio_{x}_to_days_total": total / 30,
            f"ratio_{x}_to_days_with_session": total / 3,
            f"{x}_after_exp": after,
            f"ratio_{x}_after_exp_to_days_after_exp": after / 3,
            f"ratio_{x}_after_exp_to_days_after_exp_with_session": after / 1,
        }
    assert got == pytest.approx(expected)
    # No logs at all: counts 0, every ratio with a zero denominator is 0.
    k = {name: features[(MARCH, "k")][name] for name in ACTIVITY_FEATURES}
    assert k["days_total"] == 14  # subscription started 02-15
    assert k["days_after_exp"] == 0
    assert all(v == 0 for name, v in k.items() if name != "days_total")


def test_engagement_outside_the_logs_is_missing_not_zero(features):
    march, february = features[(MARCH, "f")], features[(FEBRUARY, "f")]
    # The logs start on 01-29: February's window (01-02 … 01-31) is not covered → unknown.
    assert february["days_total"] is None and february["days_with_session"] is None
    assert february["active_share_w14"] is None
    # March: 1–14 days back (02-15 … 02-28) holds 02-27 (2 plays); 15–30 days back
    # (01-30 … 02-14) holds 02-01 (7 plays in two rows) and 02-10 (6 plays).
    assert march["active_share_w14"] == pytest.approx(1 / 14)
    assert march["plays_per_day_w14"] == pytest.approx(2 / 14)
    assert march["active_share_w30"] == pytest.approx(2 / 16)
    assert march["plays_per_active_day_w30"] == pytest.approx(13 / 2)
    # 31–90 days back reaches before the first log: missing, and so is the trend against it.
    assert march["active_share_w60"] is None and march["active_share_w90"] is None
    assert march["active_trend"] is None
    assert march["cancel_count"] == 1
    # A covered window without any log row is a true zero (k listened to nothing).
    assert features[(MARCH, "k")]["active_share_w14"] == 0.0
