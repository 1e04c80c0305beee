"""Asset checks that re-read a table from the lake, so an operator can run them on their own from
the UI ("Execute" on the check) without re-materialising anything. They also run with their asset
whenever it is materialised with its checks (e.g. "Materialize all"), and automation runs them
with every new materialisation of their asset (`eager`, in the same run): both are blocking,
and automation only builds downstream of an asset whose blocking checks passed
(`assets/refresh.py`), so a check automation never ran would stop everything below it.

Only invariants of the stored table belong here. The checks an asset reports itself (rejected
rows, publish outcomes, merge-rate drift, reconciliation against the run's own counts) describe
what that run did and stay with the asset.
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from assets.keys import CUSTOMER_KEY, HISTORY_KEY, QUARANTINE_KEY
from customer360.lakehouse.arrow_sql import arrow_query
from resources.lakehouse import LakehouseResource

_SAMPLE = 5  # ids listed when a check fails


def _missing(lakehouse: LakehouseResource, key: dg.AssetKey) -> dg.AssetCheckResult | None:
    layer, table = key.path
    if lakehouse.exists(layer, table):
        return None
    return dg.AssetCheckResult(
        passed=False,
        metadata={"problem": f"no Delta table at {lakehouse.uri(layer, table)}: materialise it"},
    )


@dg.asset_check(
    asset=HISTORY_KEY,
    name="one_current_row_per_id",
    blocking=True,
    automation_condition=dg.AutomationCondition.eager(),
    description="SCD2 history: every customer Id has at most one current (is_current) version.",
)
def one_current_row_per_id(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    if (missing := _missing(lakehouse, HISTORY_KEY)) is not None:
        return missing
    history = lakehouse.read_arrow(*HISTORY_KEY.path, columns=["Id", "is_current"])
    figures = arrow_query(
        f"""WITH dup AS (SELECT Id FROM h WHERE is_current GROUP BY Id HAVING count(*) > 1)
            SELECT (SELECT count(*) FROM dup) AS ids_with_several_current,
                   (SELECT count(DISTINCT Id) FROM h) AS ids,
                   (SELECT count(*) FROM h WHERE is_current) AS current_rows,
                   (SELECT list(Id ORDER BY Id)[1:{_SAMPLE}] FROM dup) AS sample""",
        h=history,
    ).to_pylist()[0]
    return dg.AssetCheckResult(
        passed=figures["ids_with_several_current"] == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "ids": figures["ids"],
            "current_rows": figures["current_rows"],
            "ids_with_several_current": figures["ids_with_several_current"],
            "sample": dg.MetadataValue.json([str(i) for i in figures["sample"] or []]),
        },
    )


@dg.asset_check(
    asset=CUSTOMER_KEY,
    name="one_row_per_id",
    blocking=True,
    automation_condition=dg.AutomationCondition.eager(),
    additional_deps=[QUARANTINE_KEY],
    description="Current state: each customer Id once in silver/customer and never also in "
    "silver/customer_quarantine.",
)
def one_row_per_id(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    for key in (CUSTOMER_KEY, QUARANTINE_KEY):
        if (missing := _missing(lakehouse, key)) is not None:
            return missing
    valid = lakehouse.read_arrow(*CUSTOMER_KEY.path, columns=["Id"])
    quarantined = lakehouse.read_arrow(*QUARANTINE_KEY.path, columns=["Id"])
    figures = _id_figures(valid, quarantined)
    return dg.AssetCheckResult(
        passed=figures["repeated_ids"] == 0 and figures["in_both"] == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows": valid.num_rows,
            "quarantined_rows": quarantined.num_rows,
            "repeated_ids": figures["repeated_ids"],
            "ids_also_quarantined": figures["in_both"],
            "sample": dg.MetadataValue.json([str(i) for i in figures["sample"] or []]),
        },
    )


def _id_figures(valid: pa.Table, quarantined: pa.Table) -> dict:
    return arrow_query(
        f"""WITH rep AS (SELECT Id FROM v GROUP BY Id HAVING count(*) > 1),
                 both_ AS (SELECT DISTINCT v.Id FROM v SEMI JOIN q ON v.Id = q.Id)
            SELECT (SELECT count(*) FROM rep) AS repeated_ids,
                   (SELECT count(*) FROM both_) AS in_both,
                   (SELECT list(Id ORDER BY Id)[1:{_SAMPLE}] FROM rep)
                       || (SELECT list(Id ORDER BY Id)[1:{_SAMPLE}] FROM both_) AS sample""",
        v=valid,
        q=quarantined,
    ).to_pylist()[0]
