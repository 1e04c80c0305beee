"""The publish's audit trail in Delta (Dagster-free): ops/publish_failed_rows,
ops/publish_batch_log and ops/publish_deferred, and the sink that writes them as a run goes.

Every row carries `publish_target`: several targets may write one Dataverse table, so the ops
rows of each are kept apart by the target's name.
"""

from __future__ import annotations

import threading
from typing import Protocol

import pyarrow as pa

from customer360.dynamics.outcomes import BatchLogEntry, DeferredOp, FailedRow

FAILED_TABLE = "publish_failed_rows"
DEFERRED_TABLE = "publish_deferred"
BATCH_LOG_TABLE = "publish_batch_log"
OPS_LAYER = "ops"

FAILED_SCHEMA = pa.schema(
    [
        ("publish_target", pa.string()),
        ("run_id", pa.string()),
        ("batch_id", pa.string()),
        ("mode", pa.string()),
        ("target", pa.string()),
        ("key", pa.string()),
        ("row_number", pa.int64()),
        ("record_json", pa.string()),
        ("payload_json", pa.string()),
        ("error_code", pa.string()),
        ("message", pa.string()),
        ("http_status", pa.int64()),
        ("attempts", pa.int64()),
        ("failed_at", pa.timestamp("us", tz="UTC")),
    ]
)
DEFERRED_SCHEMA = pa.schema(
    [
        ("publish_target", pa.string()),
        ("run_id", pa.string()),
        ("target", pa.string()),
        ("mode", pa.string()),
        ("key", pa.string()),
        ("entity_set", pa.string()),
        ("operation_json", pa.string()),
        ("attempts", pa.int64()),
        ("next_attempt_at", pa.timestamp("us", tz="UTC")),
        ("deadline", pa.timestamp("us", tz="UTC")),
        ("last_error", pa.string()),
        ("deferred_at", pa.timestamp("us", tz="UTC")),
    ]
)
BATCH_LOG_SCHEMA = pa.schema(
    [
        ("publish_target", pa.string()),
        ("run_id", pa.string()),
        ("batch_id", pa.string()),
        ("target", pa.string()),
        ("mode", pa.string()),
        ("operation", pa.string()),
        ("primitive", pa.string()),
        ("principal", pa.string()),
        ("rows", pa.int64()),
        ("published", pa.int64()),
        ("failed", pa.int64()),
        ("deferred", pa.int64()),
        ("duration_seconds", pa.float64()),
        ("requests", pa.int64()),
        ("retries", pa.int64()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("throttled_json", pa.string()),
    ]
)


class OpsLake(Protocol):
    """What the ops tables need of a lake (customer360.lakehouse.DeltaLake provides it)."""

    def exists(self, layer: str, table: str) -> bool: ...

    def read_arrow(self, layer: str, table: str) -> pa.Table: ...

    def write_arrow(self, data: pa.Table, layer: str, table: str, *, mode: str) -> object: ...

    def replace_where(
        self, data: pa.Table, layer: str, table: str, where: dict[str, str]
    ) -> object: ...


class OpsTablesSink:
    """Writes the engine's failed rows and batch-log rows to the ops tables as they come.

    A writer thread commits whatever has accumulated as soon as the previous commit is done,
    so each batch's audit rows are in Delta within about one commit (tens of ms) of the batch
    ending — a SIGKILLed run keeps its audit trail (issue 14) — while a fast run still groups
    many batches per commit. The deferred set is replaced once, at `close()`: a killed run's
    re-run publishes every row again anyway.
    """

    def __init__(self, lake: OpsLake, publish_target: str) -> None:
        self.lake, self.publish_target = lake, publish_target
        self._failed: list[dict] = []
        self._log: list[dict] = []
        self.deferred_ops: list[DeferredOp] = []  # the target's complete pending set (small)
        self.failed_total = 0
        self.commits = 0
        self._wake = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name=f"ops-writer-{publish_target}", daemon=True
        )
        self._writer.start()

    def published(self, keys) -> None:  # counts come from the metrics
        pass

    def unchanged(self, keys) -> None:
        pass

    def failed(self, rows: list[FailedRow]) -> None:
        records = [{**r.to_record(), "publish_target": self.publish_target} for r in rows]
        with self._wake:
            self._failed += records
            self.failed_total += len(rows)
            self._wake.notify()

    def deferred(self, ops: list[DeferredOp]) -> None:
        self.deferred_ops += ops

    def batch_logged(self, entry: BatchLogEntry) -> None:
        record = {**entry.to_record(), "publish_target": self.publish_target}
        with self._wake:
            self._log.append(record)
            self._wake.notify()

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not (self._failed or self._log or self._closing):
                    self._wake.wait()
                failed, self._failed = self._failed, []
                log, self._log = self._log, []
                if not (failed or log) and self._closing:
                    return
            try:
                # failed rows first: they are what an operator must never miss
                self._append(failed, FAILED_SCHEMA, FAILED_TABLE)
                self._append(log, BATCH_LOG_SCHEMA, BATCH_LOG_TABLE)
            except BaseException as exc:  # reported by close(); keep nothing half-done hidden
                self._error = exc
                return

    def _append(self, rows: list[dict], schema: pa.Schema, table: str) -> None:
        if rows:
            data = pa.Table.from_pylist(rows, schema=schema)
            self.lake.write_arrow(data, OPS_LAYER, table, mode="append")
            self.commits += 1

    def close(self, *, replace_deferred: bool = True) -> None:
        """Write what is left; then (unless the run failed) replace the target's deferred set."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._writer.join()
        if self._error is not None:
            raise RuntimeError(
                f"writing the publish ops tables for {self.publish_target} failed: {self._error}"
            ) from self._error
        if not replace_deferred:
            return
        # The new pending set of this target replaces the old one atomically.
        pending = pa.Table.from_pylist(
            [{**op.to_record(), "publish_target": self.publish_target} for op in self.deferred_ops],
            schema=DEFERRED_SCHEMA,
        )
        where = {"publish_target": self.publish_target}
        self.lake.replace_where(pending, OPS_LAYER, DEFERRED_TABLE, where)

    def oldest_deferred_age_hours(self, now) -> float:
        """Hours since the oldest pending operation was deferred (0 with none pending)."""
        oldest = min((op.deferred_at for op in self.deferred_ops), default=None)
        return 0.0 if oldest is None else (now - oldest).total_seconds() / 3600


def pending_deferred(lake: OpsLake, publish_target: str) -> list[DeferredOp]:
    """The operations of one publish target waiting for a retry."""
    if not lake.exists(OPS_LAYER, DEFERRED_TABLE):
        return []
    rows = lake.read_arrow(OPS_LAYER, DEFERRED_TABLE).to_pylist()
    return [DeferredOp.from_record(r) for r in rows if r["publish_target"] == publish_target]
