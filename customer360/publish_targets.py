"""Publish targets: which lake table feeds which Dataverse table, and how (Dagster-free).

One YAML file per target in `customer360/publish_specs/`:

```yaml
name: crc33_customer            # asset key dynamics/<name>
description: …
source:
  layer: gold
  table: customer_profile
  query: SELECT … FROM source WHERE …   # optional DuckDB SQL over the Delta table `source`
spec: {…}                        # the engine's publish spec (customer360/dynamics/spec.py)
```

The query runs in DuckDB over the table's current Delta snapshot and streams record batches, so
the publish never holds the table in memory and never starts Spark.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml
from deltalake import DeltaTable

from customer360.dynamics import PublishSpec, SpecError, load_spec

TARGETS_DIR = Path(__file__).with_name("publish_specs")


@dataclass(frozen=True)
class PublishTarget:
    name: str
    description: str
    source_layer: str
    source_table: str
    query: str
    spec: PublishSpec


def load_target(path: Path) -> PublishTarget:
    raw: Mapping[str, Any] = yaml.safe_load(path.read_text())
    try:
        source = raw["source"]
        return PublishTarget(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            source_layer=str(source["layer"]),
            source_table=str(source["table"]),
            query=str(source.get("query") or "SELECT * FROM source"),
            spec=load_spec(raw["spec"]),
        )
    except (KeyError, TypeError) as exc:
        raise SpecError(f"{path}: missing or malformed field {exc}") from None
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def load_targets(directory: Path = TARGETS_DIR) -> list[PublishTarget]:
    return [load_target(p) for p in sorted(directory.glob("*.yaml"))]


def stream_source(
    table: DeltaTable, query: str, batch_rows: int = 10_000
) -> Iterator[pa.RecordBatch]:
    """Run `query` over one snapshot of the Delta table (bound as `source`) and yield record
    batches. The caller opens the table, so it knows which version it published."""
    source = table.to_pyarrow_dataset()  # noqa: F841 - DuckDB binds the local name `source`
    con = duckdb.connect()
    try:
        reader = con.sql(query).to_arrow_reader(batch_rows)
        yield from reader
    finally:
        con.close()
