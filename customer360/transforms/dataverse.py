"""Append-only Synapse Link rows → versions, SCD2 history chains and current state.

Synapse Link appends a new row per change and an `IsDelete=True` row per delete. The order of
versions of one `Id` is `SinkModifiedOn`, then `versionnumber`; at a tie a delete sorts last, so a
delete wins, and a later non-delete row (a re-create) revives the record.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

HISTORY_COLUMNS = ("valid_from", "valid_to", "is_current", "is_deleted", "history_key")


def strip_prefix(df: DataFrame, prefix: str) -> DataFrame:
    """`crc33_email` → `email`: drop the publisher prefix so silver has clean names."""
    renames = {c: c[len(prefix) :] for c in df.columns if prefix and c.startswith(prefix)}
    return df.withColumnsRenamed(renames) if renames else df


def as_versions(df: DataFrame, key: str = "Id") -> DataFrame:
    """One row per distinct version with its ordering fields and a stable `history_key`.

    The same version exported twice (Synapse Link retries) collapses to one row.
    """
    versions = df.withColumns(
        {
            "valid_from": F.col("SinkModifiedOn"),
            "is_deleted": F.coalesce(F.col("IsDelete"), F.lit(False)),
        }
    ).withColumn(
        "history_key",
        F.concat_ws(
            "|",
            F.col(key),
            F.date_format("valid_from", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
            F.coalesce(F.col("versionnumber").cast("string"), F.lit("")),
            F.col("is_deleted").cast("string"),
        ),
    )
    return versions.dropDuplicates(["history_key"])


def history_chains(versions: DataFrame, key: str = "Id") -> DataFrame:
    """SCD type 2: each version valid from its `valid_from` until the next version's."""
    order = Window.partitionBy(key).orderBy(
        F.col("valid_from").asc(), F.col("versionnumber").asc_nulls_first(), F.col("is_deleted")
    )
    return versions.withColumn("valid_to", F.lead("valid_from").over(order)).withColumn(
        "is_current", F.col("valid_to").isNull()
    )


def current_state(history: DataFrame) -> DataFrame:
    """The live records: the current version of each key, unless that version is a delete."""
    return history.filter(F.col("is_current") & ~F.col("is_deleted")).drop(*HISTORY_COLUMNS)


def live_ids(raw: DataFrame, key: str = "Id") -> DataFrame:
    """Distinct keys whose latest raw version is not a delete (used by reconciliation)."""
    return current_state(history_chains(as_versions(raw, key), key)).select(key).distinct()
