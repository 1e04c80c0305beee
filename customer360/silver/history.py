"""silver/customer_history: merge the versions of some bronze partitions into the SCD2 history.

Only the customers those partitions touch are re-chained; every row of a re-chained customer gets
this run's `_merged_at` marker, which is how silver/customer finds what changed.

Safe under concurrent runs: a merge reads the history at one version, re-chains from that
snapshot and commits directly on it (or conflicts and starts over from the new version). So
merges are serial in effect, and since each re-chains the union of what is already there and
its own versions, partitions applied in any order give the same history; each marker is later
than every marker of the version it committed on, so the markers grow in commit order and a
consumer's watermark never skips a later commit.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from customer360.lakehouse import DeltaLake, WriteResult
from customer360.lakehouse.incremental import (
    column_max,
    next_marker,
    on_conflict,
    read_rows,
    read_version,
)
from customer360.lakehouse.spark_arrow import arrow_to_spark
from customer360.lakehouse.store import NEW_TABLE
from customer360.silver.merged_bronze import record_for_merge
from customer360.tables import BRONZE_ONLY, CUSTOMER_TABLE, PARTITION_COLUMN, PUBLISHER_PREFIX
from customer360.transforms.customer import standardize_customers
from customer360.transforms.dataverse import MERGED_AT, as_versions, history_chains, strip_prefix

HISTORY = ("silver", "customer_history")


@dataclass(frozen=True)
class HistoryMerge:
    result: WriteResult
    marker: dt.datetime


def clean_versions(bronze_rows: DataFrame) -> DataFrame:
    """Bronze rows as standardised customer versions, without the ingestion bookkeeping."""
    cleaned = standardize_customers(strip_prefix(bronze_rows, PUBLISHER_PREFIX))
    return as_versions(cleaned).drop(*BRONZE_ONLY)


def merge_partitions(
    session: SparkSession, lake: DeltaLake, partition_keys: Sequence[str]
) -> HistoryMerge:
    """Merge the versions in bronze partitions `partition_keys` into the history; when another
    run commits first, read again and re-chain from its result."""
    return on_conflict(lambda: _merge_once(session, lake, partition_keys), "/".join(HISTORY))


def _merge_once(
    session: SparkSession, lake: DeltaLake, partition_keys: Sequence[str]
) -> HistoryMerge:
    partitions = {PARTITION_COLUMN: list(partition_keys)}
    # Bronze at one version, recorded with the commit (what the reconciliation compares with).
    bronze_version = read_version(lake, "bronze", CUSTOMER_TABLE)
    changes = clean_versions(lake.read(session, "bronze", CUSTOMER_TABLE, partitions=partitions,
                                       version=bronze_version))  # fmt: skip
    previous = None
    version = read_version(lake, *HISTORY)
    if version != NEW_TABLE:
        previous = column_max(lake, *HISTORY, MERGED_AT, version)
        # The partitions' Ids straight from bronze (cleaning keeps every row and its Id): no
        # Spark job before the one that writes.
        bronze_ids = lake.read_arrow("bronze", CUSTOMER_TABLE, partitions=partitions,
                                     columns=["Id"])["Id"]  # fmt: skip
        touched = pc.unique(bronze_ids.combine_chunks())
        # Only the touched customers' history, filtered while scanning (not the whole table).
        before = arrow_to_spark(session, read_rows(lake, *HISTORY, "Id", touched, version=version))
        changes = before.drop("valid_to", "is_current", MERGED_AT).unionByName(
            changes, allowMissingColumns=True
        )
        changes = changes.dropDuplicates(["history_key"])
    marker = next_marker(previous)
    chains = history_chains(changes).withColumn(MERGED_AT, F.lit(marker).cast("timestamp"))
    record = record_for_merge(lake, version, partition_keys, bronze_version)
    result = lake.write(chains, *HISTORY, mode="merge", merge_keys=["history_key"],
                        read_version=version, commit_metadata=record)  # fmt: skip
    return HistoryMerge(result, marker)
