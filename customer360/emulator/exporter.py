"""Synapse Link exporter: changes made through the Web API reach the landing zone as in Azure.

Each export writes one incremental folder with the project's `SynapseLinkWriter` (append-only:
creates and updates as new row versions, deletes as `IsDelete` rows). A cursor per table (the
last exported versionnumber) lives in the emulator's SQLite database, so every export holds only
the changes since the previous one; intermediate versions between two exports collapse into the
latest, as Synapse Link batches changes too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from customer360.emulator.schema import Column, Table
from customer360.emulator.store import Store
from customer360.generate.seed_table import CUSTOMER_TABLE, crc33_customer_model
from customer360.synapse_link import Attribute, EntityModel, SynapseLinkWriter

ENTITYTYPE_SUFFIX = "_entitytype"


def _attribute(column: Column) -> list[Attribute]:
    kind = column.type
    if column.is_lookup:
        return [
            Attribute(column.name, "guid"),
            Attribute(f"{column.name}{ENTITYTYPE_SUFFIX}", "string", max_length=64),
        ]
    if kind in ("String", "Memo"):
        return [Attribute(column.name, "string", max_length=column.max_length or -1)]
    if kind == "Uniqueidentifier":
        return [Attribute(column.name, "guid")]
    if kind == "Integer":
        return [Attribute(column.name, "int32")]
    if kind in ("BigInt", "Picklist", "State", "Status"):
        return [Attribute(column.name, "int64")]
    if kind in ("Decimal", "Money"):
        return [Attribute(column.name, "decimal", precision=38, scale=column.precision or 10)]
    if kind == "Double":
        return [Attribute(column.name, "double")]
    if kind == "Boolean":
        return [Attribute(column.name, "boolean")]
    if kind == "DateTime":
        data_type = "dateTimeOffset" if column.name == "createdon" else "dateTime"
        return [Attribute(column.name, data_type)]
    raise ValueError(f"column {column.name!r}: no Synapse Link type for {kind!r}")


def entity_model(table: Table) -> EntityModel:
    """The exported model of a table: every column except versionnumber (the writer adds it).

    `crc33_customer` starts with the sample's model (`generate.seed_table`), which the data
    generator writes to the same landing zone, and appends the emulator's other columns at the
    end, as Synapse Link appends new columns: older folders stay readable with the newer model.
    """
    attributes: list[Attribute] = []
    for column in table.columns.values():
        if column.name == "versionnumber":
            continue
        attributes.extend(_attribute(column))
    if table.logical_name == CUSTOMER_TABLE:
        base = crc33_customer_model()
        known = set(base.column_names)
        return base.with_added_attributes(*(a for a in attributes if a.name not in known))
    return EntityModel.for_dataverse_table(table.logical_name, tuple(attributes))


def _to_datetime(text: str) -> dt.datetime:
    if len(text) == 10:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def export_row(table: Table, row: dict) -> dict:
    """A stored row → the writer's row dict (Python values, Id = primary key)."""
    out: dict[str, object] = {"Id": row[table.primary_id]}
    for column in table.columns.values():
        value = row.get(column.name)
        if column.is_lookup:
            out[column.name] = value
            target = row.get(f"{column.name}@type") or (column.targets[0] if value else None)
            out[f"{column.name}{ENTITYTYPE_SUFFIX}"] = target if value else None
            continue
        if value is not None and column.type == "DateTime":
            value = _to_datetime(str(value))
        elif isinstance(value, float) and column.type in ("Decimal", "Money"):
            value = Decimal(str(value))
        out[column.name] = value
    return out


@dataclass
class ExportResult:
    folder: str | None
    tables: dict[str, dict[str, int]]

    def as_dict(self) -> dict:
        return {"folder": self.folder, "tables": self.tables}


class SynapseLinkExporter:
    def __init__(self, store: Store, landing_dir: Path) -> None:
        self.store = store
        self.landing_dir = landing_dir
        self.writer = SynapseLinkWriter(landing_dir, incremental=True)
        self._lock = asyncio.Lock()
        self._last_time: dt.datetime | None = None
        self.models = {name: entity_model(t) for name, t in store.schema.tables.items()}

    def _export_time(self) -> dt.datetime:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + dt.timedelta(seconds=1)  # one folder per second at most
        return now

    def collect(self, tables: list[str], export_time: dt.datetime) -> tuple[dict, dict, dict]:
        """Snapshot changes since each table's cursor (runs on the event loop: consistent)."""
        changes: dict[str, tuple[EntityModel, list[dict]]] = {}
        cursors: dict[str, int] = {}
        counts: dict[str, dict[str, int]] = {}
        for name in tables:
            table = self.store.schema.tables[name]
            data = self.store.data(name)
            cursor = self.store.export_cursor(name)
            rows = sorted(
                (r for r in data.rows.values() if r["versionnumber"] > cursor),
                key=lambda r: r["versionnumber"],
            )
            tombs = sorted(
                (t for t in data.tombstones.values() if t.version > cursor),
                key=lambda t: t.version,
            )
            if not rows and not tombs:
                continue
            model = self.models[name]
            out = [export_row(table, r) for r in rows]
            out.extend(
                SynapseLinkWriter.delete_row(model, t.id, t.version, export_time) for t in tombs
            )
            changes[name] = (model, out)
            cursors[name] = max([r["versionnumber"] for r in rows] + [t.version for t in tombs])
            counts[name] = {"rows": len(rows), "deletes": len(tombs)}
        return changes, cursors, counts

    async def export(self, tables: list[str]) -> ExportResult:
        unknown = [t for t in tables if t not in self.store.schema.tables]
        if unknown:
            raise ValueError(f"cannot export unknown tables {unknown}")
        async with self._lock:
            export_time = self._export_time()
            changes, cursors, counts = self.collect(tables, export_time)
            if not changes:
                return ExportResult(None, {})
            folder = await asyncio.to_thread(self.writer.write, changes, export_time=export_time)
            self._last_time = export_time
            for name, version in cursors.items():
                self.store.set_export_cursor(name, version)
            return ExportResult(folder, counts)
