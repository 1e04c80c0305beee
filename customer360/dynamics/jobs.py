"""A job: one write request's worth of operations (stage 3's unit of work and of logging)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from customer360.dynamics.bodies import TableRef
from customer360.dynamics.operations import Operation, OpKind

BULK_MESSAGE = {
    OpKind.CREATE: "CreateMultiple",
    OpKind.UPDATE: "UpdateMultiple",
    OpKind.UPSERT: "UpsertMultiple",
}


@dataclass
class Job:
    table: TableRef
    kind: OpKind
    ops: list[Operation]
    batch_id: str
    tries: int = 0  # sends in this run (bisected halves inherit it)
    force_batch: bool = False  # append's micro-batch fallback: $batch even if bulk exists
    retries: int = 0
    throttled: Counter = field(default_factory=Counter)
    requests: int = 0
    started: float = 0.0

    def child(self, ops: list[Operation], suffix: str, *, tries: int | None = None) -> Job:
        """A job for part of this one's operations (a bisected half, a retry, a conversion)."""
        return Job(
            self.table,
            self.kind,
            ops,
            f"{self.batch_id}{suffix}",
            tries=self.tries if tries is None else tries,
        )

    @property
    def uses_bulk(self) -> bool:
        return uses_bulk(self.table, self.kind) and not self.force_batch

    @property
    def primitive(self) -> str:
        return BULK_MESSAGE[self.kind] if self.uses_bulk else "$batch"


def uses_bulk(table: TableRef, kind: OpKind) -> bool:
    message = BULK_MESSAGE.get(kind)
    return bool(message and table.use_bulk.get(message))
