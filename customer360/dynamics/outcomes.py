"""Outcome records and the sink interface the engine reports them through.

The engine writes nothing itself: every source row ends in exactly one of published, unchanged,
failed or deferred, and is reported once through an `OutcomeSink`. The Dagster side binds a sink
to the Delta tables `ops/publish_failed_rows`, `ops/publish_deferred` and
`ops/publish_batch_log`; `InMemorySink` serves tests and small runs.

Sink methods are called from the thread that runs the publish, one call per batch of outcomes;
they should be quick (buffer and write in bulk).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from customer360.dynamics.operations import Operation


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class FailedRow:
    """A row that will not be published without a change to the data or the target."""

    run_id: str
    batch_id: str | None  # None when it failed before any request (validation)
    mode: str
    target: str  # logical name
    key: str  # canonical key text (OData key segment or GUID)
    row_number: int  # position in the run's source stream (0-based)
    record: Mapping[str, Any]  # the full source record as attempted
    payload: Mapping[str, Any] | None  # what was (or would have been) sent
    error_code: str
    message: str
    http_status: int | None
    attempts: int
    failed_at: dt.datetime

    def to_record(self) -> dict[str, Any]:
        """A flat row for a table: nested values as JSON text."""
        return {
            "run_id": self.run_id,
            "batch_id": self.batch_id,
            "mode": self.mode,
            "target": self.target,
            "key": self.key,
            "row_number": self.row_number,
            "record_json": json.dumps(self.record, default=str, ensure_ascii=False, sort_keys=True),
            "payload_json": (
                None
                if self.payload is None
                else json.dumps(self.payload, default=str, ensure_ascii=False, sort_keys=True)
            ),
            "error_code": self.error_code,
            "message": self.message,
            "http_status": self.http_status,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
        }


@dataclass(frozen=True)
class DeferredOp:
    """A write that failed transiently after its immediate retries; `replay_deferred` resends it.

    `operation_json` is the full `Operation` (payload, key, source row, attempts), so a replay
    needs nothing else but the target's name.
    """

    run_id: str
    target: str  # logical name
    entity_set: str
    mode: str
    key: str
    operation_json: str
    attempts: int
    next_attempt_at: dt.datetime
    deadline: dt.datetime
    last_error: str
    deferred_at: dt.datetime

    @property
    def operation(self) -> Operation:
        return Operation.from_json(self.operation_json)

    def to_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "target": self.target,
            "mode": self.mode,
            "key": self.key,
            "entity_set": self.entity_set,
            "operation_json": self.operation_json,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "deadline": self.deadline,
            "last_error": self.last_error,
            "deferred_at": self.deferred_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DeferredOp:
        """Rebuild from a table row (extra columns are ignored; naive timestamps are UTC)."""
        values = {name: record[name] for name in cls.__dataclass_fields__}
        for name in ("next_attempt_at", "deadline", "deferred_at"):
            values[name] = _utc(values[name])
        values["attempts"] = int(values["attempts"])
        return cls(**values)


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class BatchLogEntry:
    """One write request (or bisection/retry series of one batch) as it ended."""

    run_id: str
    batch_id: str
    target: str
    mode: str
    operation: str  # create | update | upsert | delete
    primitive: str  # CreateMultiple | UpdateMultiple | UpsertMultiple | $batch
    principal: str  # client id (never the secret)
    rows: int
    published: int
    failed: int
    deferred: int
    duration_seconds: float
    requests: int
    retries: int
    throttled: Mapping[str, int]  # 429s by reason: requests / execution_time / concurrency
    started_at: dt.datetime

    def to_record(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["throttled_json"] = json.dumps(dict(self.throttled), sort_keys=True)
        del record["throttled"]
        return record


@runtime_checkable
class OutcomeSink(Protocol):
    def published(self, keys: Sequence[str]) -> None: ...

    def unchanged(self, keys: Sequence[str]) -> None: ...

    def failed(self, rows: Sequence[FailedRow]) -> None: ...

    def deferred(self, ops: Sequence[DeferredOp]) -> None: ...

    def batch_logged(self, entry: BatchLogEntry) -> None: ...


@dataclass
class InMemorySink:
    """Keeps every outcome in lists (tests, small runs)."""

    published_keys: list[str] = field(default_factory=list)
    unchanged_keys: list[str] = field(default_factory=list)
    failed_rows: list[FailedRow] = field(default_factory=list)
    deferred_ops: list[DeferredOp] = field(default_factory=list)
    batches: list[BatchLogEntry] = field(default_factory=list)

    def published(self, keys: Sequence[str]) -> None:
        self.published_keys.extend(keys)

    def unchanged(self, keys: Sequence[str]) -> None:
        self.unchanged_keys.extend(keys)

    def failed(self, rows: Sequence[FailedRow]) -> None:
        self.failed_rows.extend(rows)

    def deferred(self, ops: Sequence[DeferredOp]) -> None:
        self.deferred_ops.extend(ops)

    def batch_logged(self, entry: BatchLogEntry) -> None:
        self.batches.append(entry)

    @property
    def accounted_keys(self) -> list[str]:
        """Every key reported, once per outcome (a row appears exactly once when all is well)."""
        return [
            *self.published_keys,
            *self.unchanged_keys,
            *(r.key for r in self.failed_rows),
            *(d.key for d in self.deferred_ops),
        ]


class NullSink:
    """Discards outcomes (benchmarks)."""

    def published(self, keys: Sequence[str]) -> None:
        pass

    def unchanged(self, keys: Sequence[str]) -> None:
        pass

    def failed(self, rows: Sequence[FailedRow]) -> None:
        pass

    def deferred(self, ops: Sequence[DeferredOp]) -> None:
        pass

    def batch_logged(self, entry: BatchLogEntry) -> None:
        pass
