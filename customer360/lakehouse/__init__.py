"""Spark ↔ Delta lake I/O with delta-rs (Dagster-free). See store.py for the two paths."""

from customer360.lakehouse.schema import SchemaMismatchError
from customer360.lakehouse.store import (
    DeltaLake,
    WriteMode,
    WritePath,
    WriteResult,
    count_rows,
    partition_row_counts,
)

__all__ = [
    "DeltaLake",
    "SchemaMismatchError",
    "WriteMode",
    "WritePath",
    "WriteResult",
    "count_rows",
    "partition_row_counts",
]
