"""The per-profile inputs of build_profile for the few thousand profiles an incremental run
re-derives, on the driver (DuckDB over Arrow): dataverse_facts, first_seen, finance_measures
and churn_per_profile of profile.py with unify.survivorship's survivorship, joined like
build_profile joins them. Spark then adds the
derived columns (profile.profile_columns: age, tenure, segments from the Spark SQL rules), so
the rules keep one dialect.

profile.py stays the definition and builds every profile in a full run;
tests/medallion/test_profile_parts.py checks that both give the same rows, decimals included.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pyarrow as pa
import pyarrow.compute as pc

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.transforms.profile import UNIFIED_ID, SegmentRules
from customer360.unify.config import Survivorship
from customer360.unify.sql_dialects import duckdb_sql
from customer360.unify.survivorship import merge_profiles

CENT, MICRO = Decimal("0.01"), Decimal("0.000001")


def dataverse_facts(dataverse_links: pa.Table, customers: pa.Table) -> pa.Table:
    """profile.dataverse_facts: `dataverse_links` (unified_customer_id, source_key),
    `customers` (cid, Id, createdon)."""
    return arrow_query(
        f"""SELECT l.{UNIFIED_ID}, arg_min(c.Id, c.cid) AS customer_id, min(c.cid) AS cid,
                   list_sort(list(c.cid)) AS dataverse_cids,
                   min(c.createdon) AS _dataverse_created
            FROM links l JOIN customers c ON CAST(c.cid AS VARCHAR) = l.source_key
            GROUP BY l.{UNIFIED_ID}""",
        links=dataverse_links.select([UNIFIED_ID, "source_key"]),
        customers=customers.select(["cid", "Id", "createdon"]),
    )


def first_seen(records: pa.Table, links: pa.Table, dataverse_source: str) -> pa.Table:
    """(unified_customer_id, _first_seen): the earliest modified_at of the profile's records
    from sources other than Dataverse."""
    return arrow_query(
        f"""SELECT l.{UNIFIED_ID}, min(r.modified_at) AS _first_seen
            FROM records r JOIN links l ON r.source = l.source AND r.source_key = l.source_key
            WHERE r.source <> ? GROUP BY l.{UNIFIED_ID}""",
        [dataverse_source],
        records=records.select(["source", "source_key", "modified_at"]),
        links=links.select([UNIFIED_ID, "source", "source_key"]),
    )


def _spark_decimal_average(total: Decimal | None, count: int) -> Decimal | None:
    """Spark's avg of a decimal then `.cast("decimal(18,2)")`: the quotient rounded HALF_UP
    to 6 places (avg's result scale), then again to 2."""
    if total is None or count == 0:
        return None
    with localcontext() as context:
        context.prec = 60
        quotient = (total / Decimal(count)).quantize(MICRO, ROUND_HALF_UP)
    return quotient.quantize(CENT, ROUND_HALF_UP)


def finance_measures(monthly: pa.Table, dataverse_links: pa.Table) -> pa.Table:
    """profile.finance_measures keyed by unified id: `monthly` (cid, month, spend, income) of
    the profiles' Dataverse records, `dataverse_links` (unified_customer_id, source_key)."""
    sums = arrow_query(
        f"""WITH per_month AS (
                SELECT l.{UNIFIED_ID}, m.month, sum(m.spend) AS spend, sum(m.income) AS income
                FROM monthly m JOIN links l ON CAST(m.cid AS VARCHAR) = l.source_key
                GROUP BY ALL)
            SELECT {UNIFIED_ID}, sum(spend) AS total_spend, count(spend) AS _spend_months,
                   sum(income) AS total_income, count(income) AS _income_months,
                   count(DISTINCT CASE WHEN spend > 0 THEN month END) AS months_active,
                   max(month) AS last_finance_month
            FROM per_month GROUP BY {UNIFIED_ID}""",
        monthly=monthly.select(["cid", "month", "spend", "income"]),
        links=dataverse_links.select([UNIFIED_ID, "source_key"]),
    )
    averages = {
        name: pa.array(
            [_spark_decimal_average(t, n) for t, n in zip(sums[total].to_pylist(),
                                                           sums[months].to_pylist(), strict=True)],
            pa.decimal128(18, 2),
        )
        for name, total, months in (("avg_monthly_spend", "total_spend", "_spend_months"),
                                    ("avg_monthly_income", "total_income", "_income_months"))
    }  # fmt: skip
    return pa.table(
        {
            UNIFIED_ID: sums[UNIFIED_ID],
            "total_spend": sums["total_spend"].cast(pa.decimal128(38, 2)),
            "avg_monthly_spend": averages["avg_monthly_spend"],
            "total_income": sums["total_income"].cast(pa.decimal128(38, 2)),
            "avg_monthly_income": averages["avg_monthly_income"],
            "months_active": sums["months_active"].cast(pa.int64()),
            "last_finance_month": sums["last_finance_month"],
        }
    )


def churn_per_profile(dataverse_links: pa.Table, churn_risk: pa.Table) -> pa.Table:
    """profile.churn_per_profile: the riskiest linked member's probability and band."""
    return arrow_query(
        f"""WITH riskiest AS (
                SELECT l.{UNIFIED_ID},
                       arg_max({{'p': r.churn_probability, 'b': r.churn_risk_band}},
                               r.churn_probability) AS _c
                FROM links l JOIN risk r ON CAST(r.cid AS VARCHAR) = l.source_key
                GROUP BY l.{UNIFIED_ID})
            SELECT {UNIFIED_ID}, _c.p AS churn_probability, _c.b AS churn_risk_band
            FROM riskiest""",
        links=dataverse_links.select([UNIFIED_ID, "source_key"]),
        risk=churn_risk.select(["cid", "churn_probability", "churn_risk_band"]),
    )


def profile_inputs(
    records: pa.Table,
    links: pa.Table,
    customers: pa.Table,
    monthly: pa.Table,
    churn_risk: pa.Table | None,
    survivorship: Survivorship,
    dataverse_source: str,
    as_of: dt.datetime | None,
) -> pa.Table:
    """What build_profile joins before its derived columns, for the profiles of `links`
    (unified_customer_id, source, source_key): survivorship over `records`, the Dataverse facts
    (`customers`: cid, Id, createdon), the first-seen date, finance measures (`monthly`: cid,
    month, spend, income), churn (`churn_risk`: cid, churn_probability, churn_risk_band; None:
    null columns) and `as_of`. Feed it to profile.profile_columns."""
    dataverse_links = links.filter(pc.equal(links["source"], dataverse_source))
    churn = (
        churn_per_profile(dataverse_links, churn_risk)
        if churn_risk is not None
        else pa.table({UNIFIED_ID: pa.array([], pa.string()),
                       "churn_probability": pa.array([], pa.float64()),
                       "churn_risk_band": pa.array([], pa.string())})
    )  # fmt: skip
    joined = arrow_query(
        f"""SELECT m.*, d.* EXCLUDE ({UNIFIED_ID}), s._first_seen,
                   f.* EXCLUDE ({UNIFIED_ID}), c.churn_probability, c.churn_risk_band
            FROM merged m
            LEFT JOIN dataverse d USING ({UNIFIED_ID}) LEFT JOIN seen s USING ({UNIFIED_ID})
            LEFT JOIN measures f USING ({UNIFIED_ID}) LEFT JOIN churn c USING ({UNIFIED_ID})""",
        merged=merge_profiles(records, links, survivorship),
        dataverse=dataverse_facts(dataverse_links, customers),
        seen=first_seen(records, links, dataverse_source),
        measures=finance_measures(monthly, dataverse_links),
        churn=churn,
    )
    stamp = pa.array([as_of] * joined.num_rows, pa.timestamp("us", tz="UTC"))
    return joined.append_column("as_of", stamp)


def segment_rows(profiles: pa.Table, rules: SegmentRules) -> pa.Table:
    """profile.segment_memberships on the driver, the same rows in the same order: the segment
    columns as they are and each extra segment's Spark SQL `when` transpiled for DuckDB (the
    rules keep one dialect). A Spark job for a few thousand profiles costs more than the work:
    about a second per incremental run at a million customers."""
    parts = [
        arrow_query(
            f"SELECT {UNIFIED_ID}, ? AS segment_type, {kind} AS segment FROM p "
            f"WHERE {kind} IS NOT NULL",
            [kind],
            p=profiles.select([UNIFIED_ID, kind]),
        )
        for kind in ("value_segment", "life_stage_segment", "age_band")
    ]
    parts += [
        arrow_query(
            f"SELECT {UNIFIED_ID}, 'extra' AS segment_type, ? AS segment FROM p "
            f"WHERE coalesce(({duckdb_sql(rule.when)}), false)",
            [rule.name],
            p=profiles,
        )
        for rule in rules.extra_segments
    ]
    schema = pa.schema(  # the types Spark gives (a literal segment_type is never null)
        [
            profiles.schema.field(UNIFIED_ID),
            pa.field("segment_type", pa.string(), nullable=False),
            ("segment", pa.string()),
        ]
    )
    return pa.concat_tables([part.cast(schema) for part in parts])
