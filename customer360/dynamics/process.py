"""Stage 3, process: batches on one shared queue, worker tasks per principal, one bulk message
or `$batch` per job. What happens to a job that fails is `recovery.py`'s business.

Backpressure: at most `max_pending_rows` rows are submitted but not finished, so stages 1-2
wait for stage 3 and memory stays bounded whatever the source size.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from customer360.dynamics.batch_codec import decode_batch, encode_batch
from customer360.dynamics.bodies import TableRef, batch_part, bulk_items
from customer360.dynamics.context import RunContext
from customer360.dynamics.errors import FailureKind, RequestFailed, classify_status
from customer360.dynamics.jobs import BULK_MESSAGE, Job, uses_bulk
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.postprocess import Outcomes
from customer360.dynamics.recovery import Recovery
from customer360.dynamics.transport import PrincipalClient, Sent, error_of

log = logging.getLogger(__name__)


class Processor:
    """The queue of jobs, the workers that send them, and the count of unfinished rows."""

    def __init__(self, ctx: RunContext, outcomes: Outcomes) -> None:
        self.ctx = ctx
        self.outcomes = outcomes
        self.recovery = Recovery(ctx, outcomes, self)
        self._queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._batch_seq = itertools.count(1)
        self._pending_rows = 0
        self._room = asyncio.Condition()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task] = set()
        self.started: float | None = None  # when the first job was queued

    # ------------------------------------------------------------- lifecycle

    def start_workers(self) -> None:
        for client in self.ctx.clients:
            for _ in range(client.gate.controller.ceiling):
                self._spawn(self._worker(client))

    async def drain(self) -> None:
        """Wait until every submitted row is finished."""
        await self._idle.wait()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- scheduling

    async def submit(self, table: TableRef, ops: list[Operation]) -> None:
        """Queue `ops` in jobs of the batch size, waiting while too many rows are unfinished."""
        by_kind: dict[OpKind, list[Operation]] = {}
        kinds = {op.kind for op in ops}
        if len(kinds) == 1 and OpKind.CREATE not in kinds:  # one kind (no create to redo)
            by_kind[kinds.pop()] = ops
        else:
            for op in ops:
                by_kind.setdefault(op.effective_kind, []).append(op)
        for kind, group in by_kind.items():
            size = self._batch_size(table, kind)
            for start in range(0, len(group), size):
                part = group[start : start + size]
                async with self._room:
                    limit = self.ctx.options.max_pending_rows
                    while self._pending_rows and self._pending_rows + len(part) > limit:
                        await self._room.wait()
                batch_id = f"{self.ctx.run_id[:8]}-{next(self._batch_seq):06d}"
                self.enqueue(Job(table, kind, part, batch_id), priority=1, new_rows=len(part))

    def _batch_size(self, table: TableRef, kind: OpKind) -> int:
        spec_size = table.plan.spec.batch_size if table.plan else None
        if uses_bulk(table, kind):
            return spec_size or self.ctx.options.bulk_batch_size
        return min(spec_size or self.ctx.options.batch_batch_size, 1000)

    def enqueue(self, job: Job, *, priority: int = 0, new_rows: int = 0) -> None:
        """Queue a job; retries, halves and conversions go first (priority 0)."""
        if new_rows:
            self._pending_rows += new_rows
        self._idle.clear()
        if self.started is None:
            self.started = time.monotonic()
        self._queue.put_nowait((priority, next(self._seq), job))

    def enqueue_later(self, job: Job, delay: float) -> None:
        # its rows stay counted in _pending_rows while it sleeps, so the run cannot end early
        async def later() -> None:
            await asyncio.sleep(delay)
            self._queue.put_nowait((0, next(self._seq), job))

        self._spawn(later())

    async def finish_rows(self, count: int) -> None:
        """`count` rows reached a final state: make room for the reader."""
        async with self._room:
            self._pending_rows = max(0, self._pending_rows - count)
            self._room.notify_all()
        if self._pending_rows == 0:
            self._idle.set()

    # ------------------------------------------------------------- execution

    async def _worker(self, client: PrincipalClient) -> None:
        expected_units = self.ctx.options.bulk_batch_size
        while True:
            await client.wait_ready(expected_units)
            _, _, job = await self._queue.get()
            try:
                await self._run_job(client, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not lose rows: report them as failed
                log.exception("publish job %s crashed", job.batch_id)
                message = f"{type(exc).__name__}: {exc}"
                self.outcomes.fail_ops(job, job.ops, "EngineError", message, None)
                await self.finish_rows(len(job.ops))

    async def _run_job(self, client: PrincipalClient, job: Job) -> None:
        self._count_attempt(job)
        try:
            sent = await self._send(client, job)
        except RequestFailed as failure:
            if failure.kind is FailureKind.THROTTLED:
                await self.recovery.throttled(job, failure)
            else:
                await self.recovery.transient(client, job, failure)
            return
        job.throttled.update(sent.throttled)
        response = sent.response
        status = response.status_code
        if job.uses_bulk or status != 200:
            code, message = (None, "") if status < 300 else error_of(response)
            kind = classify_status(status, code)
            if kind is None:
                await self.published(client, job, job.ops)
                return
            failure = RequestFailed(kind, status, code, message)
            await self.recovery.whole_job_failed(client, job, failure)
            return
        parts = decode_batch(response.headers["content-type"], response.content)
        await self.recovery.batch_results(client, job, parts)

    def _count_attempt(self, job: Job) -> None:
        job.tries += 1
        job.requests += 1
        if not job.started:
            job.started = time.monotonic()
        now = time.time()
        for op in job.ops:
            op.attempts += 1
            if op.first_attempt_at is None:
                op.first_attempt_at = now
        self.ctx.metrics.requests += 1

    async def _send(self, client: PrincipalClient, job: Job) -> Sent:
        if job.uses_bulk:
            return await client.send(
                "POST",
                f"{job.table.entity_set}/Microsoft.Dynamics.CRM.{BULK_MESSAGE[job.kind]}",
                json_body={"Targets": bulk_items(job.table, job.kind, job.ops)},
                units=len(job.ops),
            )
        parts = [batch_part(job.table, job.kind, op) for op in job.ops]
        content_type, body = encode_batch(parts, client.api_path)
        return await client.send(
            "POST",
            "$batch",
            content=body,
            headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
            units=len(job.ops),
        )

    async def published(
        self, client: PrincipalClient, job: Job, ops: list[Operation], *, log: bool = True
    ) -> None:
        self.outcomes.published(ops)
        if log:
            self.outcomes.log_batch(client, job, published=len(ops), failed=0, deferred=0)
        if ops:
            await self.finish_rows(len(ops))
