"""Silver rules for a configured CRM CSV source (e.g. residents_adls.csv in landing/crm2/):
the current row per source key, standardised like the Dataverse customers, then validated.

Bronze keeps every row of every drop (read_crm_csv output plus `_drop_day`); a CSV export has no
delete marker, so a key stays until a newer drop changes it (documented in docs/unify.md).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from customer360.transforms.customer import (
    EMAIL_PATTERN,
    dateofbirth_plausible,
    rule_failures,
    split_by_failures,
    standardize_customers,
)
from customer360.unify.schema import RECORD_ATTRIBUTES

KEY = "source_key"
MODIFIED = "modified"


def latest_per_key(bronze: DataFrame) -> DataFrame:
    """One row per source_key: its newest version across drops (the record's own modified
    date, then the later drop day, file and line)."""
    newest = Window.partitionBy(KEY).orderBy(
        F.col(MODIFIED).desc_nulls_last(),
        F.col("_drop_day").desc(),
        F.col("_source_file").desc(),
        F.col("_source_line").desc(),
    )
    return bronze.withColumn("_n", F.row_number().over(newest)).filter("_n = 1").drop("_n")


def standardize_source(rows: DataFrame) -> DataFrame:
    """Typed, cleaned record attributes (the Dataverse silver rules); attributes the source does
    not map are null, so every source has the same silver columns. `modified` becomes a
    timestamp (an ISO date or date-time, as read_crm_csv checked)."""
    present = set(rows.columns)
    missing = {c: F.lit(None).cast("string") for c in RECORD_ATTRIBUTES if c not in present}
    rows = rows.withColumns(missing)
    if MODIFIED not in present:
        rows = rows.withColumn(MODIFIED, F.lit(None).cast("string"))
    rows = rows.withColumn(MODIFIED, F.to_timestamp(MODIFIED))
    out = standardize_customers(rows.drop("telephone_e164", "country_code"))
    return out.select(
        KEY,
        *RECORD_ATTRIBUTES,
        F.col(MODIFIED).alias("modified_at"),
        "_source_file",
        "_source_line",
        "_drop_day",
    )


def validation_failures(today: dt.date | None = None) -> Column:
    """Names of the rules a standardised source row breaks (empty array when valid). Looser than
    the Dataverse rules: a second system may lack e-mails, but what it has must be usable."""
    return rule_failures(
        {
            "name_present": F.coalesce("firstname", "lastname", "name").isNotNull(),
            "email_valid": F.col("email").isNull() | F.col("email").rlike(EMAIL_PATTERN),
            "dateofbirth_plausible": dateofbirth_plausible(today or dt.date.today()),
        }
    )


def split_valid(rows: DataFrame, today: dt.date | None = None) -> tuple[DataFrame, DataFrame]:
    """(valid rows, quarantined rows with `failed_rules`): every row lands in exactly one."""
    return split_by_failures(rows, validation_failures(today))
