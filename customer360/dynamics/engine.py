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
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from customer360.dynamics.auth import DataverseConnection
from customer360.dynamics.bodies import TableRef
from customer360.dynamics.context import RunContext
from customer360.dynamics.errors import RequestFailed
from customer360.dynamics.load import Loader
from customer360.dynamics.metrics import PublishMetrics
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
from customer360.dynamics.values import RowProblem

__all__ = ["PublishOptions", "publish", "publish_async", "replay_deferred", "replay_deferred_async"]

TARGET_READ_FAILED = "TargetReadFailed"


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
    return await run.execute(lambda: run.publish(source, spec))


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
) -> PublishMetrics:
    """Re-send deferred operations. Each op passed in ends published, failed (deadline or
    attempts exhausted, or a permanent error) or deferred again; ops not yet due (when
    `only_due`) are reported as deferred unchanged."""
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
) -> PublishMetrics:
    run = _Run(connection, options or PublishOptions(), sink or NullSink(), progress, run_id)
    run.ctx.metrics.mode = "replay"
    when = now or utc_now()
    return await run.execute(
        lambda: replay(run.ctx, run.outcomes, run.processor, list(ops), when, only_due)
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
        plan = await self.loader.compile(spec)
        table = TableRef(
            table=plan.meta.logical_name,
            entity_set=plan.entity_set,
            primary_id=plan.primary_id,
            mode=spec.mode.value,
            use_bulk=plan.use_bulk,
            plan=plan,
        )
        async for numbers, chunk in self.loader.chunks(source, spec):
            rows = self.preprocessor.prepare(plan, chunk, numbers)
            try:
                existing = await self.loader.existing(plan, rows)
                resolved = await self.preprocessor.resolve(plan, rows)
            except RequestFailed as failure:
                # Dataverse kept failing the reads this chunk needs: its rows cannot be
                # classified, so they fail (re-publishing retries them; nothing is half-sent)
                self._read_failed(plan, rows, failure)
                continue
            ops = self.preprocessor.classify(plan, rows, existing, resolved)
            await self.processor.submit(table, ops)

    def _read_failed(
        self, plan: TablePlan, rows: list[PreparedRow], failure: RequestFailed
    ) -> None:
        problem = RowProblem(TARGET_READ_FAILED, f"reading the target failed: {failure}")
        failed = []
        for r in rows:
            row = self.outcomes.row_failure(plan, r.row_number, r.row, problem, r.key_text)
            failed.append(replace(row, http_status=failure.status))
        self.outcomes.failed(failed)
