"""The lakehouse resource: the one way assets read and write Delta tables.

The logic lives in `customer360.lakehouse` (Dagster-free); this wrapper adds configuration and turns
write results into the Dagster metadata every asset reports.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from dagster_deltalake import AzureConfig, LocalConfig
from pydantic import Field

from customer360.bronze.ingest import Ingested
from customer360.bronze.rejected import REJECTED_TABLE
from customer360.column_docs import COLUMN_DOCS
from customer360.lakehouse import DeltaLake, WriteMode, WritePath, WriteResult
from resources.ui_metadata import image_metadata, link_metadata, table_preview


class LakehouseResource(dg.ConfigurableResource):
    """Delta tables at `<root_uri>/<layer>/<table>`, local or on ADLS Gen2."""

    root_uri: str = Field(description="Lake root: a local folder or abfss://container@account…")
    storage: LocalConfig | AzureConfig = Field(
        default_factory=LocalConfig, discriminator="provider"
    )
    distributed_threshold_mb: int = Field(
        default=256, description="Writes/reads above this estimated size take the Spark path."
    )

    @property
    def lake(self) -> DeltaLake:
        options = self.storage.str_dict() if isinstance(self.storage, AzureConfig) else None
        return DeltaLake(
            self.root_uri,
            storage_options=options,
            distributed_threshold_bytes=self.distributed_threshold_mb * 1024 * 1024,
        )

    def uri(self, layer: str, table: str) -> str:
        return self.lake.uri(layer, table)

    def plot_path(self, name: str) -> Path:
        """Where an asset's PNG goes: `<lake>/ops/plots/` locally, a temporary folder for a
        remote lake (the path is put in the materialisation metadata)."""
        remote = "://" in self.root_uri
        root = Path(tempfile.gettempdir()) if remote else Path(self.root_uri)
        path = root / "ops" / "plots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def plot_metadata(self, path: str | Path, title: str) -> dg.MarkdownMetadataValue:
        """A PNG this asset wrote, as Markdown the UI shows inline (the file stays)."""
        return image_metadata(path, title, self.root_uri)

    def link_metadata(self, path: str | Path) -> dg.MetadataValue:
        """A browser link to a file under the lake (served by `customer360 dev`), else its path."""
        return link_metadata(path, self.root_uri)

    def exists(self, layer: str, table: str) -> bool:
        return self.lake.exists(layer, table)

    def write(self, df, layer: str, table: str, **kwargs: Any) -> WriteResult:
        return self.lake.write(df, layer, table, **kwargs)

    def write_arrow(self, data: pa.Table, layer: str, table: str, **kwargs: Any) -> WriteResult:
        return self.lake.write_arrow(data, layer, table, **kwargs)

    def read(self, spark, layer: str, table: str, **kwargs: Any):
        return self.lake.read(spark, layer, table, **kwargs)

    def read_arrow(self, layer: str, table: str, **kwargs: Any) -> pa.Table:
        return self.lake.read_arrow(layer, table, **kwargs)


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The table's columns with their type and, where written down in customer360/column_docs.py,
    what they hold (the UI's Description column)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                f.name,
                str(f.type),
                description=COLUMN_DOCS.get(f.name),
                constraints=dg.TableColumnConstraints(nullable=f.nullable),
            )
            for f in schema
        ]
    )


def write_metadata(result: WriteResult, **extra: Any) -> dict[str, Any]:
    """The metadata every lake write reports: row count, schema, URI, Delta version, partitions."""
    schema = column_schema(result.schema)
    meta: dict[str, Any] = {
        "dagster/row_count": result.table_rows,
        "dagster/column_schema": schema,
        "dagster/uri": dg.MetadataValue.path(result.uri),
        "table_uri": dg.MetadataValue.path(result.uri),
        "delta_version": result.version,
        "rows_written": result.rows_written,
        "write_path": result.path.value,
    }
    if result.partition_row_counts:
        meta["partition_row_counts"] = dg.MetadataValue.json(result.partition_row_counts)
    if result.skipped:
        meta["skipped_already_committed"] = True
    preview = table_preview(result.uri, result.version, schema)
    if preview is not None:
        meta["preview"] = preview
    meta.update(extra)
    return meta


def bronze_result(lakehouse: LakehouseResource, done: Ingested) -> dg.MaterializeResult:
    """What every bronze asset reports: the write, its rejected rows, what else it set aside
    (files rejected whole, lines held back, repeated versions, re-sent files) and the WARN check."""
    return dg.MaterializeResult(
        metadata=write_metadata(
            done.result,
            rows_written=done.rows,
            rejected_rows=done.rejected,
            rejected_table=dg.MetadataValue.path(lakehouse.uri("bronze", REJECTED_TABLE)),
            lines_held_back=done.held_back,  # last lines of files still being written
            repeated_versions_dropped=done.duplicates,
            set_aside=dg.MetadataValue.md("\n".join(f"- {n}" for n in done.notes) or "nothing"),
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="no_rejected_rows",
                passed=done.rejected == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"rejected_rows": done.rejected},
            )
        ],
    )


__all__ = [
    "LakehouseResource",
    "WriteMode",
    "WritePath",
    "column_schema",
    "write_metadata",
]
