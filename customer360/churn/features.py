"""The reference feature set (58 inputs): transaction features (28) and activity features (30).

A period P is the month whose expirations are labelled (training) or predicted (scoring).
Every feature uses only data dated before P: transactions and user logs are filtered to
`< P` before anything is computed, subscription windows included, so nothing leaks from the
outcome month. The "current" subscription is the one with start < P and end > P − 30 days
(at most one per member, see docs/churn.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from customer360.churn.engagement import (
    DECLINE_DAYS,
    SHIFT_FEATURES,
    fade_ramp,
    peak_blocks,
    shift_columns,
    shift_sums,
    with_ramp_moments,
)
from customer360.churn.engagement import covered as _covered
from customer360.churn.fade_job import fade_features, log_range
from customer360.churn.fading import FADE_FEATURES
from customer360.churn.log_window import day_back, window_sums
from customer360.churn.periods import periods_frame
from customer360.churn.schemas import BD_MAX, BD_MIN
from customer360.churn.transactions import with_changes, with_subscription

#: Look-back of the activity window and of the "current subscription" test, in days.
LOOKBACK_DAYS = 30

TRANSACTION_FEATURES: tuple[str, ...] = (
    "start_year",
    "start_month",
    "subscription_age",
    "renewals",
    "total_list_price",
    "total_amount_paid",
    "total_discount",
    "days_since_last_account_action",
    "last_plan_list_price",
    "last_actual_amount_paid",
    "last_discount",
    "last_payment_plan_days",
    "last_payment_method",
    "last_is_cancel",
    "last_is_auto_renew",
    "last_change_in_list_price",
    "last_change_in_discount",
    "last_change_in_payment_plan_days",
    "last_change_in_payment_method_id",
    "last_change_in_cancellation",
    "last_change_in_auto_renew",
    "last_days_change_in_membership_expire_date",
    "days_until_expiration",
    "total_subscription_count",
    "city",
    "bd",
    "gender",
    "registered_via",
)

_ACTIVITY_MEASURES = ("sessions_total", "seconds_total", "number_uniq", "number_total")
#: Each activity measure's column of the window pass's daily rows (`log_window.window_sums`).
_DAILY_MEASURE = dict(
    zip(_ACTIVITY_MEASURES, ("sessions", "seconds", "uniq", "plays"), strict=True)
)

ACTIVITY_FEATURES: tuple[str, ...] = (
    "days_total",
    "days_with_session",
    "ratio_days_with_session_to_days",
    "days_after_exp",
    "days_after_exp_with_session",
    "ratio_days_after_exp_with_session_to_days_after_exp",
    *[
        name
        for x in _ACTIVITY_MEASURES
        for name in (
            x,
            f"ratio_{x}_to_days_total",
            f"ratio_{x}_to_days_with_session",
            f"{x}_after_exp",
            f"ratio_{x}_after_exp_to_days_after_exp",
            f"ratio_{x}_after_exp_to_days_after_exp_with_session",
        )
    ],
)

#: The reference set's 58 inputs (reference/churn.md §3.3).
REFERENCE_FEATURES: tuple[str, ...] = TRANSACTION_FEATURES + ACTIVITY_FEATURES
#: Codes, not quantities: the model treats them as categories.
CATEGORICAL_FEATURES: tuple[str, ...] = ("last_payment_method", "city", "gender", "registered_via")


def current_subscriptions(clean: DataFrame, period_start: dt.date) -> DataFrame:
    """Per member with a current subscription at P, its last transaction before P.

    Columns: period_start, the clean transaction columns of that last transaction,
    subscription_seq/start/end, the `transactions_enhanced` change columns, renewals,
    total_list_price, total_amount_paid, total_discount (over the subscription's transactions
    whose expiry moved later) and total_subscription_count (subscriptions started before P).
    """
    return _current(clean, [period_start])


def transaction_features(clean: DataFrame, members: DataFrame, period_start: dt.date) -> DataFrame:
    """msno, period_start + the 28 transaction features for P (see `TRANSACTION_FEATURES`).

    `clean` is `transactions_clean` over all transactions (it is cut at P here); `members` is
    the members reader's output (a member missing from it gets NULL demographics).
    """
    return _transaction_features(_current(clean, [period_start]), members)


def activity_features(clean: DataFrame, user_logs: DataFrame, period_start: dt.date) -> DataFrame:
    """msno, period_start + the 30 activity features for P (see `ACTIVITY_FEATURES`).

    Window: from max(subscription start, P − 30) to P − 1. `user_logs` are the reader's rows
    (several per member and day are summed). Days without a log row count as no session.
    """
    windowed = _window_features(
        _current(clean, [period_start]), user_logs, [period_start], log_range(user_logs)
    )
    return windowed.select("msno", "period_start", *ACTIVITY_FEATURES)


def period_features(
    clean: DataFrame, user_logs: DataFrame, members: DataFrame, period_start: dt.date
) -> DataFrame:
    """msno, period_start and all features (`FEATURE_COLUMNS`) for members current at P."""
    return features_for_periods(clean, user_logs, members, [period_start])


def features_for_periods(
    clean: DataFrame,
    user_logs: DataFrame,
    members: DataFrame,
    periods: Sequence[dt.date],
    logs: tuple[dt.date | None, dt.date | None] | None = None,
    fade: DataFrame | None = None,
) -> DataFrame:
    """`period_features` for several periods in one Spark pass (rows tagged by period_start).

    The period is a column, so the query plan is the same whatever the periods: computing
    training, validation and scoring periods together costs one job instead of three.
    `logs` = (first, last) day the user logs cover (`log_range`, computed when None):
    engagement features of a window the logs do not cover are NULL (unknown), not zero.
    `fade`: the engagement model's output (`fade_features`; computed when None).
    """
    return _features(_current(clean, periods), clean, user_logs, members, periods, logs, fade)


@contextmanager
def features_to_write(
    clean: DataFrame,
    user_logs: DataFrame,
    members: DataFrame,
    periods: Sequence[dt.date],
    logs: tuple[dt.date | None, dt.date | None] | None = None,
    fade: DataFrame | None = None,
) -> Iterator[DataFrame]:
    """`features_for_periods`, to be written inside the block: each member's current
    subscription per period (one row per member and period) is cached until the block ends.
    The transaction features and the window pass (twice: its join and its result) read it,
    and each read recomputed it (window functions over every transaction before each period).
    On a 3,000-member drop the write took 64 s without the cache and 46–57 s with it (2 cores,
    2026-12-07); 31 s once the window groups shared one pass over the logs and the engagement
    model's buckets grew (`log_window.py`, `fade_job.py`)."""
    current = _current(clean, periods).cache()
    try:
        yield _features(current, clean, user_logs, members, periods, logs, fade)
    finally:
        current.unpersist()


def _features(
    current: DataFrame,
    clean: DataFrame,
    user_logs: DataFrame,
    members: DataFrame,
    periods: Sequence[dt.date],
    logs: tuple[dt.date | None, dt.date | None] | None,
    fade: DataFrame | None,
) -> DataFrame:
    logs = log_range(user_logs) if logs is None else logs
    transaction = _transaction_features(current, members)
    windowed = _window_features(current, user_logs, periods, logs)
    if fade is None:
        fade, _ = fade_features(clean, user_logs, periods, logs)
    return (
        transaction.join(windowed, ["msno", "period_start"], "inner")
        .join(fade, ["msno", "period_start"], "left")
        .select("msno", "period_start", *FEATURE_COLUMNS)
    )


def _window_features(
    current: DataFrame,
    user_logs: DataFrame,
    periods: Sequence[dt.date],
    logs: tuple[dt.date | None, dt.date | None],
) -> DataFrame:
    """msno, period_start + the activity, trend and shift features of the members of
    `current`, from one pass over the logs (`log_window.py`)."""
    per_block, over_blocks = peak_blocks(logs)
    activity = _activity_sums()
    sums = {**activity, **_trend_sums(), **shift_sums()}
    frame = window_sums(current, user_logs, periods, sums, per_block, over_blocks)
    # A member-period without log rows in the window: no sessions, not unknown.
    frame = with_ramp_moments(frame.fillna(0, subset=list(activity)))
    return frame.select(
        "msno",
        "period_start",
        *_activity_columns(logs),
        *_trend_columns(logs),
        *shift_columns(logs),
    )


def _current(clean: DataFrame, periods: Sequence[dt.date]) -> DataFrame:
    """Windows partitioned by (member, period) only, so one shuffle whatever the data size."""
    bounds = F.broadcast(periods_frame(clean.sparkSession, periods)).select("period_start")
    keys = ("msno", "period_start")
    # Each period sees only the transactions dated before it: no leakage.
    before = clean.join(bounds, F.col("transaction_date") < F.col("period_start"), "inner")
    rows = with_changes(with_subscription(before, keys=keys), keys=keys)
    member = Window.partitionBy(*keys)
    subscription = Window.partitionBy(*keys, "subscription_seq")
    moved_later = F.col("days_change_in_membership_expire_date") > 0

    def renewal_sum(column: str) -> Column:
        return F.sum(F.when(moved_later, F.col(column)).otherwise(0)).over(subscription)

    lookback = F.date_sub(F.col("period_start"), LOOKBACK_DAYS)
    latest_first = member.orderBy(F.col("transaction_date").desc())
    return (
        rows.withColumn("renewals", F.sum(moved_later.cast("int")).over(subscription))
        .withColumn("total_list_price", renewal_sum("plan_list_price"))
        .withColumn("total_amount_paid", renewal_sum("actual_amount_paid"))
        .withColumn("total_discount", renewal_sum("discount"))
        .withColumn("total_subscription_count", F.max("subscription_seq").over(member) + F.lit(1))
        .withColumn("cancel_count", F.sum("is_cancel").over(member))
        .withColumn("_rank", F.row_number().over(latest_first))
        # The last transaction is in the member's last subscription, which started before P;
        # it is current unless it ended 30 days or more before P.
        .where((F.col("_rank") == 1) & (F.col("subscription_end") > lookback))
        .drop("_rank")
    )


def _transaction_features(current: DataFrame, members: DataFrame) -> DataFrame:
    p = F.col("period_start")
    gender = F.when(F.col("gender") == "female", 0).when(F.col("gender") == "male", 1).cast("int")
    bd = F.when(F.col("bd").between(BD_MIN, BD_MAX), F.col("bd")).cast("int")
    demographics = members.select(
        "msno",
        F.col("city").cast("int").alias("city"),
        bd.alias("bd"),
        gender.alias("gender"),
        F.col("registered_via").cast("int").alias("registered_via"),
    ).dropDuplicates(["msno"])
    features = current.select(
        "msno",
        "period_start",
        F.year("subscription_start").alias("start_year"),
        F.month("subscription_start").alias("start_month"),
        F.datediff("transaction_date", "subscription_start").alias("subscription_age"),
        F.col("renewals").cast("int").alias("renewals"),
        F.col("total_list_price").cast("long").alias("total_list_price"),
        F.col("total_amount_paid").cast("long").alias("total_amount_paid"),
        F.col("total_discount").cast("long").alias("total_discount"),
        F.datediff(p, F.col("transaction_date")).alias("days_since_last_account_action"),
        F.col("plan_list_price").alias("last_plan_list_price"),
        F.col("actual_amount_paid").alias("last_actual_amount_paid"),
        F.col("discount").alias("last_discount"),
        F.col("payment_plan_days").alias("last_payment_plan_days"),
        F.col("payment_method_id").alias("last_payment_method"),
        F.col("is_cancel").alias("last_is_cancel"),
        F.col("is_auto_renew").alias("last_is_auto_renew"),
        F.col("change_in_list_price").alias("last_change_in_list_price"),
        F.col("change_in_discount").alias("last_change_in_discount"),
        F.col("change_in_payment_plan_days").alias("last_change_in_payment_plan_days"),
        F.col("change_in_payment_method_id").alias("last_change_in_payment_method_id"),
        F.col("change_in_cancellation").alias("last_change_in_cancellation"),
        F.col("change_in_auto_renew").alias("last_change_in_auto_renew"),
        F.col("days_change_in_membership_expire_date").alias(
            "last_days_change_in_membership_expire_date"
        ),
        F.datediff(p, F.col("membership_expire_date")).alias("days_until_expiration"),
        F.col("total_subscription_count").cast("int").alias("total_subscription_count"),
    )
    joined = features.join(demographics, "msno", "left")
    return joined.select("msno", "period_start", *TRANSACTION_FEATURES)


def _ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, 0 when the denominator is 0 (the reference's coalesce)."""
    return F.when(denominator != 0, numerator / denominator).otherwise(F.lit(0.0)).cast("double")


def _activity_window() -> tuple[Column, Column]:
    """The reference's activity window: from max(subscription start, P − 30) to P − 1."""
    p = F.col("period_start")
    return F.greatest(F.col("_sub_start"), F.date_sub(p, LOOKBACK_DAYS)), F.date_sub(p, 1)


def _activity_sums() -> dict[str, Column]:
    """The activity window's sums over a member's days with log rows (`window_sums`): days
    with a session, and each measure, in the window and after the current expiry."""
    start, _ = _activity_window()
    inside = F.col("date") >= start  # the pass reads days before P only
    after_exp = inside & (F.col("date") > F.col("_exp"))
    sums = {
        "days_with_session": inside.cast("int"),
        "days_after_exp_with_session": after_exp.cast("int"),
    }
    for measure, day in _DAILY_MEASURE.items():
        sums[measure] = F.when(inside, F.col(day)).otherwise(0)
        sums[f"{measure}_after_exp"] = F.when(after_exp, F.col(day)).otherwise(0)
    return sums


def _activity_columns(logs: tuple[dt.date | None, dt.date | None]) -> list[Column]:
    """The 30 activity features from the window's sums (zero denominators → 0); NULL where
    the logs do not cover the window (unknown, never a count of zero)."""
    start, end = _activity_window()
    days_total = F.datediff(end, start) + 1
    first_after_exp = F.greatest(F.date_sub(start, 1), F.col("_exp"))
    days_after_exp = F.greatest(F.lit(0), F.datediff(end, first_after_exp))
    with_session, after_with_session = (
        F.col("days_with_session"),
        F.col("days_after_exp_with_session"),
    )
    columns: dict[str, Column] = {
        "days_total": days_total.cast("int"),
        "days_with_session": with_session.cast("int"),
        "ratio_days_with_session_to_days": _ratio(with_session, days_total),
        "days_after_exp": days_after_exp.cast("int"),
        "days_after_exp_with_session": after_with_session.cast("int"),
        "ratio_days_after_exp_with_session_to_days_after_exp": _ratio(
            after_with_session, days_after_exp
        ),
    }
    for x in _ACTIVITY_MEASURES:
        total, after = F.col(x), F.col(f"{x}_after_exp")
        kind = "double" if x == "seconds_total" else "long"
        columns[x] = total.cast(kind)
        columns[f"ratio_{x}_to_days_total"] = _ratio(total, days_total)
        columns[f"ratio_{x}_to_days_with_session"] = _ratio(total, with_session)
        columns[f"{x}_after_exp"] = after.cast(kind)
        columns[f"ratio_{x}_after_exp_to_days_after_exp"] = _ratio(after, days_after_exp)
        columns[f"ratio_{x}_after_exp_to_days_after_exp_with_session"] = _ratio(
            after, after_with_session
        )
    known = _covered(logs[0], logs[1], start, end)
    return [F.when(known, columns[name]).alias(name) for name in ACTIVITY_FEATURES]


# ---------------------------------------------------------------------------------------------
# engagement trend: fixed windows before P (listening that fades towards the expiry)

#: (name, first day before P, last day before P): 1–14, 15–30, 31–60 and 61–90 days back.
TREND_WINDOWS: tuple[tuple[str, int, int], ...] = (
    ("w14", 1, 14),
    ("w30", 15, 30),
    ("w60", 31, 60),
    ("w90", 61, 90),
)
TREND_FEATURES: tuple[str, ...] = (
    *[f"{m}_{w}" for w, _, _ in TREND_WINDOWS for m in ("active_share", "plays_per_day",
                                                        "plays_per_active_day")],
    "active_trend",
    "plays_trend",
    "ramp_active",
    "flat_active",
    "ramp_ratio",
    "ramp_plays",
    "flat_plays",
    "ramp_plays_ratio",
    "cancel_count",
)  # fmt: skip
#: All model inputs, in the order the model sees them: the reference set, the trend and the
#: shift against the member's usual level (`engagement.py`), and how far the member had faded
#: on the billing day by the engagement model (`fading.py`).
FEATURE_COLUMNS: tuple[str, ...] = (
    REFERENCE_FEATURES + TREND_FEATURES + SHIFT_FEATURES + FADE_FEATURES
)


def _trend_sums() -> dict[str, Column]:
    """The trend's sums over a member's days with log rows (`window_sums`): listening weighed
    by the fall towards the expiry (`fade_ramp`) over its DECLINE_DAYS, and per window."""
    back, plays = day_back(), F.col("plays")
    near = back <= DECLINE_DAYS
    ramp = fade_ramp(F.col("date"), F.col("_exp"))
    sums = {
        "_ramp_days": F.when(near, ramp).otherwise(0.0),
        "_flat_days": F.when(near, 1 - ramp).otherwise(0.0),
        "_ramp_plays": F.when(near, ramp * plays).otherwise(0.0),
        "_flat_plays": F.when(near, (1 - ramp) * plays).otherwise(0.0),
    }
    for name, lo, hi in TREND_WINDOWS:
        inside = back.between(lo, hi)
        sums[f"_days_{name}"] = inside.cast("int")
        sums[f"_plays_{name}"] = F.when(inside, plays).otherwise(0)
    return sums


def _ramp_columns(logs: tuple[dt.date | None, dt.date | None]) -> dict:
    """Listening where a fading member's fall is expected (weighted by the ramp towards the
    known expiry) against where it is not: a fall aligned with the member's own expiry.
    `_ramp_sum` (`with_ramp_moments`): the ramp's total over the DECLINE_DAYS before P."""
    p = F.col("period_start")
    ramp_total = F.col("_ramp_sum")
    flat_total = F.lit(float(DECLINE_DAYS)) - ramp_total
    known = _covered(logs[0], logs[1], F.date_sub(p, DECLINE_DAYS), F.date_sub(p, 1))

    def share(column: str, total: Column) -> Column:
        value = F.coalesce(F.col(column), F.lit(0.0))
        return F.when(known, F.when(total > 0, value / total).otherwise(F.lit(0.0)))

    columns = {
        "ramp_active": share("_ramp_days", ramp_total),
        "flat_active": share("_flat_days", flat_total),
        "ramp_plays": share("_ramp_plays", ramp_total),
        "flat_plays": share("_flat_plays", flat_total),
    }
    columns["ramp_ratio"] = (columns["ramp_active"] + 0.05) / (columns["flat_active"] + 0.05)
    columns["ramp_plays_ratio"] = (columns["ramp_plays"] + 1) / (columns["flat_plays"] + 1)
    return columns


def _trend_columns(logs: tuple[dt.date | None, dt.date | None]) -> list[Column]:
    """The engagement trend from the window's sums (NULL where the logs do not cover a
    window)."""
    columns: dict[str, Column] = {"cancel_count": F.col("cancel_count").cast("int")}
    columns.update(_ramp_columns(logs))
    for name, lo, hi in TREND_WINDOWS:
        length = hi - lo + 1
        known = _covered(
            logs[0], logs[1], F.date_sub(F.col("period_start"), hi), F.date_sub("period_start", lo)
        )
        days = F.coalesce(F.col(f"_days_{name}"), F.lit(0))
        total = F.coalesce(F.col(f"_plays_{name}"), F.lit(0))
        columns[f"active_share_{name}"] = F.when(known, days / length)
        columns[f"plays_per_day_{name}"] = F.when(known, total / length)
        columns[f"plays_per_active_day_{name}"] = F.when(known & (days > 0), total / days)
    for measure in ("active_share", "plays_per_day"):
        recent = columns[f"{measure}_w14"]
        baseline = (columns[f"{measure}_w60"] + columns[f"{measure}_w90"]) / 2
        columns[f"{measure.split('_')[0]}_trend"] = (recent + 0.05) / (baseline + 0.05)
    return [
        columns[name].cast("double" if name != "cancel_count" else "int").alias(name)
        for name in TREND_FEATURES
    ]
