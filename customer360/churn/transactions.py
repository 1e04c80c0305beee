"""Pure Spark transforms of KKBox transactions: clean-up, subscription windows, enhanced log.

All functions take and return DataFrames (no I/O). Dates are DateType columns as the readers
produce them. The rules follow the reference notes (reference/churn.md §3.2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

#: A subscription ends when the next transaction comes more than this many days after expiry.
SUBSCRIPTION_GAP_DAYS = 30
#: Start of the real KKBox log history; the previous end of a member's first subscription.
HISTORY_START = dt.date(2015, 1, 1)

_EPOCH = dt.date(1970, 1, 1)


def official_order(descending: bool = False) -> list[Column]:
    """The ordering of KKBox's official labeller for one member's transactions.

    By transaction date; on the same date the larger plan signature
    (`plan_list_price ‖ payment_plan_days ‖ payment_method_id`, compared as a string) first;
    for the same plan a subscription before a cancel; among cancels the earliest expiry last;
    among subscriptions the latest expiry last. `descending=True` reverses it (last first).
    """
    signature = F.concat(
        F.col("plan_list_price").cast("string"),
        F.col("payment_plan_days").cast("string"),
        F.col("payment_method_id").cast("string"),
    )
    expiry_days = F.datediff(F.col("membership_expire_date"), F.lit(_EPOCH))
    expiry_key = F.when(F.col("is_cancel") == 1, -expiry_days).otherwise(expiry_days)
    ascending = [
        F.col("transaction_date").asc(),
        signature.desc(),
        F.col("is_cancel").asc(),
        expiry_key.asc(),
    ]
    if not descending:
        return ascending
    return [
        F.col("transaction_date").desc(),
        signature.asc(),
        F.col("is_cancel").desc(),
        expiry_key.desc(),
    ]


def transactions_clean(transactions: DataFrame) -> DataFrame:
    """One final record per (msno, transaction_date), plus `discount`.

    The final record is the last in `official_order`; its expiry is the max of the day's
    expiries when it is a subscription, the min when it is a cancel. `discount` is
    plan_list_price − actual_amount_paid.
    """
    day = Window.partitionBy("msno", "transaction_date")
    ranked = (
        transactions.withColumn("_rank", F.row_number().over(day.orderBy(*official_order(True))))
        .withColumn("_max_expiry", F.max("membership_expire_date").over(day))
        .withColumn("_min_expiry", F.min("membership_expire_date").over(day))
    )
    expiry = F.when(F.col("is_cancel") == 1, F.col("_min_expiry")).otherwise(F.col("_max_expiry"))
    return (
        ranked.where(F.col("_rank") == 1)
        .withColumn("membership_expire_date", expiry)
        .withColumn("discount", F.col("plan_list_price") - F.col("actual_amount_paid"))
        .drop("_rank", "_max_expiry", "_min_expiry")
    )


def subscription_windows(clean: DataFrame, as_of: dt.date | None = None) -> DataFrame:
    """Contiguous subscriptions: (subscription_id, msno, subscription_start, subscription_end).

    Input: `transactions_clean`. With `as_of`, only transactions dated before it are used, so
    features for a period see no future transaction. A backdated expiry is first floored at its
    transaction date. A subscription ends at a transaction with no next transaction, or whose
    next transaction comes more than 30 days after its expiry; it ends on that expiry, and
    starts at its first transaction after the previous end. `subscription_id` = row_number by
    (subscription_start, msno).
    """
    windows = (
        with_subscription(clean, as_of)
        .select("msno", "subscription_start", "subscription_end")
        .distinct()
    )
    order = Window.orderBy("subscription_start", "msno")
    return windows.select(
        F.row_number().over(order).cast("long").alias("subscription_id"),
        "msno",
        "subscription_start",
        "subscription_end",
    )


def transactions_enhanced(clean: DataFrame, windows: DataFrame) -> DataFrame:
    """Clean transactions joined to their subscription, with changes from the previous one.

    `windows` is `subscription_windows(clean, as_of)`; only transactions inside a window are
    kept. Adds subscription_id, subscription_start, subscription_end and, per subscription by
    date (0 for its first transaction): days_since_last_transaction, change_in_list_price,
    change_in_actual_amount_paid, change_in_discount, change_in_payment_plan_days,
    change_in_payment_method_id (0/1), change_in_cancellation and change_in_auto_renew
    (0 same, -1 switched to 0, +1 switched to 1), days_change_in_membership_expire_date.
    """
    w = windows.alias("w")
    t = clean.alias("t")
    inside = (F.col("t.msno") == F.col("w.msno")) & F.col("t.transaction_date").between(
        F.col("w.subscription_start"), F.col("w.subscription_end")
    )
    joined = t.join(w, inside, "inner").select(
        "t.*", "w.subscription_id", "w.subscription_start", "w.subscription_end"
    )
    # with_changes partitions by (msno, subscription_seq); one subscription id per such pair.
    return with_changes(joined.withColumn("subscription_seq", F.col("subscription_id"))).drop(
        "subscription_seq"
    )


CHANGE_COLUMNS = (
    "days_since_last_transaction",
    "change_in_list_price",
    "change_in_actual_amount_paid",
    "change_in_discount",
    "change_in_payment_plan_days",
    "change_in_payment_method_id",
    "change_in_cancellation",
    "change_in_auto_renew",
    "days_change_in_membership_expire_date",
)


def with_subscription(
    clean: DataFrame, as_of: dt.date | None = None, keys: Sequence[str] = ("msno",)
) -> DataFrame:
    """Clean transactions (before `as_of`) + subscription_seq, subscription_start, _end.

    Every window is partitioned by `keys` (the member, plus e.g. `period_start` when one pass
    serves several periods), so the computation costs one shuffle; `subscription_seq` numbers a
    member's subscriptions from 0.
    """
    rows = clean if as_of is None else clean.where(F.col("transaction_date") < F.lit(as_of))
    member = Window.partitionBy(*keys).orderBy("transaction_date")
    expiry = F.greatest(F.col("membership_expire_date"), F.col("transaction_date"))
    next_date = F.lead("transaction_date").over(member)
    ends = next_date.isNull() | (F.datediff(next_date, expiry) > SUBSCRIPTION_GAP_DAYS)
    before = member.rowsBetween(Window.unboundedPreceding, -1)
    subscription = Window.partitionBy(*keys, "subscription_seq")
    return (
        rows.withColumn("_expiry", expiry)
        .withColumn("_ends", ends)
        .withColumn(
            "subscription_seq",
            F.coalesce(F.sum(F.col("_ends").cast("int")).over(before), F.lit(0)),
        )
        .withColumn("subscription_start", F.min("transaction_date").over(subscription))
        # The one ending row of each subscription is its last; its floored expiry is the end.
        .withColumn(
            "subscription_end", F.max(F.when(F.col("_ends"), F.col("_expiry"))).over(subscription)
        )
        .drop("_expiry", "_ends")
    )


def with_changes(rows: DataFrame, keys: Sequence[str] = ("msno",)) -> DataFrame:
    """Add `CHANGE_COLUMNS` to `with_subscription` rows (per subscription, by date; 0 first)."""
    sub = Window.partitionBy(*keys, "subscription_seq").orderBy("transaction_date")

    def change(column: str) -> Column:
        return F.coalesce(F.col(column) - F.lag(column).over(sub), F.lit(0))

    def days_change(column: str) -> Column:
        return F.coalesce(F.datediff(column, F.lag(column).over(sub)), F.lit(0))

    method_changed = F.col("payment_method_id") != F.lag("payment_method_id").over(sub)
    return (
        rows.withColumn("days_since_last_transaction", days_change("transaction_date"))
        .withColumn("change_in_list_price", change("plan_list_price"))
        .withColumn("change_in_actual_amount_paid", change("actual_amount_paid"))
        .withColumn("change_in_discount", change("discount"))
        .withColumn("change_in_payment_plan_days", change("payment_plan_days"))
        .withColumn("change_in_payment_method_id", F.coalesce(method_changed.cast("int"), F.lit(0)))
        .withColumn("change_in_cancellation", change("is_cancel"))
        .withColumn("change_in_auto_renew", change("is_auto_renew"))
        .withColumn("days_change_in_membership_expire_date", days_change("membership_expire_date"))
    )
