"""The publish engine's entry points, and one run from start to finish.

    load (stage 1)        load.py        source chunks → keys → existing records by key
    pre-process (stage 2) preprocess.py  sanitise/validate → dedupe keys → resolve lookups →
                                         classify
    process (stage 3)     process.py     jobs on a shared queue, workers per principal, bulk or
                          recovery.py    $batch; retry, bisect, defer
    post-process (4)      postprocess.py outcomes to the sink, batch log, metrics, progress

Stages 1-2 run chunk by chunk ahead of stage 3 with backpressure (at most `max_pending_rows`
rows waiting or in flight), so memory stays bounded whatever the source size. Every source row is
reported exactly once: published, unchanged, failed or deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

from customer360.dynamics.auth import DataverseConnection
from customer360.dynamics.bodies import TableRef
from customer360.dynamics.context import RunContext
from customer360.dynamics.errors import RequestFailed
from customer360.dynamics.jobs import Job
from customer360.dynamics.load import Loader
from customer360.dynamics.metrics import PublishMetrics
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.options import PublishOptions
from customer360.dynamics.outcomes import DeferredOp, NullSink, OutcomeSink, utc_now
from customer360.dynamics.plan import TablePlan
from customer360.dynamics.postprocess import Outcomes, ProgressCallback, ProgressReporter
from customer360.dynamics.prepare import PreparedRow
from customer360.dynamics.preprocess import PreProcessor
from customer360.dynamics.process import Processor
from customer360.dynamics.replay import replay
from customer360.dynamics.source import SourceRows
from customer360.dynamics.spec import PublishSpec

__all__ = ["PublishOptions", "publish", "publish_async", "replay_deferred", "replay_deferred_async"]


def publish(
    source: SourceRows,
    spec: PublishSpec,
    connection: DataverseConnection,
    *,
    sink: OutcomeSink | None = None,
    options: PublishOptions | None = None,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
) -> PublishMetrics:
    """Publish `source` rows to the table of `spec`; returns the run's metrics.

    Blocking; runs its own event loop (use `publish_async` inside one).
    """
    return asyncio.run(
        publish_async(
            source, spec, connection, sink=sink, options=options, progress=progress, run_id=run_id
        )
    )


async def publish_async(
    source: SourceRows,
    spec: PublishSpec,
    connection: DataverseConnection,
    *,
    sink: OutcomeSink | None = None,
    options: PublishOptions | None = None,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
) -> PublishMetrics:
    run = _Run(connection, options or PublishOptions(), sink or NullSink(), progress, run_id)
    run.ctx.metrics.target, run.ctx.metrics.mode = spec.table, spec.mode.value
    with fewer_collections():
        return await run.execute(lambda: run.publish(source, spec))


_GC_YOUNG_THRESHOLD = 20_000
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect the young generation every 20,000 allocations instead of 700 while a publish
    runs, then restore the process's setting.

    A publish keeps up to `max_pending_rows` rows (dicts of dicts) alive and allocates a few
    dozen objects per row, so with the default threshold the cyclic collector ran ~360 times
    per 20,000 rows and took ~8 µs of CPU per record (about a sixth of the client's CPU);
    at 20,000 it runs ~9 times. Only cyclic garbage waits longer; everything else is freed by
    reference counting as before. Runs in one process may overlap: the first in sets the
    threshold, the last out restores it."""
    global _gc_users, _gc_saved
    if _gc_users == 0:
        _gc_saved = gc.get_threshold()
        young, *older = _gc_saved
        gc.set_threshold(max(young, _GC_YOUNG_THRESHOLD), *older)
    _gc_users += 1
    try:
        yield
    finally:
        _gc_users -= 1
        if _gc_users == 0 and _gc_saved is not None:
            gc.set_threshold(*_gc_saved)


def replay_deferred(
    ops: Iterable[DeferredOp],
    connection: DataverseConnection,
    *,
    sink: OutcomeSink | None = None,
    options: PublishOptions | None = None,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
    now: dt.datetime | None = None,
    only_due: bool = True,
    spec: PublishSpec | None = None,
) -> PublishMetrics:
    """Re-send deferred operations. Each op passed in ends published, failed (deadline or
    attempts exhausted, or a permanent error) or deferred again; ops not yet due (when
    `only_due`) are reported as deferred unchanged. Rows deferred because their reads failed
    are published again with `spec` (the spec of the publish that deferred them)."""
    return asyncio.run(
        replay_deferred_async(
            ops,
            connection,
            sink=sink,
            options=options,
            progress=progress,
            run_id=run_id,
            now=now,
            only_due=only_due,
            spec=spec,
        )
    )


async def replay_deferred_async(
    ops: Iterable[DeferredOp],
    connection: DataverseConnection,
    *,
    sink: OutcomeSink | None = None,
    options: PublishOptions | None = None,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
    now: dt.datetime | None = None,
    only_due: bool = True,
    spec: PublishSpec | None = None,
) -> PublishMetrics:
    run = _Run(connection, options or PublishOptions(), sink or NullSink(), progress, run_id)
    run.ctx.metrics.mode = "replay"
    when = now or utc_now()
    republish = None if spec is None else (lambda unread: run.republish(spec, unread))
    with fewer_collections():
        return await run.execute(
            lambda: replay(
                run.ctx, run.outcomes, run.processor, list(ops), when, only_due, republish
            )
        )


class _Run:
    """One run: the four stages wired together around a shared `RunContext`."""

    def __init__(
        self,
        connection: DataverseConnection,
        options: PublishOptions,
        sink: OutcomeSink,
        progress: ProgressCallback | None,
        run_id: str | None,
    ) -> None:
        self.ctx = RunContext(connection, options, run_id)
        self.outcomes = Outcomes(self.ctx, sink)
        self.reporter = ProgressReporter(self.ctx, progress)
        self.loader = Loader(self.ctx)
        self.preprocessor = PreProcessor(self.ctx, self.outcomes)
        self.processor = Processor(self.ctx, self.outcomes)

    async def execute(self, body: Callable[[], Awaitable[None]]) -> PublishMetrics:
        ctx = self.ctx
        ctx.started = time.monotonic()
        ctx.metrics.started_at = time.time()
        ticker: asyncio.Task | None = None
        try:
            await ctx.start_clients()
            self.processor.start_workers()
            ticker = asyncio.create_task(self.reporter.tick())
            try:
                await body()
            except Exception:
                # e.g. the source raised: let what was already submitted finish and be
                # reported before the error propagates (a re-run is idempotent)
                await self.processor.drain()
                raise
            await self.processor.drain()
        finally:
            await self.processor.stop()
            if ticker:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            t_post = time.monotonic()
            await ctx.close_clients()
            ctx.metrics.duration_seconds = time.monotonic() - ctx.started
            if self.processor.started is not None:
                ctx.metrics.stage_seconds["process"] = time.monotonic() - self.processor.started
            ctx.metrics.stage_seconds["post_process"] = time.monotonic() - t_post
            self.reporter.report(finished=True)
        return ctx.metrics

    async def publish(self, source: SourceRows, spec: PublishSpec) -> None:
        plan, table = await self._plan(spec)
        if plan.reads_per_chunk:  # each chunk's rows are read against Dataverse together
            async for numbers, chunk in self.loader.chunks(source, spec):
                rows = self.preprocessor.prepare(plan, chunk, numbers)
                await self._publish_rows(plan, table, rows)
            return
        await self._stream(source, spec, plan, table)

    async def _stream(
        self, source: SourceRows, spec: PublishSpec, plan: TablePlan, table: TableRef
    ) -> None:
        """Rows that need no reads (append, blind upsert, no lookups) go to stage 3 a batch at
        a time: the first chunk is one batch (then they double), a chunk's keys are claimed at
        once, and its rows are prepared and queued slice by slice, the event loop going to the
        workers in between. Requests leave while the rest is prepared, instead of the server
        waiting for whole chunks (and, at the end, for the last chunk's preparation)."""
        size = max(self.ctx.options.bulk_batch_size, 1)
        async for numbers, chunk in self.loader.chunks(source, spec, first_rows=size):
            keyed = self.preprocessor.claim(plan, chunk, numbers)
            for start in range(0, len(keyed), size):
                ops = self.preprocessor.stream_ops(plan, keyed[start : start + size])
                await self.processor.submit(table, ops)
                await asyncio.sleep(0)

    async def republish(self, spec: PublishSpec, ops: list[Operation]) -> None:
        """Deferred rows that were never classified: through stages 1-3 again."""
        plan, table = await self._plan(spec)
        chunk_rows = self.ctx.options.chunk_rows
        for start in range(0, len(ops), chunk_rows):
            part = ops[start : start + chunk_rows]
            numbers = [op.row_number for op in part]
            rows = self.preprocessor.prepare(plan, [op.row for op in part], numbers)
            await self._publish_rows(plan, table, rows, {op.key_text: op for op in part})

    async def _plan(self, spec: PublishSpec) -> tuple[TablePlan, TableRef]:
        plan = await self.loader.compile(spec)
        table = TableRef(
            table=plan.meta.logical_name,
            entity_set=plan.entity_set,
            primary_id=plan.primary_id,
            mode=spec.mode.value,
            use_bulk=plan.use_bulk,
            plan=plan,
        )
        return plan, table

    async def _publish_rows(
        self,
        plan: TablePlan,
        table: TableRef,
        rows: list[PreparedRow],
        earlier: Mapping[str, Operation] | None = None,
    ) -> None:
        try:
            existing = await self.loader.existing(plan, rows)
            resolved = await self.preprocessor.resolve(plan, rows)
        except RequestFailed as failure:
            # Dataverse kept failing the reads these rows need (5xx, dropped connections,
            # 401 after refreshes, endless 429s): nothing is wrong with the rows, so they are
            # deferred unclassified, never failed; a replay reads and classifies them again
            self._defer_unread(table, rows, failure, earlier or {})
            return
        ops = self.preprocessor.classify(plan, rows, existing, resolved)
        await self.processor.submit(table, ops)

    def _defer_unread(
        self,
        table: TableRef,
        rows: list[PreparedRow],
        failure: RequestFailed,
        earlier: Mapping[str, Operation],
    ) -> None:
        ops = []
        for r in rows:
            before = earlier.get(r.key_text)
            ops.append(
                Operation(
                    kind=OpKind.REPUBLISH,
                    key_text=r.key_text,
                    row_number=r.row_number,
                    payload={},
                    row=r.row,
                    attempts=(before.attempts if before else 0) + 1,
                    first_attempt_at=(before.first_attempt_at if before else None) or time.time(),
                )
            )
        self.ctx.metrics.read_deferrals += len(ops)
        job = Job(table, OpKind.REPUBLISH, ops, f"{self.ctx.run_id[:8]}-read")
        self.processor.recovery.defer(job, failure)
