"""Engagement shift features on hand-made logs with hand-computed answers (`engagement.py`)."""

from __future__ import annotations

import datetime as dt

import pytest

from customer360.churn.engagement import SHIFT_FEATURES, shift_features

pytestmark = pytest.mark.spark

APRIL = dt.date(2017, 4, 1)
NOVEMBER = dt.date(2016, 11, 1)
#: The logs cover 2016-10-03 … 2017-03-31: April's usual-level window (P − 180 … P − 91 =
#: 2016-10-03 … 2017-01-01) in full, November's (2016-05-05 … 2016-08-02) not at all.
LOGS = (dt.date(2016, 10, 3), dt.date(2017, 3, 31))
SINCE = dt.date(2016, 6, 1)
STATE_SCHEMA = (
    "msno string, period_start date, transaction_date date, membership_expire_date date, "
    "subscription_start date"
)
LOG_SCHEMA = (
    "msno string, date date, num_25 int, num_50 int, num_75 int, num_985 int, num_100 int, "
    "num_unq int, total_secs double"
)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def _log(msno: str, day: dt.date, plays: int) -> tuple:
    return (msno, day, 0, 0, 0, 0, plays, plays, 200.0 * plays)


@pytest.fixture(scope="module")
def shift(spark) -> dict:
    state = [
        # Listens every day (10 plays): no shift at all.
        ("steady", APRIL, dt.date(2017, 3, 10), dt.date(2017, 4, 10), SINCE),
        # Listened every day until 90 days before P, then stopped; expires on P itself.
        ("silent", APRIL, dt.date(2017, 3, 2), APRIL, SINCE),
        # Joined on 2016-12-15 and listens every day: its usual level is over 12-15 … 01-01.
        ("recent", APRIL, dt.date(2017, 3, 15), dt.date(2017, 4, 15), dt.date(2016, 12, 15)),
        # Joined on 2016-12-25: 8 days before P − 90 are too few for a usual level.
        ("newer", APRIL, dt.date(2017, 3, 25), dt.date(2017, 4, 25), dt.date(2016, 12, 25)),
        # November: no usual level (not covered), the 90 days before P not covered either.
        ("early", NOVEMBER, dt.date(2016, 10, 20), dt.date(2016, 11, 19), dt.date(2016, 10, 20)),
    ]
    logs = [_log("steady", day, 10) for day in _days(LOGS[0], LOGS[1])]
    logs += [_log("silent", day, 10) for day in _days(LOGS[0], dt.date(2017, 1, 1))]
    logs += [_log("recent", day, 10) for day in _days(dt.date(2016, 12, 15), LOGS[1])]
    logs += [_log("newer", day, 10) for day in _days(dt.date(2016, 12, 25), LOGS[1])]
    logs += [_log("early", day, 4) for day in _days(dt.date(2016, 10, 25), dt.date(2016, 10, 31))]
    logs.append(_log("early", dt.date(2016, 11, 5), 99))  # at or after P: must not count
    frame = shift_features(
        spark.createDataFrame(state, STATE_SCHEMA),
        spark.createDataFrame(logs, LOG_SCHEMA),
        [NOVEMBER, APRIL],
        LOGS,
    )
    assert frame.columns == ["msno", "period_start", *SHIFT_FEATURES]
    return {r["msno"]: r.asDict() for r in frame.collect()}


def test_a_steady_member_has_no_shift(shift):
    got = {name: shift["steady"][name] for name in SHIFT_FEATURES}
    assert got == pytest.approx(
        {
            "base_active_share": 1.0,
            "base_plays_per_day": 10.0,
            "active_decline": 0.0,
            "plays_decline": 0.0,
            "decline_ratio": 1.0,
            "term_active_share": 1.0,  # 03-10 … 03-31
            "term_plays_per_day": 10.0,
            "term_vs_base": 1.0,
            "prebill_active_share": 1.0,  # 02-17 … 03-09
            "prebill_plays_per_day": 10.0,
            "prebill_vs_base": 1.0,
            "term_vs_prebill": 1.0,
            "days_since_listen": 1,  # listened on 03-31
            "bill_week_vs_base": 1.0,  # 03-03 … 03-09
            "bill_week_plays_vs_base": 1.0,
            "after_bill_week_vs_base": 1.0,  # 03-10 … 03-16
            "after_bill_week_plays_vs_base": 1.0,
            "peak_active_share": 1.0,
            "peak_plays_per_day": 10.0,
            "prebill_vs_peak": 1.0,
            "bill_week_vs_peak": 1.0,
        }
    )


def test_a_member_gone_silent_before_the_expiry_lost_everything(shift):
    got = {name: shift["silent"][name] for name in SHIFT_FEATURES}
    # Expiry on P: the ramp on day P − k is (90 − k) / 90; nothing heard in those 90 days →
    # the fitted fall k = Σ ramp · (1 − 0) / Σ ramp² (≈ 44.5 / 29.5) of the usual level.
    ramp = [(90 - k) / 90 for k in range(1, 91)]
    fall = sum(ramp) / sum(r * r for r in ramp)
    assert got == pytest.approx(
        {
            "base_active_share": 1.0,
            "base_plays_per_day": 10.0,
            "active_decline": fall,
            "plays_decline": fall,
            "decline_ratio": 0.05 / 1.05,
            "term_active_share": 0.0,
            "term_plays_per_day": 0.0,
            "term_vs_base": 0.05 / 1.05,
            # Billed on 03-02: the 21 days before (02-09 … 03-01) were already silent.
            "prebill_active_share": 0.0,
            "prebill_plays_per_day": 0.0,
            "prebill_vs_base": 0.05 / 1.05,
            "term_vs_prebill": 1.0,
            "days_since_listen": 90,  # last heard on 2017-01-01
            # The weeks either side of the billing (02-23 … 03-01, 03-02 … 03-08): silent.
            "bill_week_vs_base": 0.05 / 1.05,
            "bill_week_plays_vs_base": 1 / 11,  # (0 + 1) / (10 + 1)
            "after_bill_week_vs_base": 0.05 / 1.05,
            "after_bill_week_plays_vs_base": 1 / 11,
            # Its best 30-day block (12-02 … 12-31) was before it went silent.
            "peak_active_share": 1.0,
            "peak_plays_per_day": 10.0,
            "prebill_vs_peak": 0.05 / 1.05,
            "bill_week_vs_peak": 0.05 / 1.05,
        }
    )


def test_the_usual_level_counts_only_days_of_the_subscription(shift):
    # 18 subscribed days (12-15 … 01-01), all listened: 1.0, not 18 / 91.
    recent = shift["recent"]
    assert recent["base_active_share"] == pytest.approx(1.0)
    assert recent["active_decline"] == pytest.approx(0.0)
    newer = shift["newer"]
    assert newer["base_active_share"] is None and newer["active_decline"] is None
    assert newer["term_active_share"] == pytest.approx(1.0)  # 03-25 … 03-31
    # The days before the billing are subscribed days (03-04 … 03-24): they count.
    assert newer["prebill_active_share"] == pytest.approx(1.0)
    assert newer["prebill_vs_base"] is None  # no usual level to compare with
    assert newer["bill_week_vs_base"] is None and newer["after_bill_week_vs_base"] is None
    # Without a usual level its peak (03-02 … 03-31, all listened) still compares the billing.
    assert newer["peak_active_share"] == pytest.approx(1.0)
    assert newer["prebill_vs_peak"] == pytest.approx(1.0)


def test_windows_the_logs_do_not_cover_are_missing_not_zero(shift):
    early = shift["early"]
    assert early["base_active_share"] is None and early["active_decline"] is None
    assert early["decline_ratio"] is None and early["term_vs_base"] is None
    # The term (10-20 … 10-31) is covered from the first log day on: 10-20 … 10-31 is inside
    # the logs (they start 2016-10-03), 7 of 12 days listened at 4 plays; 11-05 is after P.
    assert early["term_active_share"] == pytest.approx(7 / 12)
    assert early["term_plays_per_day"] == pytest.approx(28 / 12)
    # Billed on the subscription's first day: no subscribed day before it, so no value.
    assert early["prebill_active_share"] is None and early["term_vs_prebill"] is None
    assert early["days_since_listen"] == 1  # 10-31; the row on 11-05 is after P
    assert early["bill_week_vs_base"] is None and early["after_bill_week_plays_vs_base"] is None
    # Its only block (10-02 … 10-31) has 12 subscribed days (from 10-20): too few for a peak.
    assert early["peak_active_share"] is None and early["prebill_vs_peak"] is None
