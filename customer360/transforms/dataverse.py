"""Append-only Synapse Link rows → versions, SCD2 history chains and current state.

Synapse Link appends a new row per change and an `IsDelete=True` row per delete. The order of
versions of one `Id` is `SinkModifiedOn`, then `versionnumber`; at a tie a delete sorts last, so a
delete wins, and a later non-delete row (a re-create) revives the record.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

#: When a history row was last (re)written by a merge. Strictly increasing per merge, so a
#: downstream that remembers the highest value it consumed finds exactly the Ids changed since.
MERGED_AT = "_merged_at"
HISTORY_COLUMNS = ("valid_from", "valid_to", "is_current", "is_deleted", "history_key", MERGED_AT)


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


def live_ids_arrow(raw: pa.Table, key: str = "Id") -> pa.Array:
    """`live_ids` without Spark (the reconciliation check reads millions of bronze rows): the
    same order (SinkModifiedOn, then versionnumber, nulls first; a delete sorts last), the last
    version of each key, kept unless it is a delete. Needs key, SinkModifiedOn, versionnumber and
    IsDelete; returns the live keys, sorted."""
    if raw.num_rows == 0:
        return pa.array([], raw.schema.field(key).type)
    deleted = pc.fill_null(raw["IsDelete"], False)
    table = pa.table(
        {
            "k": raw[key],
            "t": raw["SinkModifiedOn"],
            "v": raw["versionnumber"],
            "d": deleted,
        }
    )
    # Spark sorts nulls first in ascending order.
    order = pc.sort_indices(table, sort_keys=[(c, "ascending", "at_start") for c in "ktvd"])
    table = table.take(order)
    keys = table["k"].combine_chunks()
    # The last row of each key: the next row has another key (or there is none).
    is_last = pc.fill_null(pc.not_equal(keys[:-1], keys[1:]), True)
    is_last = pa.concat_arrays([is_last, pa.array([True])])
    live = pc.and_(is_last, pc.invert(table["d"].combine_chunks()))
    return pc.filter(keys, live)


def changed_keys(
    markers: pa.Table,
    after: dt.datetime | None,
    upto: dt.datetime | None = None,
    key: str = "Id",
) -> pa.Array:
    """Distinct keys of history rows whose `_merged_at` is after `after` (everything when None)
    and at most `upto` (no upper bound when None). `markers` needs the key and `_merged_at`."""
    marker = markers[MERGED_AT]
    kind = markers.schema.field(MERGED_AT).type
    mask = None
    if after is not None:
        mask = pc.greater(marker, pa.scalar(after, kind))
    if upto is not None:
        below = pc.less_equal(marker, pa.scalar(upto, kind))
        mask = below if mask is None else pc.and_(mask, below)
    # A null marker (a row written before markers existed) is never "after" anything.
    rows = markers if mask is None else markers.filter(pc.fill_null(mask, False))
    return pc.unique(rows[key].combine_chunks())
