"""silver/customer_finance: one row per customer and month, rebuilt only when bronze changed."""

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from customer360.lakehouse import DeltaLake, WriteResult
from customer360.lakehouse.incremental import (
    ConsumerState,
    current_result,
    full_refresh_reason,
    read_state,
    table_versions,
    write_state,
)
from customer360.transforms.finance import BRONZE_SCHEMA, monthly_finance

CONSUMER = "silver/customer_finance"  # its row in ops/medallion_state
OUTPUTS = [("silver", "customer_finance")]
BRONZE = ("bronze", "customer_finance")
#: Why nothing is built before the first finance drop (the asset's `skipped` metadata).
NOT_LANDED = "no finance files landed in landing/finance/ yet"


def empty_monthly() -> pa.Table:
    """No rows, the columns of silver/customer_finance (monthly_finance): what consumers read
    before any finance landed."""
    money = BRONZE_SCHEMA.field("spend").type
    return pa.schema(
        [("cid", pa.int64()), ("month", pa.string()), ("month_start", pa.date32()),
         ("income", money), ("spend", money), ("source_file", pa.string())]
    ).empty_table()  # fmt: skip


@dataclass(frozen=True)
class FinanceRefresh:
    result: WriteResult
    refresh: str  # "full" or "unchanged"
    reason: str | None
    duplicate_keys: int  # (cid, month) pairs with more than one row


@dataclass(frozen=True)
class Orphans:
    """Finance customers that are not silver customers (referential integrity)."""

    count: int
    sample: list
    customers: int


def finance_landed(lake: DeltaLake) -> bool:
    """Whether any finance drop reached bronze (before that, silver has nothing to build)."""
    return lake.exists(*BRONZE)


def refresh_finance(
    spark: Callable[[], SparkSession], lake: DeltaLake, requested: bool
) -> FinanceRefresh:
    """Rebuild silver/customer_finance when bronze finance changed. `spark` gives the session
    only when needed: an unchanged table never starts a JVM. Call only once finance_landed."""
    bronze = lake.table(*BRONZE)
    inputs = {"bronze/customer_finance": [bronze.metadata().id, bronze.version()]}
    state = read_state(lake, CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, OUTPUTS, requested)
    if reason is None and "duplicate_keys" in state.facts:
        refresh, result = "unchanged", current_result(lake, "silver", "customer_finance")
        duplicates = int(state.facts["duplicate_keys"])  # the table is the one it was found in
    else:
        refresh = "full"
        rows = lake.read(spark(), "bronze", "customer_finance", version=bronze.version())
        result = lake.write(monthly_finance(rows), "silver", "customer_finance")
        keys = lake.read_arrow("silver", "customer_finance", columns=["cid", "month"])
        grouped = keys.group_by(["cid", "month"]).aggregate([([], "count_all")])
        duplicates = int(pc.sum(pc.greater(grouped["count_all"], 1)).as_py() or 0)
    versions = table_versions(lake, OUTPUTS)
    facts = {"duplicate_keys": duplicates}
    write_state(lake, ConsumerState(CONSUMER, inputs=inputs, outputs=versions, facts=facts))
    return FinanceRefresh(result, refresh, reason, duplicates)


def orphan_customers(lake: DeltaLake, sample_size: int = 20) -> Orphans:
    finance_cids = pc.unique(
        lake.read_arrow("silver", "customer_finance", columns=["cid"])["cid"].combine_chunks()
    )
    customer_cids = lake.read_arrow("silver", "customer", columns=["cid"])["cid"]
    orphans = pc.filter(finance_cids, pc.invert(pc.is_in(finance_cids, customer_cids)))
    sample = orphans.take(pc.sort_indices(orphans)[:sample_size]).to_pylist()
    return Orphans(len(orphans), sample, len(customer_cids))
