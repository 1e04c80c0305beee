"""Unify records from the lake: each source's silver table as records (customer360.unify.schema).

silver/customer is source `dataverse` keyed by cid (the alternate key crc33_cid); every CSV source
of the unify configuration is silver/crm_<source> keyed by source_key.
"""

import hashlib
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import ColumnProperties, WriterProperties
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from customer360.lakehouse import DeltaLake
from customer360.lakehouse.incremental import read_rows
from customer360.lakehouse.schema import delta_schema_to_arrow
from customer360.unify import RECORD_ATTRIBUTES, UnifyConfig, to_records
from customer360.unify.incremental import fingerprints
from customer360.unify.survivorship import records_table

DATAVERSE_SOURCE = "dataverse"  # silver/customer, keyed by cid (the alternate key crc33_cid)
#: The block index incremental runs start from (customer360.unify.incremental): bookkeeping of
#: the identity asset, like ops/medallion_state, not an asset of its own.
INDEX_TABLE = ("ops", "match_index")
#: The block index's Parquet encoding: its block ids are nearly all distinct, so dictionary
#: pages are wasted work, and LZ4 encodes faster than Snappy at the same size (measured on the
#: 200,000-customer index: 0.45 s of CPU to write instead of 0.8 s, 46 MB either way).
INDEX_WRITER = WriterProperties(
    compression="LZ4_RAW", default_column_properties=ColumnProperties(dictionary_enabled=False)
)


@dataclass(frozen=True)
class SourceTable:
    """One source's silver table and how its rows become unify records."""

    source: str
    table: str  # silver/<table>
    key: str  # the column that becomes source_key
    modified: tuple[str, ...]  # columns giving modified_at (the first non-null wins)
    #: Read by the profile besides the record columns (part of the fingerprint, so a change to
    #: them re-derives the profile too).
    extra: tuple[str, ...] = ()

    def records(self, silver: DataFrame) -> DataFrame:
        stamps = [F.col(c).cast("timestamp") for c in self.modified]
        modified = F.coalesce(*stamps) if len(stamps) > 1 else stamps[0]
        return to_records(silver.withColumn("_modified", modified), self.source, self.key,
                          "_modified")  # fmt: skip

    def record_columns(self, lake: DeltaLake) -> list[str]:
        """The columns of the silver table a record (and its fingerprint) is made from."""
        present = delta_schema_to_arrow(lake.table("silver", self.table).schema()).names
        wanted = (self.key, *RECORD_ATTRIBUTES, *self.modified, *self.extra)
        return [c for c in dict.fromkeys(wanted) if c in present]


def source_tables(config: UnifyConfig) -> list[SourceTable]:
    """silver/customer (source `dataverse`, keyed by cid) and every configured CSV source."""
    dataverse = SourceTable(DATAVERSE_SOURCE, "customer", "cid", ("modifiedon", "SinkModifiedOn"),
                            extra=("Id", "createdon"))  # fmt: skip
    csv = [
        SourceTable(m.source, f"crm_{m.source}", "source_key", ("modified_at",))
        for m in config.csv_sources
    ]
    return [dataverse, *csv]


def source_records(session: SparkSession, lake: DeltaLake, config: UnifyConfig) -> DataFrame:
    """Every source's silver rows as unify `records` (customer360.unify.schema)."""
    frames = [t.records(lake.read(session, "silver", t.table)) for t in source_tables(config)]
    return reduce(DataFrame.unionByName, frames)


def record_rows(lake: DeltaLake, config: UnifyConfig, keys: pa.Table) -> pa.Table:
    """The records (schema.RECORD_COLUMNS, Arrow) of the (source, source_key) rows of `keys`,
    read without a full scan and built on the driver (survivorship.records_table)."""
    parts = []
    for table in source_tables(config):
        wanted = keys.filter(pc.equal(keys["source"], table.source))["source_key"]
        rows = read_rows(lake, "silver", table.table, table.key, wanted.combine_chunks(),
                         columns=table.record_columns(lake))  # fmt: skip
        parts.append(records_table(rows, table.source, table.key, table.modified))
    return pa.concat_tables(parts)


def all_record_rows(
    lake: DeltaLake, config: UnifyConfig, rows: dict[str, pa.Table] | None = None
) -> pa.Table:
    """Every source's records (schema.RECORD_COLUMNS, Arrow), built on this machine, from
    `rows` (current_rows, read already) or read."""
    rows = current_rows(lake, config) if rows is None else rows
    return pa.concat_tables(
        [records_table(rows[t.source], t.source, t.key, t.modified) for t in source_tables(config)]
    )


def current_rows(lake: DeltaLake, config: UnifyConfig) -> dict[str, pa.Table]:
    """Every source's silver rows, the columns records are made from, by source: read once per
    identity run for the fingerprints, the records to re-key and their partners."""
    return {
        t.source: lake.read_arrow("silver", t.table, columns=t.record_columns(lake))
        for t in source_tables(config)
    }


def current_fingerprints(rows: dict[str, pa.Table], config: UnifyConfig) -> pa.Table:
    """incremental.fingerprints of every current record (Arrow and DuckDB, no Spark), from
    `rows` (current_rows)."""
    return pa.concat_tables(
        [fingerprints(rows[t.source], t.source, t.key) for t in source_tables(config)]
    )


def record_rows_in(rows: dict[str, pa.Table], config: UnifyConfig, keys: pa.Table) -> pa.Table:
    """record_rows from `rows` (current_rows) instead of scanning silver again: at a million
    records each filtered scan costs about a second, and an incremental run made two (the
    changed records, their partners) after reading every row for the fingerprints."""
    parts = []
    for table in source_tables(config):
        held = rows[table.source]
        wanted = keys.filter(pc.equal(keys["source"], table.source))["source_key"]
        wanted = wanted.combine_chunks().cast(held.schema.field(table.key).type)
        picked = held.filter(pc.is_in(held[table.key], value_set=wanted))
        parts.append(records_table(picked, table.source, table.key, table.modified))
    return pa.concat_tables(parts)


def file_digest(path: Path) -> str:
    """sha256 of a file's content (rules and truth files are inputs of the state)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
