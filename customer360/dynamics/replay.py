"""Replay of deferred operations: each one ends published, failed (deadline or attempts
exhausted, or a permanent error) or deferred again (not yet due, or still failing)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from customer360.dynamics.bodies import TableRef
from customer360.dynamics.context import RunContext
from customer360.dynamics.errors import PublishConfigError
from customer360.dynamics.jobs import BULK_MESSAGE
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.outcomes import DeferredOp, FailedRow, utc_now
from customer360.dynamics.postprocess import Outcomes
from customer360.dynamics.process import Processor
from customer360.dynamics.reads import fetch_metadata
from customer360.dynamics.recovery import DEFERRED_EXPIRED

Republish = Callable[[list[Operation]], Awaitable[None]]


async def replay(
    ctx: RunContext,
    outcomes: Outcomes,
    processor: Processor,
    deferred: list[DeferredOp],
    now: dt.datetime,
    only_due: bool,
    republish: Republish | None = None,
) -> None:
    """`republish` takes the rows deferred before they were classified (their reads failed)
    through stages 1-3 again; it is required when there are any."""
    tables: dict[str, TableRef] = {}
    unread: list[Operation] = []
    due: dict[tuple[str, OpKind], list[Operation]] = {}
    keep: list[DeferredOp] = []
    for item in deferred:
        ctx.metrics.rows_read += 1
        op = item.operation
        if now >= item.deadline or op.attempts >= ctx.options.max_total_attempts:
            outcomes.failed([_expired(ctx, item)])
            continue
        if only_due and item.next_attempt_at > now:
            keep.append(item)
            continue
        if op.kind is OpKind.REPUBLISH:
            unread.append(op)
            continue
        if item.target not in tables:
            tables[item.target] = await _table_ref(ctx, item)
        if op.kind is OpKind.CREATE:
            op.upsert_by_id = True  # an earlier attempt may have landed
        due.setdefault((item.target, op.effective_kind), []).append(op)
    outcomes.deferred(keep)
    for (table, _kind), ops in due.items():
        await processor.submit(tables[table], ops)
    if unread:
        if republish is None:
            raise PublishConfigError(
                f"{len(unread)} deferred row(s) were never classified (their reads failed); "
                "replaying them needs the publish spec: replay_deferred(..., spec=...)"
            )
        await republish(unread)


async def _table_ref(ctx: RunContext, item: DeferredOp) -> TableRef:
    meta = await fetch_metadata(ctx.pick, item.target, **ctx.read_kw())
    return TableRef(
        table=meta.logical_name,
        entity_set=meta.entity_set,
        primary_id=meta.primary_id,
        mode=item.mode,
        use_bulk={m: m in meta.bulk_messages for m in BULK_MESSAGE.values()},
    )


def _expired(ctx: RunContext, item: DeferredOp) -> FailedRow:
    op = item.operation
    return FailedRow(
        run_id=ctx.run_id,
        batch_id=None,
        mode=item.mode,
        target=item.target,
        key=item.key,
        row_number=op.row_number,
        record=op.row,
        payload=op.payload,
        error_code=DEFERRED_EXPIRED,
        message=f"deadline or attempts exhausted; last: {item.last_error}",
        http_status=None,
        attempts=op.attempts,
        failed_at=utc_now(),
    )
