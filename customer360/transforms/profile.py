"""Gold customer profile, one row per unified customer (customer360.unify): the surviving
identity and contact, finance measures over all the person's records, tenure, age band, segments,
churn risk and data-quality flags; plus customer × segment membership. Segment rules come from
segments.yaml."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

DEFAULT_RULES = Path(__file__).with_name("segments.yaml")
UNIFIED_ID = "unified_customer_id"


@dataclass(frozen=True)
class Rule:
    name: str
    when: str


@dataclass(frozen=True)
class SegmentRules:
    age_bands: tuple[tuple[str, int, int], ...]
    value_segment: tuple[Rule, ...]
    life_stage_segment: tuple[Rule, ...]
    extra_segments: tuple[Rule, ...]

    @classmethod
    def load(cls, path: str | Path = DEFAULT_RULES) -> SegmentRules:
        raw: dict[str, Any] = yaml.safe_load(Path(path).read_text())
        try:
            return cls(
                age_bands=tuple(
                    (b["name"], int(b["min"]), int(b["max"])) for b in raw["age_bands"]
                ),
                value_segment=tuple(Rule(**r) for r in raw["value_segment"]),
                life_stage_segment=tuple(Rule(**r) for r in raw["life_stage_segment"]),
                extra_segments=tuple(Rule(**r) for r in raw.get("extra_segments") or ()),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: invalid segment rules ({exc})") from None


def as_of_day(latest_export: dt.datetime | None) -> dt.datetime | None:
    """The profile's `as_of`: 00:00 UTC of the day of the latest export in the data.

    A whole day, not the export instant, so that the many exports of one day leave age and
    tenure of the customers they do not touch unchanged (gold can then be updated incrementally);
    the first export of a new day moves it and gold is rebuilt. Deterministic for given data."""
    if latest_export is None:
        return None
    utc = latest_export.astimezone(dt.UTC) if latest_export.tzinfo else latest_export
    return dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.UTC)


def _first_match(rules: tuple[Rule, ...]) -> Column:
    expr = None
    for rule in rules:
        cond = F.expr(rule.when)
        expr = F.when(cond, F.lit(rule.name)) if expr is None else expr.when(cond, rule.name)
    return expr if expr is not None else F.lit(None)


def _age_band(age: Column, bands) -> Column:
    expr = F.when(age.isNull(), F.lit(None))
    for name, low, high in bands:
        expr = expr.when(age.between(low, high), F.lit(name))
    return expr


def finance_measures(monthly: DataFrame, key: str = "cid") -> DataFrame:
    """Measures per `key` from (key, month, spend, income) rows. The months of several records
    of one profile add up first, so averages are per calendar month of the person."""
    per_month = monthly.groupBy(key, "month").agg(
        F.sum("spend").alias("spend"), F.sum("income").alias("income")
    )
    return per_month.groupBy(key).agg(
        F.sum("spend").alias("total_spend"),
        F.avg("spend").cast("decimal(18,2)").alias("avg_monthly_spend"),
        F.sum("income").alias("total_income"),
        F.avg("income").cast("decimal(18,2)").alias("avg_monthly_income"),
        F.countDistinct(F.when(F.col("spend") > 0, F.col("month"))).alias("months_active"),
        F.max("month").alias("last_finance_month"),
    )


def dataverse_facts(dataverse_links: DataFrame, customers: DataFrame) -> DataFrame:
    """Per unified id, its Dataverse records: the primary one (smallest cid: `customer_id`,
    `cid`), all their cids (`dataverse_cids`, what the Dynamics publish updates) and the
    earliest createdon. `dataverse_links`: unified_customer_id, source_key (the cid as text)."""
    rows = dataverse_links.join(
        customers.select(F.col("cid").cast("string").alias("source_key"), "cid", "Id", "createdon"),
        "source_key",
    )
    return rows.groupBy(UNIFIED_ID).agg(
        F.min_by("Id", "cid").alias("customer_id"),
        F.min("cid").alias("cid"),
        F.array_sort(F.collect_list("cid")).alias("dataverse_cids"),
        F.min("createdon").alias("_dataverse_created"),
    )


def churn_per_profile(dataverse_links: DataFrame, churn_risk: DataFrame) -> DataFrame:
    """The riskiest linked member per profile: churn_probability and its churn_risk_band."""
    rows = dataverse_links.join(
        churn_risk.select(
            F.col("cid").cast("string").alias("source_key"), "churn_probability", "churn_risk_band"
        ),
        "source_key",
    )
    best = F.max_by(F.struct("churn_probability", "churn_risk_band"), "churn_probability")
    return (
        rows.groupBy(UNIFIED_ID)
        .agg(best.alias("_c"))
        .select(UNIFIED_ID, "_c.churn_probability", "_c.churn_risk_band")
    )


def build_profile(
    merged: DataFrame,
    dataverse: DataFrame,
    first_seen: DataFrame,
    measures: DataFrame,
    churn: DataFrame | None,
    as_of: Column,
    rules: SegmentRules,
) -> DataFrame:
    """One row per unified customer. `merged`: customer360.unify.merge_profiles output;
    `dataverse`: dataverse_facts; `first_seen`: (unified_customer_id, _first_seen) over the
    other sources' records; `measures`: finance_measures keyed by unified_customer_id; `churn`:
    churn_per_profile or None (columns then null). `as_of` (a timestamp column expression) pins
    age and tenure, so a re-run on the same data gives the same table."""
    profile = (
        merged.join(dataverse, UNIFIED_ID, "left")
        .join(first_seen, UNIFIED_ID, "left")
        .join(measures, UNIFIED_ID, "left")
        .withColumn("as_of", as_of)
    )
    if churn is not None:
        profile = profile.join(churn, UNIFIED_ID, "left")
    else:
        profile = profile.withColumns(
            {"churn_probability": F.lit(None).cast("double"),
             "churn_risk_band": F.lit(None).cast("string")}
        )  # fmt: skip
    return profile_columns(profile, rules)


def profile_columns(profile: DataFrame, rules: SegmentRules) -> DataFrame:
    """build_profile's derived columns (created_on, age, tenure, ratio, age band, segments,
    data-quality flags) over the joined inputs: merge_profiles' columns, dataverse_facts,
    `_first_seen`, the measures, churn and `as_of`. Incremental updates join the inputs on the
    driver (profile_inputs.joined_inputs) and run only this in Spark: the rules are Spark SQL."""
    shared = Window.partitionBy("email")
    created = F.least(F.col("_dataverse_created"), F.col("_first_seen"))
    age = F.floor(F.months_between(F.to_date("as_of"), F.col("dateofbirth")) / 12).cast("int")
    months = F.months_between(F.col("as_of"), F.col("created_on"))
    # Created on the as_of day itself (after 00:00): tenure 0, never a negative fraction.
    tenure = F.when(months < 0, F.lit(0.0)).otherwise(F.round(months / 12, 2))
    profile = profile.withColumn("created_on", created).withColumns(
        {
            "age": age,
            "tenure_years": tenure.cast("double"),
            "spend_to_income_ratio": F.when(
                F.col("total_income") > 0,
                (F.col("total_spend") / F.col("total_income")).cast("double"),
            ),
            "_email_profiles": F.when(F.col("email").isNotNull(), F.count("*").over(shared)),
        }
    )
    profile = profile.withColumns(
        {
            "age_band": _age_band(F.col("age"), rules.age_bands),
            "value_segment": _first_match(rules.value_segment),
            "life_stage_segment": _first_match(rules.life_stage_segment),
            "dq_missing_lastname": F.col("lastname").isNull(),
            "dq_missing_city": F.col("city").isNull(),
            "dq_duplicate_email": F.coalesce(F.col("_email_profiles") > 1, F.lit(False)),
            "dq_phone_not_e164": F.col("telephone").isNotNull() & F.col("telephone_e164").isNull(),
            "dq_no_finance": F.col("total_spend").isNull() & F.col("total_income").isNull(),
        }
    )
    return profile.select(
        UNIFIED_ID, "customer_id", "cid", "dataverse_cids",
        "firstname", "lastname", "name", "gender", "email", "telephone", "telephone_e164",
        "streetaddress", "city", "state", "postcode", "country", "country_code", "dateofbirth",
        "sources", "record_count", "source_records", "created_on", "age", "age_band",
        "tenure_years", "total_spend", "avg_monthly_spend", "total_income", "avg_monthly_income",
        "spend_to_income_ratio", "months_active", "last_finance_month",
        "value_segment", "life_stage_segment", "churn_probability", "churn_risk_band",
        "dq_missing_lastname", "dq_missing_city", "dq_duplicate_email", "dq_phone_not_e164",
        "dq_no_finance", "survivorship", "last_modified_at", "as_of",
    )  # fmt: skip


def segment_memberships(profile: DataFrame, rules: SegmentRules) -> DataFrame:
    """unified customer × segment, one row per membership (segment_type, segment)."""
    ids = (UNIFIED_ID,)
    single = [
        profile.select(*ids, F.lit(kind).alias("segment_type"), F.col(kind).alias("segment"))
        for kind in ("value_segment", "life_stage_segment", "age_band")
    ]
    extra = [
        profile.filter(F.coalesce(F.expr(rule.when), F.lit(False))).select(
            *ids, F.lit("extra").alias("segment_type"), F.lit(rule.name).alias("segment")
        )
        for rule in rules.extra_segments
    ]
    out = single[0]
    for part in single[1:] + extra:
        out = out.unionByName(part)
    return out.filter(F.col("segment").isNotNull())
