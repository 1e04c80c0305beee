"""Stage 3, when a request does not simply succeed: pause on 429, retry with backoff, split a
too-large batch, bisect an all-or-nothing bulk failure down to the bad record, fall back to
micro-batches (append), turn a create that met an existing record into an upsert, and defer
what still fails transiently after `max_attempts` sends."""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING

from customer360.dynamics.batch_codec import PartResponse
from customer360.dynamics.context import RunContext
from customer360.dynamics.errors import FailureKind, RequestFailed, classify_status
from customer360.dynamics.jobs import Job
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.outcomes import DeferredOp, utc_now
from customer360.dynamics.postprocess import Outcomes
from customer360.dynamics.spec import Mode
from customer360.dynamics.throttle import backoff_delay
from customer360.dynamics.transport import PrincipalClient

if TYPE_CHECKING:
    from customer360.dynamics.process import Processor

DUPLICATE_ID = "0x80040237"  # DuplicateRecord: the PK exists
DUPLICATE_KEY = "0x80060892"  # DuplicateRecordEntityKey: the alternate key exists
DEFERRED_EXPIRED = "DeferredExpired"
RETRYABLE = (FailureKind.TRANSIENT, FailureKind.AUTH, FailureKind.THROTTLED)


class Recovery:
    def __init__(self, ctx: RunContext, outcomes: Outcomes, processor: Processor) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.outcomes = outcomes
        self.processor = processor
        self._rng = random.Random()

    # ------------------------------------------------------------- 429

    async def throttled(self, job: Job, failure: RequestFailed) -> None:
        """A 429: the principal is paused; put the job back for whichever principal is free."""
        job.throttled[failure.message] += 1
        job.tries -= 1
        for op in job.ops:
            op.attempts -= 1  # never reached the server's logic: not an attempt
        if sum(job.throttled.values()) > self.options.transport.max_throttle_waits:
            job.tries += 1
            for op in job.ops:
                op.attempts += 1
            self.defer(job, RequestFailed(FailureKind.TRANSIENT, 429, failure.code, "throttled"))
            await self.processor.finish_rows(len(job.ops))
            return
        self.processor.enqueue(job)

    # ------------------------------------------------------------- transient: retry, then defer

    async def transient(
        self, client: PrincipalClient, job: Job, failure: RequestFailed, *, log: bool = True
    ) -> int:
        """Retry with backoff while tries remain, else defer. Returns rows deferred."""
        if job.kind is OpKind.CREATE:
            # the server may have committed before the failure: resend as upsert by id
            for op in job.ops:
                if op.kind is OpKind.CREATE:
                    op.upsert_by_id = True
            job.kind = OpKind.UPSERT
        if failure.kind is FailureKind.TOO_LARGE and len(job.ops) > 1:
            self._split(job, tries=job.tries)
            if log:
                self.outcomes.log_batch(client, job, published=0, failed=0, deferred=0)
            return 0
        for op in job.ops:
            op.last_error = str(failure)
        if job.tries < self.options.max_attempts:
            self.ctx.metrics.retries += 1
            job.retries += 1
            delay = backoff_delay(
                job.tries,
                self.options.backoff_base_seconds,
                self.options.backoff_cap_seconds,
                self._rng,
            )
            if failure.retry_after:
                delay = max(delay, failure.retry_after)
            self.processor.enqueue_later(job, delay)
            if log:
                self.outcomes.log_batch(client, job, published=0, failed=0, deferred=0)
            return 0
        self.defer(job, failure)
        if log:
            self.outcomes.log_batch(client, job, published=0, failed=0, deferred=len(job.ops))
        await self.processor.finish_rows(len(job.ops))
        return len(job.ops)

    def defer(self, job: Job, failure: RequestFailed) -> None:
        """Report the job's operations deferred (or failed, past their deadline/attempts)."""
        now = utc_now()
        deferred: list[DeferredOp] = []
        expired: list[Operation] = []
        for op in job.ops:
            first = (
                dt.datetime.fromtimestamp(op.first_attempt_at, dt.UTC)
                if op.first_attempt_at
                else now
            )
            deadline = first + dt.timedelta(seconds=self.options.defer_deadline_seconds)
            if op.attempts >= self.options.max_total_attempts or now >= deadline:
                expired.append(op)
                continue
            rounds = max(0, op.attempts // max(self.options.max_attempts, 1) - 1)
            delay = self.options.defer_delay_seconds * (2 ** min(rounds, 10))
            deferred.append(
                DeferredOp(
                    run_id=self.ctx.run_id,
                    target=job.table.table,
                    entity_set=job.table.entity_set,
                    mode=job.table.mode,
                    key=op.key_text,
                    operation_json=op.to_json(),
                    attempts=op.attempts,
                    next_attempt_at=now + dt.timedelta(seconds=delay),
                    deadline=deadline,
                    last_error=str(failure),
                    deferred_at=now,
                )
            )
        if expired:
            message = f"gave up after {expired[0].attempts} attempts: {failure}"
            self.outcomes.fail_ops(job, expired, DEFERRED_EXPIRED, message, failure.status)
        self.outcomes.deferred(deferred)

    # ------------------------------------------------------------- the whole request failed

    async def whole_job_failed(
        self, client: PrincipalClient, job: Job, failure: RequestFailed
    ) -> None:
        if failure.kind in RETRYABLE:
            await self.transient(client, job, failure)
            return
        permanent = failure.kind is FailureKind.PERMANENT
        if job.uses_bulk and len(job.ops) > 1 and permanent and job.table.mode == Mode.APPEND:
            # append: fall back to micro-batches ($batch, continue-on-error) for this chunk
            self.outcomes.log_batch(client, job, published=0, failed=0, deferred=0)
            size = self.options.batch_batch_size
            for n, start in enumerate(range(0, len(job.ops), size)):
                child = job.child(job.ops[start : start + size], f"m{n}", tries=job.tries - 1)
                child.force_batch = True
                self.processor.enqueue(child)
            return
        if len(job.ops) > 1 and failure.kind in (FailureKind.PERMANENT, FailureKind.TOO_LARGE):
            # all-or-nothing bulk: bisect to isolate the bad record(s) in O(log n) requests
            if permanent:
                self.ctx.metrics.bisections += 1
            self.outcomes.log_batch(client, job, published=0, failed=0, deferred=0)
            self._split(job, tries=job.tries - 1)
            return
        (op,) = job.ops
        if self._convert_conflict(job, op, failure):
            child = job.child([op], "r")
            child.kind = op.effective_kind
            self.outcomes.log_batch(client, job, published=0, failed=0, deferred=0)
            self.processor.enqueue(child)
            return
        code = failure.code or failure.kind.value
        self.outcomes.fail_ops(job, [op], code, failure.message, failure.status)
        self.outcomes.log_batch(client, job, published=0, failed=1, deferred=0)
        await self.processor.finish_rows(1)

    def _split(self, job: Job, *, tries: int) -> None:
        half = len(job.ops) // 2
        for suffix, part in (("a", job.ops[:half]), ("b", job.ops[half:])):
            self.processor.enqueue(job.child(part, suffix, tries=tries))

    def _convert_conflict(self, job: Job, op: Operation, failure: RequestFailed) -> bool:
        """In upsert mode a create that meets an existing record becomes an upsert (once)."""
        if job.table.mode != Mode.UPSERT.value or op.kind is not OpKind.CREATE:
            return False
        code = (failure.code or "").lower()
        if code == DUPLICATE_ID and not op.upsert_by_id:
            op.upsert_by_id = True
            return True
        if code == DUPLICATE_KEY and op.key and op.last_error != DUPLICATE_KEY:
            # someone created the business key since we read the target: update it by key
            op.last_error = DUPLICATE_KEY
            op.kind = OpKind.UPSERT
            op.payload = {
                k: v for k, v in op.payload.items() if k not in op.key and k != job.table.primary_id
            }
            op.record_id = None
            return True
        return False

    # ------------------------------------------------------------- $batch: one result per part

    async def batch_results(
        self, client: PrincipalClient, job: Job, parts: list[PartResponse]
    ) -> None:
        if len(parts) != len(job.ops):
            message = f"$batch answered {len(parts)} of {len(job.ops)}"
            failure = RequestFailed(FailureKind.TRANSIENT, 200, None, message)
            await self.transient(client, job, failure)
            return
        published: list[Operation] = []
        retry: list[Operation] = []
        converted: list[Operation] = []
        failed = 0
        for op, part in zip(job.ops, parts, strict=True):
            if part.ok or (job.kind is OpKind.DELETE and part.status == 404):
                published.append(op)
                continue
            kind = classify_status(part.status, part.error_code)
            if kind in RETRYABLE:
                if kind is FailureKind.THROTTLED:
                    job.throttled["batch_part"] += 1
                retry.append(op)
                continue
            failure = RequestFailed(kind, part.status, part.error_code, part.error_message or "")
            if self._convert_conflict(job, op, failure):
                converted.append(op)
                continue
            code = part.error_code or kind.value
            self.outcomes.fail_ops(job, [op], code, part.error_message or "", part.status)
            failed += 1
        await self.processor.published(client, job, published, log=False)
        if failed:
            await self.processor.finish_rows(failed)
        by_kind: dict[OpKind, list[Operation]] = {}
        for op in converted:
            by_kind.setdefault(op.effective_kind, []).append(op)
        for kind, ops in by_kind.items():
            child = job.child(ops, "c")
            child.kind = kind
            self.processor.enqueue(child)
        deferred = 0
        if retry:
            failure = RequestFailed(FailureKind.TRANSIENT, None, None, "part failed transiently")
            deferred = await self.transient(client, job.child(retry, "r"), failure, log=False)
        self.outcomes.log_batch(
            client, job, published=len(published), failed=failed, deferred=deferred
        )
