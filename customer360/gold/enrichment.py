"""The profile's optional inputs: finance measures and churn risk.

Both are enrichments: the profile builds without them (null measures, no churn columns) and,
when their domain fails, with the last table it wrote successfully — a failed run never replaces
a Delta table, so the table in the lake is always the last good one. `describe` says which one a
build used, for the asset's metadata and the run summary.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from customer360.lakehouse import DeltaLake
from customer360.lakehouse.incremental import read_rows
from customer360.lakehouse.spark_arrow import arrow_to_spark
from customer360.lakehouse.store import count_rows
from customer360.silver.finance import empty_monthly

FINANCE_TABLE = ("silver", "customer_finance")
CHURN_RISK_TABLE = ("gold", "customer_churn_risk")
#: Enrichment name → (table, what its absence means).
ENRICHMENTS = {
    "finance": (FINANCE_TABLE, "no finance files landed (finance measures are null)"),
    "churn": (CHURN_RISK_TABLE, "no churn predictions (no KKBox files landed, or churn has not "
                                "succeeded yet): churn columns are null"),
}  # fmt: skip


def describe(lake: DeltaLake) -> dict[str, str]:
    """Per enrichment: the table and Delta version the profile reads, or why there is none."""
    out = {}
    for name, (table, absent) in ENRICHMENTS.items():
        if not lake.exists(*table):
            out[name] = f"none: {absent}"
            continue
        snapshot = lake.table(*table)
        written = snapshot.history(1)[0].get("timestamp")
        when = (
            dt.datetime.fromtimestamp(written / 1000, dt.UTC).isoformat(timespec="seconds")
            if written
            else "?"
        )
        out[name] = (
            f"{'/'.join(table)} version {snapshot.version()} written {when} "
            f"({count_rows(snapshot):,} rows)"
        )
    return out


def versions(lake: DeltaLake) -> dict[str, list | None]:
    """Identity and version of each enrichment table (None: absent) — a change rebuilds."""
    out: dict[str, list | None] = {}
    for table, _ in ENRICHMENTS.values():
        if lake.exists(*table):
            snapshot = lake.table(*table)
            out["/".join(table)] = [snapshot.metadata().id, snapshot.version()]
    return out


def read_finance(lake: DeltaLake, session):
    """silver/customer_finance as Spark, or an empty table of its schema when none landed."""
    if lake.exists(*FINANCE_TABLE):
        return lake.read(session, *FINANCE_TABLE)
    return arrow_to_spark(session, empty_monthly())


def finance_rows(lake: DeltaLake, cids: pa.Array | None) -> pa.Table:
    """The finance rows (cid, month, spend, income) of these customers (every customer: None);
    none when none landed."""
    columns = ["cid", "month", "spend", "income"]
    if not lake.exists(*FINANCE_TABLE):
        return empty_monthly().select(columns)
    if cids is None:
        return lake.read_arrow(*FINANCE_TABLE, columns=columns)
    return read_rows(lake, *FINANCE_TABLE, "cid", cids, columns=columns)
