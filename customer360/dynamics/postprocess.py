"""Stage 4, post-process: every outcome to the sink and the metrics, the batch log, progress.

Each source row is reported exactly once, as published, unchanged, failed or deferred; the
counts in `PublishMetrics` follow the sink calls one for one (so `metrics.done` reconciles with
what the sink received).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from customer360.dynamics.context import RunContext
from customer360.dynamics.jobs import Job
from customer360.dynamics.metrics import Progress
from customer360.dynamics.operations import Operation
from customer360.dynamics.outcomes import BatchLogEntry, DeferredOp, FailedRow, OutcomeSink, utc_now
from customer360.dynamics.plan import TablePlan
from customer360.dynamics.transport import PrincipalClient
from customer360.dynamics.values import RowProblem

ProgressCallback = Callable[[Progress], None]


class Outcomes:
    """Reports outcomes to the sink and counts them in the run's metrics."""

    def __init__(self, ctx: RunContext, sink: OutcomeSink) -> None:
        self.ctx = ctx
        self.sink = sink

    # ------------------------------------------------------------- the four final states

    def published(self, ops: Sequence[Operation]) -> None:
        if not ops:
            return
        metrics = self.ctx.metrics
        metrics.published += len(ops)
        metrics.by_operation.update(op.effective_kind.value for op in ops)
        self.sink.published([op.key_text for op in ops])

    def unchanged(self, keys: Sequence[str]) -> None:
        if keys:
            self.ctx.metrics.unchanged += len(keys)
            self.sink.unchanged(keys)

    def failed(self, rows: Sequence[FailedRow]) -> None:
        if rows:
            self.ctx.metrics.failed += len(rows)
            self.sink.failed(list(rows))

    def deferred(self, ops: Sequence[DeferredOp]) -> None:
        if ops:
            self.ctx.metrics.deferred += len(ops)
            self.sink.deferred(list(ops))

    # ------------------------------------------------------------- failed-row records

    def row_failure(
        self,
        plan: TablePlan,
        number: int,
        row: Mapping[str, Any],
        problem: RowProblem,
        key_text: str | None,
    ) -> FailedRow:
        """A failed row found before any request (validation, classification)."""
        return FailedRow(
            run_id=self.ctx.run_id,
            batch_id=None,
            mode=plan.spec.mode.value,
            target=plan.meta.logical_name,
            key=key_text if key_text is not None else best_effort_key(plan, row),
            row_number=number,
            record=dict(row),
            payload=None,
            error_code=problem.code,
            message=problem.message,
            http_status=None,
            attempts=0,
            failed_at=utc_now(),
        )

    def fail_ops(
        self, job: Job, ops: Sequence[Operation], code: str, message: str, status: int | None
    ) -> None:
        """Operations of a job that failed for good (their own data, or given up)."""
        self.failed(
            [
                FailedRow(
                    run_id=self.ctx.run_id,
                    batch_id=job.batch_id,
                    mode=job.table.mode,
                    target=job.table.table,
                    key=op.key_text,
                    row_number=op.row_number,
                    record=op.row,
                    payload=op.payload,
                    error_code=code,
                    message=message,
                    http_status=status,
                    attempts=op.attempts,
                    failed_at=utc_now(),
                )
                for op in ops
            ]
        )

    # ------------------------------------------------------------- batch log

    def log_batch(
        self, client: PrincipalClient, job: Job, *, published: int, failed: int, deferred: int
    ) -> None:
        elapsed = time.monotonic() - job.started
        self.sink.batch_logged(
            BatchLogEntry(
                run_id=self.ctx.run_id,
                batch_id=job.batch_id,
                target=job.table.table,
                mode=job.table.mode,
                operation=job.kind.value,
                primitive=job.primitive,
                principal=client.name,
                rows=len(job.ops),
                published=published,
                failed=failed,
                deferred=deferred,
                duration_seconds=round(elapsed, 4),
                requests=job.requests,
                retries=job.retries,
                throttled=dict(job.throttled),
                started_at=utc_now() - dt.timedelta(seconds=elapsed),
            )
        )


class ProgressReporter:
    """Samples the throughput series and calls the user's progress callback periodically."""

    def __init__(self, ctx: RunContext, callback: ProgressCallback | None) -> None:
        self.ctx = ctx
        self.callback = callback

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.options.progress_interval_seconds)
            self.report(finished=False)

    def report(self, *, finished: bool) -> None:
        m = self.ctx.metrics
        elapsed = time.monotonic() - self.ctx.started
        m.throughput.append((round(elapsed, 3), m.done))
        if self.callback is None:
            return
        self.callback(
            Progress(
                rows_read=m.rows_read,
                published=m.published,
                unchanged=m.unchanged,
                failed=m.failed,
                deferred=m.deferred,
                elapsed_seconds=elapsed,
                records_per_second=m.done / elapsed if elapsed > 0 else 0.0,
                throttled=sum(sum(c.throttled.values()) for c in self.ctx.clients),
                finished=finished,
            )
        )


def best_effort_key(plan: TablePlan, row: Mapping[str, Any]) -> str:
    """A key text for a row whose key could not be built (for the failed-rows table)."""
    parts = [f"{name}={row.get(source)!r}" for name, source in plan.spec.key.columns.items()]
    return ",".join(parts)
