"""Request bodies for one operation: an item of a bulk message's `Targets` or a `$batch` part.

Creates carry their (deterministic) id; updates address the record by id with `If-Match: *`
(update only, never create); upserts address it by alternate key, or by id when an earlier
create attempt may have landed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from customer360.dynamics.batch_codec import BatchPart
from customer360.dynamics.odata import key_segment, record_path
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.plan import TablePlan


@dataclass
class TableRef:
    """What stage 3 needs to know about the Dataverse table (from a plan, or rebuilt for a
    replay)."""

    table: str
    entity_set: str
    primary_id: str
    mode: str
    use_bulk: Mapping[str, bool]
    plan: TablePlan | None = None


def bulk_item(table: TableRef, kind: OpKind, op: Operation) -> dict[str, Any]:
    """One item of `Targets` for Create/Update/UpsertMultiple (`@odata.type` is mandatory)."""
    item: dict[str, Any] = {"@odata.type": f"Microsoft.Dynamics.CRM.{table.table}"}
    if kind is OpKind.CREATE:
        item.update(op.payload)
    elif kind is OpKind.UPDATE:
        item[table.primary_id] = op.record_id
        item.update(op.payload)
    else:  # UPSERT: by id (a retried create) or by key
        item["@odata.id"] = upsert_path(table, op)
        item.update(op.payload)
        item.pop(table.primary_id, None)  # the key addresses the record, not the id
    return item


def bulk_items(table: TableRef, kind: OpKind, ops: list[Operation]) -> list[dict[str, Any]]:
    """`Targets` for a bulk message: `bulk_item` of each operation. Upserts by key (most of
    what a publish sends) are built here in one pass: same items, a call less per record."""
    if kind is not OpKind.UPSERT:
        return [bulk_item(table, kind, op) for op in ops]
    odata_type = f"Microsoft.Dynamics.CRM.{table.table}"
    primary_id = table.primary_id
    items = []
    for op in ops:
        item = {"@odata.type": odata_type, "@odata.id": upsert_path(table, op), **op.payload}
        item.pop(primary_id, None)  # the key addresses the record, not the id
        items.append(item)
    return items


def batch_part(table: TableRef, kind: OpKind, op: Operation) -> BatchPart:
    """The same operation as one independent request inside a `$batch`."""
    if kind is OpKind.CREATE:
        return BatchPart("POST", table.entity_set, op.payload)
    if kind is OpKind.UPDATE:
        return BatchPart(
            "PATCH",
            record_path(table.entity_set, uuid.UUID(op.record_id)),
            op.payload,
            {"If-Match": "*"},
        )
    if kind is OpKind.DELETE:
        return BatchPart("DELETE", record_path(table.entity_set, uuid.UUID(op.record_id)))
    body = {k: v for k, v in op.payload.items() if k != table.primary_id}
    return BatchPart("PATCH", upsert_path(table, op), body)


def upsert_path(table: TableRef, op: Operation) -> str:
    """`entityset(<id>)` for a retried create or a primary-id key, else `entityset(<alt key>)`."""
    by_id = op.upsert_by_id or not op.key or table.primary_id in op.key
    if by_id and op.record_id:
        return record_path(table.entity_set, uuid.UUID(op.record_id))
    # In a publish (a plan) the op's key text is `key_segment(op.key)` already (`extract_key`
    # made it); a replay rebuilds ops from JSON, so it encodes the key again.
    segment = op.key_text if table.plan is not None and op.key_text else key_segment(op.key)
    return f"{table.entity_set}({segment})"
