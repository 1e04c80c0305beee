"""Engagement shift features: how a member's listening has moved against their own usual level.

The reference set looks at 30 days and the trend windows at fixed distances from the period;
neither knows the member's usual level, and neither lines up with the member's own billing.
These features do (all from logs dated before the period P, so nothing leaks):

- `base_active_share` / `base_plays_per_day`: the member's usual listening, 91–180 days before
  P — before any fall that leads up to an expiry in P can have started — on the days of the
  current subscription the logs cover; NULL when fewer than `MIN_BASE_DAYS` (a new member has
  no usual level yet: the days before joining would make anyone look like a fast riser).
- `active_decline` / `plays_decline`: the share of that usual level lost by the expiry, fitted
  by least squares to a fall that grows linearly over the `DECLINE_DAYS` before the member's
  current expiry (0: no fall, 1: silent at the expiry). Expiry-aligned, so a member whose
  expiry is late in P is not compared with one whose expiry is early.
- `decline_ratio`: listening on the days of that fall (weighted towards the expiry) against
  the usual level, smoothed.
- `term_active_share` / `term_plays_per_day` / `term_vs_base`: listening since the member's
  last transaction (the current paid term): a fall that belonged to the previous term and was
  followed by a renewal shows up here as a recovery.
- `prebill_active_share` / `prebill_plays_per_day` / `prebill_vs_base`: listening in the
  `PREBILL_DAYS` before the member's last transaction (the billing at which the renewal of the
  current term is decided), against the usual level; `term_vs_prebill`: the term against those
  days (a fall under way at the billing goes on after it, a recovery does not). Disengagement
  precedes the decision: these are the days that show how far it had gone by then. NULL under
  `MIN_PREBILL_DAYS` covered subscribed days (e.g. a first transaction).
- `days_since_listen`: days from the last day with a log row to P (181 when none in the 180
  days the logs cover).

Windows the logs do not cover are NULL (unknown), never zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from customer360.churn.log_window import BLOCK_DAYS, WINDOW_DAYS, day_back, window_sums

#: The usual level is measured 91–180 days before P (the window pass reaches that far).
BASE_FROM, BASE_TO = WINDOW_DAYS, 91
#: A usual level needs at least this many covered days.
MIN_BASE_DAYS = 14
#: Days before the expiry over which a fall in listening is fitted.
DECLINE_DAYS = 90
#: Days before the last transaction that show the listening at the billing, and how many of
#: them (subscribed, covered by the logs) a value needs.
PREBILL_DAYS, MIN_PREBILL_DAYS = 21, 7
#: The week each side of the last transaction: where a fall under way at the billing is
#: steepest (the 21 days before it average a fall with what came before it).
BILL_WEEK = 7
#: The member's peak level: the best of the 30-day blocks of the 180 days before P with at
#: least `MIN_PEAK_DAYS` subscribed days covered by the logs. A fall that began before the
#: usual-level window (91–180 days before P) drags that window down too; the peak does not.
#: The blocks are the window pass's.
PEAK_BLOCK, MIN_PEAK_DAYS = BLOCK_DAYS, 20

SHIFT_FEATURES: tuple[str, ...] = (
    "base_active_share",
    "base_plays_per_day",
    "active_decline",
    "plays_decline",
    "decline_ratio",
    "term_active_share",
    "term_plays_per_day",
    "term_vs_base",
    "prebill_active_share",
    "prebill_plays_per_day",
    "prebill_vs_base",
    "term_vs_prebill",
    "days_since_listen",
    "bill_week_vs_base",
    "bill_week_plays_vs_base",
    "after_bill_week_vs_base",
    "after_bill_week_plays_vs_base",
    "peak_active_share",
    "peak_plays_per_day",
    "prebill_vs_peak",
    "bill_week_vs_peak",
)


def covered(first: dt.date | None, last: dt.date | None, lo: Column, hi: Column) -> Column:
    """True when the logs cover every day of [lo, hi]."""
    if first is None or last is None:
        return F.lit(False)
    return (F.lit(first) <= lo) & (F.lit(last) >= hi)


def _covered_days(first: dt.date | None, last: dt.date | None, lo: Column, hi: Column) -> Column:
    """How many days of [lo, hi] the logs cover (0 when none)."""
    if first is None or last is None:
        return F.lit(0)
    span = F.datediff(F.least(hi, F.lit(last)), F.greatest(lo, F.lit(first))) + 1
    return F.greatest(span, F.lit(0))


def fade_ramp(day: Column, expiry: Column) -> Column:
    """How far into the fall before the expiry a day is: 0 before expiry − DECLINE_DAYS,
    rising linearly to 1 at the expiry (the trend and the shift both weigh days by it)."""
    into = F.datediff(day, F.date_sub(expiry, DECLINE_DAYS)) / F.lit(float(DECLINE_DAYS))
    return F.least(F.greatest(into, F.lit(0.0)), F.lit(1.0))


def _ramp_moments(period: Column, expiry: Column) -> tuple[Column, Column]:
    """(Σ ramp, Σ ramp²) over every day of the DECLINE_DAYS before P, listened or not.
    Higher-order functions: `with_ramp_moments` computes them once per row (`_ramp_sum`,
    `_ramp_square`, which the trend reads too); inlined in each feature that uses them they
    ran nine times per row."""
    days = F.sequence(F.lit(1), F.lit(DECLINE_DAYS))

    def total(power: int) -> Column:
        def add(acc: Column, k: Column) -> Column:
            return acc + F.pow(fade_ramp(F.date_sub(period, k), expiry), power)

        return F.aggregate(days, F.lit(0.0), add)

    return total(1), total(2)


def shift_features(
    current: DataFrame,
    user_logs: DataFrame,
    periods: Sequence[dt.date],
    logs: tuple[dt.date | None, dt.date | None],
) -> DataFrame:
    """msno, period_start + `SHIFT_FEATURES` for the members of `current` (one row per member
    and period with its last transaction before P: transaction_date, membership_expire_date,
    subscription_start). The features module takes the same sums in its one pass over the
    logs with the other window groups (`log_window.py`)."""
    frame = window_sums(current, user_logs, periods, shift_sums(), *peak_blocks(logs))
    return with_ramp_moments(frame).select("msno", "period_start", *shift_columns(logs))


def shift_sums() -> dict[str, Column]:
    """The shift's sums over a member's days with log rows (`log_window.window_sums`)."""
    date, back, plays = F.col("date"), day_back(), F.col("plays")
    last_tx = F.col("_last_tx")
    subscribed = date >= F.col("_sub_start")
    # The usual level only counts days the member was subscribed (not before joining).
    in_base = (back >= BASE_TO) & subscribed
    in_term = date >= last_tx
    in_prebill = (date < last_tx) & (date >= F.date_sub(last_tx, PREBILL_DAYS)) & subscribed
    in_bill_week = in_prebill & (date >= F.date_sub(last_tx, BILL_WEEK))
    in_after_bill_week = in_term & (date < F.date_add(last_tx, BILL_WEEK))
    ramp = fade_ramp(date, F.col("_exp"))
    return {
        "_base_days": in_base.cast("int"),
        "_base_plays": F.when(in_base, plays).otherwise(0),
        "_decline_days": F.when(~in_base, ramp).otherwise(0.0),
        "_decline_plays": F.when(~in_base, ramp * plays).otherwise(0.0),
        "_term_days": in_term.cast("int"),
        "_term_plays": F.when(in_term, plays).otherwise(0),
        "_prebill_days": in_prebill.cast("int"),
        "_prebill_plays": F.when(in_prebill, plays).otherwise(0),
        "_bill_week_days": in_bill_week.cast("int"),
        "_bill_week_plays": F.when(in_bill_week, plays).otherwise(0),
        "_after_bill_week_days": in_after_bill_week.cast("int"),
        "_after_bill_week_plays": F.when(in_after_bill_week, plays).otherwise(0),
    }


def peak_blocks(
    logs: tuple[dt.date | None, dt.date | None],
) -> tuple[dict[str, Column], list[Column]]:
    """(per 30-day block: its listened subscribed days, their plays and the subscribed days
    the logs cover; over the blocks: _peak_active, _peak_plays). The peak is the best block's
    listened days and plays per covered subscribed day of the 180 days before P; blocks with
    fewer than MIN_PEAK_DAYS covered subscribed days, or without a listened subscribed day,
    do not count (NULL when none does)."""
    p, first, last, block = F.col("period_start"), *logs, F.col("_block")
    subscribed = F.col("date") >= F.col("_sub_start")
    lo = F.greatest(F.date_sub(p, (block + 1) * PEAK_BLOCK), F.col("_sub_start"))
    cover = _covered_days(first, last, lo, F.date_sub(p, block * PEAK_BLOCK + 1))
    per_block = {
        "_block_days": F.sum(subscribed.cast("int")),
        "_block_plays": F.sum(F.when(subscribed, F.col("plays"))),
        "_block_cover": F.max(cover),  # the same on every day of the block
    }
    days, cover = F.col("_block_days"), F.col("_block_cover")
    counts = (cover >= MIN_PEAK_DAYS) & (days > 0)
    return per_block, [
        F.max(F.when(counts, days / cover)).alias("_peak_active"),
        F.max(F.when(counts, F.col("_block_plays") / cover)).alias("_peak_plays"),
    ]


def with_ramp_moments(frame: DataFrame) -> DataFrame:
    """`frame` (period_start, _exp) with `_ramp_sum` and `_ramp_square` (`_ramp_moments`)."""
    ramp_sum, ramp_square = _ramp_moments(F.col("period_start"), F.col("_exp"))
    return frame.withColumn("_ramp_sum", ramp_sum).withColumn("_ramp_square", ramp_square)


def _zero(name: str) -> Column:
    """A summed column as a double, 0 for a member-period without log rows (left join)."""
    return F.coalesce(F.col(name).cast("double"), F.lit(0.0))


def shift_columns(logs: tuple[dt.date | None, dt.date | None]) -> list[Column]:
    p = F.col("period_start")
    first, last = logs
    base_from = F.greatest(F.date_sub(p, BASE_FROM), F.col("_sub_start"))
    base_cover = _covered_days(first, last, base_from, F.date_sub(p, BASE_TO))
    has_base = base_cover >= MIN_BASE_DAYS
    base_active = F.when(has_base, _zero("_base_days") / base_cover)
    base_plays = F.when(has_base, _zero("_base_plays") / base_cover)
    ramp_sum, ramp_square = F.col("_ramp_sum"), F.col("_ramp_square")
    has_ramp = covered(first, last, F.date_sub(p, DECLINE_DAYS), F.date_sub(p, 1))

    def decline(base: Column, observed: str) -> Column:
        # Least squares of listening = base · (1 − k · ramp):
        # k = Σ ramp · (base − x) / (base · Σ ramp²).
        fitted = (base * ramp_sum - _zero(observed)) / (base * ramp_square)
        return F.when(has_ramp & (base > 0), F.when(ramp_square > 0, fitted).otherwise(0.0))

    ramp_active = F.when(ramp_sum > 0, _zero("_decline_days") / ramp_sum).otherwise(0.0)
    # The term is looked at over at most BASE_FROM days (the logs joined above).
    term_from = F.greatest(F.col("_last_tx"), F.date_sub(p, BASE_FROM))
    term_cover = _covered_days(first, last, term_from, F.date_sub(p, 1))
    has_term = term_cover > 0
    term_active = F.when(has_term, _zero("_term_days") / term_cover)
    weeks = _bill_weeks(logs)
    prebill = weeks["prebill"][0]
    peak = F.col("_peak_active")
    columns = {
        "base_active_share": base_active,
        "base_plays_per_day": base_plays,
        "active_decline": decline(base_active, "_decline_days"),
        "plays_decline": decline(base_plays, "_decline_plays"),
        "decline_ratio": F.when(has_ramp, (ramp_active + 0.05) / (base_active + 0.05)),
        "term_active_share": term_active,
        "term_plays_per_day": F.when(has_term, _zero("_term_plays") / term_cover),
        "term_vs_base": (term_active + 0.05) / (base_active + 0.05),
        "prebill_active_share": prebill,
        "prebill_plays_per_day": weeks["prebill"][1],
        "prebill_vs_base": (prebill + 0.05) / (base_active + 0.05),
        "term_vs_prebill": (term_active + 0.05) / (prebill + 0.05),
        "days_since_listen": _days_since_listen(logs),
        **{
            f"{name}_vs_base": (active + 0.05) / (base_active + 0.05)
            for name, (active, _) in weeks.items()
            if name != "prebill"
        },
        **{
            f"{name}_plays_vs_base": (plays + 1.0) / (base_plays + 1.0)
            for name, (_, plays) in weeks.items()
            if name != "prebill"
        },
        "peak_active_share": peak,
        "peak_plays_per_day": F.col("_peak_plays"),
        "prebill_vs_peak": (prebill + 0.05) / (peak + 0.05),
        "bill_week_vs_peak": (weeks["bill_week"][0] + 0.05) / (peak + 0.05),
    }
    return [columns[name].cast("double").alias(name) for name in SHIFT_FEATURES]


def _bill_weeks(
    logs: tuple[dt.date | None, dt.date | None],
) -> dict[str, tuple[Column, Column]]:
    """Listened-day share and plays per day around the last transaction (the billing), each
    over subscribed days inside the 180 days the logs were joined over:

    - "prebill": the PREBILL_DAYS before it, NULL under MIN_PREBILL_DAYS covered days;
    - "bill_week" / "after_bill_week": the BILL_WEEK days before it / from it (to P − 1), NULL
      unless the logs cover every such day."""
    p, first, last = F.col("period_start"), *logs
    bill = F.col("_last_tx")
    start = F.greatest(F.col("_sub_start"), F.date_sub(p, BASE_FROM))

    def shares(prefix: str, lo: Column, hi: Column, least: int | None) -> tuple[Column, Column]:
        """`least`: covered days needed (None: every day of [lo, hi])."""
        cover = _covered_days(first, last, lo, hi)
        whole = (cover == F.datediff(hi, lo) + 1) & (cover > 0)
        ok = whole if least is None else cover >= least
        return (
            F.when(ok, _zero(f"_{prefix}_days") / cover),
            F.when(ok, _zero(f"_{prefix}_plays") / cover),
        )

    before = F.date_sub(bill, 1)
    week_end = F.least(F.date_add(bill, BILL_WEEK - 1), F.date_sub(p, 1))
    return {
        "prebill": shares(
            "prebill", F.greatest(F.date_sub(bill, PREBILL_DAYS), start), before, MIN_PREBILL_DAYS
        ),
        "bill_week": shares(
            "bill_week", F.greatest(F.date_sub(bill, BILL_WEEK), start), before, None
        ),
        "after_bill_week": shares("after_bill_week", bill, week_end, None),
    }


def _days_since_listen(logs: tuple[dt.date | None, dt.date | None]) -> Column:
    """Days from the last day with a log row to P; BASE_FROM + 1 when the logs cover the
    BASE_FROM days before P and none has a row; NULL when they do not cover them."""
    p, first, last = F.col("period_start"), *logs
    return F.when(F.col("_last_listen").isNotNull(), F.datediff(p, F.col("_last_listen"))).when(
        covered(first, last, F.date_sub(p, BASE_FROM), F.date_sub(p, 1)), BASE_FROM + 1
    )
