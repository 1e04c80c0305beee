"""Tiny hand-made KKBox histories for the churn unit tests (imported by the test modules)."""

from __future__ import annotations

import datetime as dt

TRANSACTION_SCHEMA = (
    "msno string, payment_method_id int, payment_plan_days int, plan_list_price int, "
    "actual_amount_paid int, is_auto_renew int, transaction_date date, "
    "membership_expire_date date, is_cancel int"
)


def d(text: str) -> dt.date:
    """'2017-03-15' or '03-15' (year 2017) → date."""
    return dt.date.fromisoformat(text if len(text) == 10 else f"2017-{text}")


def txn(
    msno: str,
    transaction_date: str,
    expire_date: str,
    is_cancel: bool = False,
    *,
    plan_days: int = 30,
    list_price: int = 149,
    paid: int | None = None,
    method: int = 41,
    auto_renew: int = 1,
) -> tuple:
    return (
        msno,
        method,
        plan_days,
        list_price,
        list_price if paid is None else paid,
        auto_renew,
        d(transaction_date),
        d(expire_date),
        int(is_cancel),
    )


def transactions_df(spark, rows: list[tuple]):
    return spark.createDataFrame(rows, TRANSACTION_SCHEMA)
