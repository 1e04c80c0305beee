"""Write operations: one per source row that needs a request, serialisable for deferral."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class OpKind(StrEnum):
    CREATE = "create"  # POST / CreateMultiple, with a client-chosen id
    UPDATE = "update"  # PATCH If-Match:* / UpdateMultiple, changed columns only
    UPSERT = "upsert"  # PATCH by key / UpsertMultiple
    DELETE = "delete"  # DELETE (hard delete)
    #: not a request: the row's existing record could not be read (Dataverse unavailable),
    #: so it was never classified; a replay takes it through stages 1-3 again
    REPUBLISH = "republish"


@dataclass
class Operation:
    """One record write. `payload` holds attribute values and `nav@odata.bind` entries only.

    `record_id` is the target GUID for CREATE (deterministic or from the source), UPDATE and
    DELETE; `key` is the alternate key (attribute → value) used by UPSERT and for reporting.
    `upsert_by_id` marks a create that must be re-sent as an upsert by its id, because an
    earlier attempt may have reached the server (so a retry can never create a duplicate).
    """

    kind: OpKind
    key_text: str
    row_number: int
    payload: dict[str, Any]
    row: dict[str, Any]
    record_id: str | None = None
    key: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    first_attempt_at: float | None = None
    upsert_by_id: bool = False
    last_error: str | None = None

    @property
    def effective_kind(self) -> OpKind:
        return OpKind.UPSERT if self.kind is OpKind.CREATE and self.upsert_by_id else self.kind

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind.value,
                "key_text": self.key_text,
                "row_number": self.row_number,
                "payload": self.payload,
                "row": self.row,
                "record_id": self.record_id,
                "key": self.key,
                "attempts": self.attempts,
                "first_attempt_at": self.first_attempt_at,
                "upsert_by_id": self.upsert_by_id,
            },
            default=_json_default,
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Operation:
        data: Mapping[str, Any] = json.loads(text)
        return cls(
            kind=OpKind(data["kind"]),
            key_text=data["key_text"],
            row_number=int(data["row_number"]),
            payload=dict(data["payload"]),
            row=dict(data["row"]),
            record_id=data.get("record_id"),
            key=dict(data.get("key") or {}),
            attempts=int(data.get("attempts", 0)),
            first_attempt_at=data.get("first_attempt_at"),
            upsert_by_id=bool(data.get("upsert_by_id", False)),
        )


def _json_default(value: Any) -> Any:
    # source rows may hold dates, decimals, bytes: keep them readable in the deferred table
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
