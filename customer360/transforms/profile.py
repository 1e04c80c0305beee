"""Gold customer profile: identity, contact, finance measures, tenure, age band, segments and
data-quality flags; plus customer × segment membership. Segment rules come from segments.yaml."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DEFAULT_RULES = Path(__file__).with_name("segments.yaml")


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


def rules_fingerprint(path: str | Path) -> str:
    """A digest of a rules file: gold is rebuilt in full when its rules change."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def as_of_day(latest_export: dt.datetime | None) -> dt.datetime | None:
    """The profile's `as_of`: 00:00 UTC of the day of the latest export in the data.

    A whole day, not the export instant, so that the many exports of one day leave age and
    tenure of the customers they do not touch unchanged (gold can then be updated incrementally);
    the first export of a new day moves it and gold is rebuilt. Deterministic for given data."""
    if latest_export is None:
        return None
    utc = latest_export.astimezone(dt.UTC) if latest_export.tzinfo else latest_export
    return dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.UTC)


def email_counts(customers: DataFrame) -> DataFrame:
    """How many customers share each (non-null) e-mail: `email`, `_n`."""
    return (
        customers.filter(F.col("email").isNotNull()).groupBy("email").agg(F.count("*").alias("_n"))
    )


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


def finance_measures(monthly: DataFrame) -> DataFrame:
    return monthly.groupBy("cid").agg(
        F.sum("spend").alias("total_spend"),
        F.avg("spend").cast("decimal(18,2)").alias("avg_monthly_spend"),
        F.sum("income").alias("total_income"),
        F.avg("income").cast("decimal(18,2)").alias("avg_monthly_income"),
        F.countDistinct(F.when(F.col("spend") > 0, F.col("month"))).alias("months_active"),
        F.max("month").alias("last_finance_month"),
    )


def build_profile(
    customers: DataFrame,
    monthly: DataFrame,
    as_of: Column,
    rules: SegmentRules,
    shared_emails: DataFrame | None = None,
) -> DataFrame:
    """One row per customer. `as_of` (a timestamp column expression) pins age and tenure, so a
    re-run on the same data gives the same table.

    `shared_emails` (`email`, `_n` as from `email_counts`) counts e-mails over all customers;
    pass it when `customers` is only the part of them being rebuilt. Default: counted over
    `customers`."""
    counts = email_counts(customers) if shared_emails is None else shared_emails
    base = (
        customers.join(finance_measures(monthly), "cid", "left")
        .join(counts.select("email", "_n"), "email", "left")
        .withColumn("as_of", as_of)
    )
    age = F.floor(F.months_between(F.to_date("as_of"), F.col("dateofbirth")) / 12).cast("int")
    months = F.months_between(F.col("as_of"), F.col("createdon"))
    # Created on the as_of day itself (after 00:00): tenure 0, never a negative fraction.
    tenure = F.when(months < 0, F.lit(0.0)).otherwise(F.round(months / 12, 2))
    profile = base.withColumns(
        {
            "age": age,
            "tenure_years": tenure.cast("double"),
            "spend_to_income_ratio": F.when(
                F.col("total_income") > 0,
                (F.col("total_spend") / F.col("total_income")).cast("double"),
            ),
        }
    )
    profile = profile.withColumns(
        {
            "age_band": _age_band(F.col("age"), rules.age_bands),
            "value_segment": _first_match(rules.value_segment),
            "life_stage_segment": _first_match(rules.life_stage_segment),
            "dq_missing_lastname": F.col("lastname").isNull(),
            "dq_missing_city": F.col("city").isNull(),
            "dq_duplicate_email": F.coalesce(F.col("_n") > 1, F.lit(False)),
            "dq_phone_not_e164": F.col("telephone").isNotNull() & F.col("telephone_e164").isNull(),
            "dq_no_finance": F.col("total_spend").isNull() & F.col("total_income").isNull(),
        }
    )
    return profile.select(
        F.col("Id").alias("customer_id"),
        "cid", "firstname", "lastname", "name", "gender", "email", "telephone", "telephone_e164",
        "streetaddress", "city", "state", "postcode", "country", "country_code", "dateofbirth",
        "source", F.col("createdon").alias("created_on"), "age", "age_band", "tenure_years",
        "total_spend", "avg_monthly_spend", "total_income", "avg_monthly_income",
        "spend_to_income_ratio", "months_active", "last_finance_month",
        "value_segment", "life_stage_segment",
        "dq_missing_lastname", "dq_missing_city", "dq_duplicate_email", "dq_phone_not_e164",
        "dq_no_finance", "as_of",
    )  # fmt: skip


def segment_memberships(profile: DataFrame, rules: SegmentRules) -> DataFrame:
    """customer × segment, one row per membership (segment_type, segment)."""
    ids = ("customer_id", "cid")
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
