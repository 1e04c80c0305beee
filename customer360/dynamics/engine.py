"""The publish engine: the four stages of a publish, and the replay of deferred operations.

    load (stage 1)        source chunks → keys → target rows fetched by key (`In` pushdown)
    pre-process (stage 2) sanitise/validate → dedupe keys → resolve owner/lookups → classify
    process (stage 3)     batches on a shared queue, workers per principal, bulk or $batch
    post-process (4)      outcomes to the sink, batch log, metrics, clean-up

Stages 1-2 run chunk by chunk ahead of stage 3 with backpressure (at most `max_pending_rows`
rows waiting or in flight), so memory stays bounded whatever the source size. Every source row is
reported exactly once: published, unchanged, failed or deferred.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import random
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from customer360.dynamics.auth import DataverseConnection
from customer360.dynamics.batch_codec import decode_batch, encode_batch
from customer360.dynamics.bodies import Target, batch_part, bulk_target
from customer360.dynamics.classify import Verdict, classify, lookup_ref
from customer360.dynamics.errors import (
    FailureKind,
    RequestFailed,
    classify_status,
)
from customer360.dynamics.metrics import Progress, PublishMetrics
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.outcomes import (
    BatchLogEntry,
    DeferredOp,
    FailedRow,
    NullSink,
    OutcomeSink,
    utc_now,
)
from customer360.dynamics.plan import OWNER_TABLES, TablePlan, compile_plan
from customer360.dynamics.prepare import PreparedRow, extract_key, prepare_row
from customer360.dynamics.reads import (
    fetch_metadata,
    query_by_keys,
    query_by_values,
    record_key_text,
    resolve_references,
)
from customer360.dynamics.source import KeyRegistry, SourceRows, iter_chunks
from customer360.dynamics.spec import KeyStrategy, LookupBy, Mode, PublishSpec
from customer360.dynamics.throttle import backoff_delay
from customer360.dynamics.transport import PrincipalClient, TransportOptions, error_of
from customer360.dynamics.values import DUPLICATE_SOURCE_KEY, RowProblem

log = logging.getLogger(__name__)

DUPLICATE_ID = "0x80040237"  # DuplicateRecord: the PK exists
DUPLICATE_KEY = "0x80060892"  # DuplicateRecordEntityKey: the alternate key exists
DEFERRED_EXPIRED = "DeferredExpired"
TARGET_READ_FAILED = "TargetReadFailed"

ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class PublishOptions:
    """Engine knobs; defaults suit a production org (see docs/publish.md for tuning)."""

    bulk_batch_size: int = 1000  # rows per Create/Update/UpsertMultiple request
    batch_batch_size: int = 200  # requests per $batch (tables without bulk messages, deletes)
    chunk_rows: int = 5000  # source rows read, validated and classified at a time
    max_pending_rows: int = 25_000  # backpressure: rows classified but not finished
    max_attempts: int = 5  # sends of one operation in one run before it is deferred
    backoff_base_seconds: float = 0.25
    backoff_cap_seconds: float = 8.0
    defer_delay_seconds: float = 300.0  # first replay delay; doubles per further deferral
    defer_deadline_seconds: float = 86_400.0  # after this an operation fails for good
    max_total_attempts: int = 25  # across runs and replays
    enforce_application_required: bool = True
    progress_interval_seconds: float = 1.0
    transport: TransportOptions = field(default_factory=TransportOptions)
    max_url_length: int = 32_768


# --------------------------------------------------------------------------- public entry points


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
    """Publish `source` rows to the target of `spec`; returns the run's metrics.

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
    run.metrics.target, run.metrics.mode = spec.table, spec.mode.value
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
    run.metrics.mode = "replay"
    return await run.execute(lambda: run.replay(list(ops), now or utc_now(), only_due))


# --------------------------------------------------------------------------- internals


@dataclass
class _Job:
    target: Target
    kind: OpKind
    ops: list[Operation]
    batch_id: str
    tries: int = 0  # sends in this run (bisected halves inherit it)
    force_batch: bool = False  # append's micro-batch fallback: $batch even if bulk exists
    retries: int = 0
    throttled: Counter = field(default_factory=Counter)
    requests: int = 0
    started: float = 0.0


_BULK_MESSAGE = {
    OpKind.CREATE: "CreateMultiple",
    OpKind.UPDATE: "UpdateMultiple",
    OpKind.UPSERT: "UpsertMultiple",
}


class _Run:
    def __init__(
        self,
        connection: DataverseConnection,
        options: PublishOptions,
        sink: OutcomeSink,
        progress: ProgressCallback | None,
        run_id: str | None,
    ) -> None:
        self.connection = connection
        self.options = options
        self.sink = sink
        self.progress = progress
        self.run_id = run_id or uuid.uuid4().hex
        self.metrics = PublishMetrics(run_id=self.run_id, target="", mode="")
        self.clients: list[PrincipalClient] = []
        self._round_robin = itertools.cycle([0])
        self._queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._batch_seq = itertools.count(1)
        self._pending_rows = 0
        self._room = asyncio.Condition()
        self._idle = asyncio.Event()
        self._idle.set()
        self._rng = random.Random()
        self._start = time.monotonic()
        self._process_started: float | None = None
        self._sleepers: set[asyncio.Task] = set()
        self._api_url_length = len(connection.api_url)
        self._expected_units = options.bulk_batch_size

    # ----------------------------------------------------------------- lifecycle

    async def execute(self, body: Callable[[], Any]) -> PublishMetrics:
        self._start = time.monotonic()
        self.metrics.started_at = time.time()
        workers: list[asyncio.Task] = []
        ticker: asyncio.Task | None = None
        try:
            self.clients = [
                PrincipalClient(p, self.connection, self.options.transport)
                for p in self.connection.principals
            ]
            self.metrics.principals = len(self.clients)
            await asyncio.gather(*(c.start() for c in self.clients))
            self._round_robin = itertools.cycle(range(len(self.clients)))
            for client in self.clients:
                for _ in range(client.gate.controller.ceiling):
                    workers.append(asyncio.create_task(self._worker(client)))
            ticker = asyncio.create_task(self._tick())
            try:
                await body()
            except Exception:
                # e.g. the source raised: let what was already submitted finish and be
                # reported before the error propagates (a re-run is idempotent)
                await self._drain()
                raise
            await self._drain()
        finally:
            for task in [*workers, *self._sleepers]:
                task.cancel()
            if ticker:
                ticker.cancel()
            await asyncio.gather(*workers, *self._sleepers, return_exceptions=True)
            if ticker:
                await asyncio.gather(ticker, return_exceptions=True)
            t_post = time.monotonic()
            for client in self.clients:
                self.metrics.auth_refreshes += client.auth_refreshes
                self.metrics.throttled.update(client.throttled)
                await client.aclose()
            self.metrics.duration_seconds = time.monotonic() - self._start
            if self._process_started is not None:
                self.metrics.stage_seconds["process"] = time.monotonic() - self._process_started
            self.metrics.stage_seconds["post_process"] = time.monotonic() - t_post
            self._sample()
            self._report_progress(finished=True)
        return self.metrics

    def _pick(self) -> PrincipalClient:
        return self.clients[next(self._round_robin)]

    async def _drain(self) -> None:
        await self._idle.wait()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.options.progress_interval_seconds)
            self._sample()
            self._report_progress(finished=False)

    def _sample(self) -> None:
        self.metrics.throughput.append(
            (round(time.monotonic() - self._start, 3), self.metrics.done)
        )

    def _report_progress(self, *, finished: bool) -> None:
        if self.progress is None:
            return
        m = self.metrics
        elapsed = time.monotonic() - self._start
        self.progress(
            Progress(
                rows_read=m.rows_read,
                published=m.published,
                unchanged=m.unchanged,
                failed=m.failed,
                deferred=m.deferred,
                elapsed_seconds=elapsed,
                records_per_second=m.done / elapsed if elapsed > 0 else 0.0,
                throttled=sum(c for client in self.clients for c in client.throttled.values()),
                finished=finished,
            )
        )

    # ----------------------------------------------------------------- stage 1 + 2

    async def publish(self, source: SourceRows, spec: PublishSpec) -> None:
        plan = await self._compile(spec)
        target = Target(
            table=plan.meta.logical_name,
            entity_set=plan.entity_set,
            primary_id=plan.primary_id,
            mode=spec.mode.value,
            use_bulk=plan.use_bulk,
            plan=plan,
        )
        registry = KeyRegistry()
        lookup_cache: OrderedDict = OrderedDict()
        row_number = 0
        chunks = iter_chunks(source, self.options.chunk_rows, spec.source_columns)
        while True:
            t0 = time.monotonic()
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                self._stage("load", t0)
                break
            self.metrics.rows_read += len(chunk)
            numbers = range(row_number, row_number + len(chunk))
            row_number += len(chunk)
            t1 = time.monotonic()
            self._stage("load", t0, t1)
            prepared = self._prepare(plan, chunk, numbers, registry)
            self._stage("pre_process", t1)
            t2 = time.monotonic()
            try:
                targets = await self._fetch_targets(plan, prepared) if plan.reads_target else {}
                self._stage("load", t2)
                t3 = time.monotonic()
                resolved = await self._resolve(plan, prepared, lookup_cache)
            except RequestFailed as failure:
                # Dataverse kept failing the reads this chunk needs: its rows cannot be
                # classified, so they fail (re-publishing retries them; nothing is half-sent)
                self._read_failed(plan, prepared, failure)
                continue
            ops = self._classify(plan, prepared, targets, resolved)
            self._stage("pre_process", t3)
            await self._submit(target, ops)

    def _read_failed(
        self, plan: TablePlan, rows: list[PreparedRow], failure: RequestFailed
    ) -> None:
        problem = RowProblem(TARGET_READ_FAILED, f"reading the target failed: {failure}")
        failed = [
            self._failed_row(plan, r.row_number, r.row, None, problem, r.key_text) for r in rows
        ]
        failed = [replace(f, http_status=failure.status) for f in failed]
        self._emit_failed(failed)

    def _stage(self, name: str, since: float, until: float | None = None) -> None:
        until = time.monotonic() if until is None else until
        self.metrics.stage_seconds[name] = self.metrics.stage_seconds.get(name, 0.0) + until - since

    async def _compile(self, spec: PublishSpec) -> TablePlan:
        kw = self._read_kw()
        meta = await fetch_metadata(self._pick, spec.table, **kw)
        related_tables = {c.lookup.table for c in spec.columns if c.lookup}
        if spec.owner:
            related_tables.add(OWNER_TABLES[spec.owner.owner_type])
        related = {}
        for table in sorted(related_tables):
            related[table] = await fetch_metadata(self._pick, table, **kw)
        return compile_plan(spec, meta, related)

    def _read_kw(self) -> dict[str, Any]:
        def count_request() -> None:
            self.metrics.read_requests += 1

        def count_retry() -> None:
            self.metrics.retries += 1

        return {
            # Reads are idempotent and cannot be deferred (a failed read fails its chunk), so
            # they get at least five tries even when writes are set to defer sooner.
            "max_attempts": max(self.options.max_attempts, 5),
            "on_request": count_request,
            "on_retry": count_retry,
        }

    def _prepare(
        self,
        plan: TablePlan,
        chunk: list[dict[str, Any]],
        numbers: range,
        registry: KeyRegistry,
    ) -> list[PreparedRow]:
        keyed: list[tuple[int, dict[str, Any], str]] = []
        failed: list[FailedRow] = []
        for number, row in zip(numbers, chunk, strict=True):
            try:
                keyed.append((number, row, extract_key(plan, row)[1]))
            except RowProblem as problem:
                failed.append(self._failed_row(plan, number, row, None, problem, None))
        fresh = registry.claim([key_text for _, _, key_text in keyed])
        kept: list[PreparedRow] = []
        for (number, row, key_text), is_new in zip(keyed, fresh, strict=True):
            if not is_new:
                problem = RowProblem(
                    DUPLICATE_SOURCE_KEY,
                    f"key {key_text} appears more than once in the source; only its first "
                    "row is published in this run",
                )
                failed.append(self._failed_row(plan, number, row, None, problem, key_text))
                continue
            try:
                kept.append(prepare_row(plan, number, row))
            except RowProblem as problem:
                failed.append(self._failed_row(plan, number, row, None, problem, key_text))
        self._emit_failed(failed)
        return kept

    def _failed_row(
        self,
        plan: TablePlan,
        number: int,
        row: Mapping[str, Any],
        payload: Mapping[str, Any] | None,
        problem: RowProblem,
        key_text: str | None,
    ) -> FailedRow:
        if key_text is None:
            key_text = _best_effort_key(plan, row)
        return FailedRow(
            run_id=self.run_id,
            batch_id=None,
            mode=plan.spec.mode.value,
            target=plan.meta.logical_name,
            key=key_text,
            row_number=number,
            record=dict(row),
            payload=payload,
            error_code=problem.code,
            message=problem.message,
            http_status=None,
            attempts=0,
            failed_at=utc_now(),
        )

    async def _fetch_targets(
        self, plan: TablePlan, rows: list[PreparedRow]
    ) -> dict[str, dict[str, Any]]:
        if not rows:
            return {}
        select = plan.select()
        kw = {**self._read_kw(), "api_url_length": self._api_url_length}
        kw["max_url_length"] = self.options.max_url_length
        if plan.spec.key.strategy is KeyStrategy.PRIMARY_ID:
            values = [str(r.record_id) for r in rows]
            records = await query_by_values(
                self._pick, plan.entity_set, plan.primary_id, values, select, **kw
            )
            primary = plan.primary_id
        elif len(plan.key_attrs) == 1:
            (name,) = plan.key_attrs
            values = [r.key[name] for r in rows]
            records = await query_by_values(self._pick, plan.entity_set, name, values, select, **kw)
            primary = None
        else:
            records = await query_by_keys(
                self._pick, plan.entity_set, [r.key for r in rows], select, **kw
            )
            primary = None
        found: dict[str, dict[str, Any]] = {}
        for record in records:
            text = record_key_text(record, plan.key_attrs, primary)
            if text is not None:
                found[text] = record
        return found

    async def _resolve(
        self, plan: TablePlan, rows: list[PreparedRow], cache: OrderedDict
    ) -> dict[tuple[str, LookupBy, Any], uuid.UUID | None]:
        wanted: dict[tuple[str, LookupBy, str | None], tuple[Any, set]] = {}
        for row in rows:
            for lookup, ref in row.lookups.values():
                if ref is None:
                    continue
                ident = lookup_ref(lookup, ref)
                if ident in cache:
                    continue
                group = (lookup.table, lookup.by, lookup.key_attribute)
                wanted.setdefault(group, (lookup, set()))[1].add(ref)
        kw = {**self._read_kw(), "api_url_length": self._api_url_length}
        for (_table, by, key_attribute), (lookup, refs) in wanted.items():
            column = lookup.primary_id if by is LookupBy.ID else key_attribute
            found = await resolve_references(
                self._pick,
                lookup.entity_set,
                lookup.primary_id,
                column,
                lookup.key_attr,
                sorted(refs, key=str),
                **kw,
            )
            for ref, guid in found.items():
                cache[lookup_ref(lookup, ref)] = guid
        while len(cache) > 200_000:  # lookups of a huge table: keep the cache bounded
            cache.popitem(last=False)
        resolved = {}
        for row in rows:
            for lookup, ref in row.lookups.values():
                if ref is not None:
                    ident = lookup_ref(lookup, ref)
                    resolved[ident] = cache.get(ident)
        return resolved

    def _classify(
        self,
        plan: TablePlan,
        rows: list[PreparedRow],
        targets: Mapping[str, Mapping[str, Any]],
        resolved: Mapping,
    ) -> list[Operation]:
        ops: list[Operation] = []
        unchanged: list[str] = []
        failed: list[FailedRow] = []
        for row in rows:
            result = classify(
                plan,
                row,
                targets.get(row.key_text),
                resolved,
                enforce_application_required=self.options.enforce_application_required,
            )
            if result.verdict is Verdict.WRITE:
                ops.append(result.op)
            elif result.verdict is Verdict.UNCHANGED:
                unchanged.append(row.key_text)
            else:
                failed.append(
                    self._failed_row(
                        plan, row.row_number, row.row, None, result.problem, row.key_text
                    )
                )
        if unchanged:
            self.metrics.unchanged += len(unchanged)
            self.sink.unchanged(unchanged)
        self._emit_failed(failed)
        return ops

    # ----------------------------------------------------------------- stage 3: scheduling

    async def _submit(self, target: Target, ops: list[Operation]) -> None:
        by_kind: dict[OpKind, list[Operation]] = {}
        for op in ops:
            by_kind.setdefault(op.effective_kind, []).append(op)
        for kind, group in by_kind.items():
            size = self._batch_size(target, kind)
            for start in range(0, len(group), size):
                part = group[start : start + size]
                async with self._room:
                    while self._pending_rows and (
                        self._pending_rows + len(part) > self.options.max_pending_rows
                    ):
                        await self._room.wait()
                self._enqueue(
                    _Job(target, kind, part, f"{self.run_id[:8]}-{next(self._batch_seq):06d}"),
                    priority=1,
                    new_rows=len(part),
                )

    def _batch_size(self, target: Target, kind: OpKind) -> int:
        spec_size = target.plan.spec.batch_size if target.plan else None
        if self._uses_bulk(target, kind):
            return spec_size or self.options.bulk_batch_size
        return min(spec_size or self.options.batch_batch_size, 1000)

    @staticmethod
    def _uses_bulk(target: Target, kind: OpKind) -> bool:
        message = _BULK_MESSAGE.get(kind)
        return bool(message and target.use_bulk.get(message))

    def _enqueue(self, job: _Job, *, priority: int, new_rows: int = 0) -> None:
        if new_rows:
            self._pending_rows += new_rows
        self._idle.clear()
        if self._process_started is None:
            self._process_started = time.monotonic()
        self._queue.put_nowait((priority, next(self._seq), job))

    def _enqueue_later(self, job: _Job, delay: float) -> None:
        # its rows stay counted in _pending_rows while it sleeps, so the run cannot end early

        async def later() -> None:
            await asyncio.sleep(delay)
            self._queue.put_nowait((0, next(self._seq), job))

        task = asyncio.create_task(later())
        self._sleepers.add(task)
        task.add_done_callback(self._sleepers.discard)

    async def _finish_rows(self, count: int) -> None:
        async with self._room:
            self._pending_rows = max(0, self._pending_rows - count)
            self._room.notify_all()
        if self._pending_rows == 0:
            self._idle.set()

    async def _worker(self, client: PrincipalClient) -> None:
        while True:
            await client.wait_ready(self._expected_units)
            _, _, job = await self._queue.get()
            try:
                await self._run_job(client, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not lose rows: report them as failed
                log.exception("publish job %s crashed", job.batch_id)
                self._fail_ops(job, job.ops, "EngineError", f"{type(exc).__name__}: {exc}", None)
                await self._finish_rows(len(job.ops))

    # ----------------------------------------------------------------- stage 3: execution

    async def _run_job(self, client: PrincipalClient, job: _Job) -> None:
        job.tries += 1
        job.requests += 1
        if not job.started:
            job.started = time.monotonic()
        for op in job.ops:
            op.attempts += 1
            if op.first_attempt_at is None:
                op.first_attempt_at = time.time()
        self.metrics.requests += 1
        bulk = self._uses_bulk(job.target, job.kind) and not job.force_batch
        try:
            if bulk:
                sent = await client.send(
                    "POST",
                    f"{job.target.entity_set}/Microsoft.Dynamics.CRM.{_BULK_MESSAGE[job.kind]}",
                    json_body={
                        "Targets": [bulk_target(job.target, job.kind, op) for op in job.ops]
                    },
                    units=len(job.ops),
                )
            else:
                parts = [batch_part(job.target, job.kind, op) for op in job.ops]
                content_type, body = encode_batch(parts, client.api_path)
                sent = await client.send(
                    "POST",
                    "$batch",
                    content=body,
                    headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
                    units=len(job.ops),
                )
        except RequestFailed as failure:
            if failure.kind is FailureKind.THROTTLED:
                await self._throttled(job, failure)
                return
            await self._transient(client, job, failure)
            return
        job.throttled.update(sent.throttled)
        response = sent.response
        status = response.status_code
        if bulk or status != 200:
            code, message = (None, "") if status < 300 else error_of(response)
            kind = classify_status(status, code)
            if kind is None:
                await self._published(client, job, job.ops)
                return
            failure = RequestFailed(kind, status, code, message)
            await self._whole_job_failed(client, job, failure)
            return
        await self._batch_results(
            client, job, decode_batch(response.headers["content-type"], response.content)
        )

    async def _throttled(self, job: _Job, failure: RequestFailed) -> None:
        """A 429: the principal is paused; put the job back for whichever principal is free."""
        job.throttled[failure.message] += 1
        job.tries -= 1
        for op in job.ops:
            op.attempts -= 1  # never reached the server's logic: not an attempt
        if sum(job.throttled.values()) > self.options.transport.max_throttle_waits:
            job.tries += 1
            await self._transient_from_throttle(job, failure)
            return
        self._enqueue(job, priority=0)

    async def _transient_from_throttle(self, job: _Job, failure: RequestFailed) -> None:
        for op in job.ops:
            op.attempts += 1
        self._defer(job, RequestFailed(FailureKind.TRANSIENT, 429, failure.code, "throttled"))
        await self._finish_rows(len(job.ops))

    async def _whole_job_failed(
        self, client: PrincipalClient, job: _Job, failure: RequestFailed
    ) -> None:
        if failure.kind in (FailureKind.TRANSIENT, FailureKind.AUTH, FailureKind.THROTTLED):
            await self._transient(client, job, failure)
            return
        bulk = self._uses_bulk(job.target, job.kind) and not job.force_batch
        if (
            bulk
            and len(job.ops) > 1
            and failure.kind is FailureKind.PERMANENT
            and job.target.mode == Mode.APPEND.value
        ):
            # append: fall back to micro-batches ($batch, continue-on-error) for this chunk
            self._log_batch(client, job, published=0, failed=0, deferred=0)
            size = self.options.batch_batch_size
            for n, start in enumerate(range(0, len(job.ops), size)):
                part = job.ops[start : start + size]
                child = _Job(job.target, job.kind, part, f"{job.batch_id}m{n}", tries=job.tries - 1)
                child.force_batch = True
                self._enqueue(child, priority=0)
            return
        if len(job.ops) > 1 and failure.kind in (FailureKind.PERMANENT, FailureKind.TOO_LARGE):
            # all-or-nothing bulk: bisect to isolate the bad record(s) in O(log n) requests
            if failure.kind is FailureKind.PERMANENT:
                self.metrics.bisections += 1
            self._log_batch(client, job, published=0, failed=0, deferred=0)
            half = len(job.ops) // 2
            for suffix, part in (("a", job.ops[:half]), ("b", job.ops[half:])):
                child = _Job(
                    job.target, job.kind, part, f"{job.batch_id}{suffix}", tries=job.tries - 1
                )
                self._enqueue(child, priority=0)
            return
        (op,) = job.ops
        if self._convert_conflict(job, op, failure):
            child = _Job(job.target, op.effective_kind, [op], f"{job.batch_id}r", tries=job.tries)
            self._log_batch(client, job, published=0, failed=0, deferred=0)
            self._enqueue(child, priority=0)
            return
        self._fail_ops(
            job, [op], failure.code or failure.kind.value, failure.message, failure.status
        )
        self._log_batch(client, job, published=0, failed=1, deferred=0)
        await self._finish_rows(1)

    def _convert_conflict(self, job: _Job, op: Operation, failure: RequestFailed) -> bool:
        """In upsert mode a create that meets an existing record becomes an upsert (once)."""
        if job.target.mode != Mode.UPSERT.value or op.kind is not OpKind.CREATE:
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
                k: v
                for k, v in op.payload.items()
                if k not in op.key and k != job.target.primary_id
            }
            op.record_id = None
            return True
        return False

    async def _batch_results(self, client: PrincipalClient, job: _Job, parts: list) -> None:
        if len(parts) != len(job.ops):
            failure = RequestFailed(
                FailureKind.TRANSIENT, 200, None, f"$batch answered {len(parts)} of {len(job.ops)}"
            )
            await self._transient(client, job, failure)
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
            if kind in (FailureKind.TRANSIENT, FailureKind.THROTTLED, FailureKind.AUTH):
                if kind is FailureKind.THROTTLED:
                    job.throttled["batch_part"] += 1
                retry.append(op)
                continue
            failure = RequestFailed(kind, part.status, part.error_code, part.error_message or "")
            if self._convert_conflict(job, op, failure):
                converted.append(op)
                continue
            self._fail_ops(
                job, [op], part.error_code or kind.value, part.error_message or "", part.status
            )
            failed += 1
        await self._published(client, job, published, log=False)
        if failed:
            await self._finish_rows(failed)
        by_kind: dict[OpKind, list[Operation]] = {}
        for op in converted:
            by_kind.setdefault(op.effective_kind, []).append(op)
        for kind, ops in by_kind.items():
            self._enqueue(
                _Job(job.target, kind, ops, f"{job.batch_id}c", tries=job.tries), priority=0
            )
        deferred = 0
        if retry:
            child = _Job(job.target, job.kind, retry, f"{job.batch_id}r", tries=job.tries)
            deferred = await self._transient(
                client,
                child,
                RequestFailed(FailureKind.TRANSIENT, None, None, "part failed transiently"),
                log=False,
            )
        self._log_batch(client, job, published=len(published), failed=failed, deferred=deferred)

    async def _published(
        self, client: PrincipalClient, job: _Job, ops: Sequence[Operation], *, log: bool = True
    ) -> None:
        if ops:
            keys = [op.key_text for op in ops]
            self.metrics.published += len(ops)
            for op in ops:
                self.metrics.by_operation[op.effective_kind.value] += 1
            self.sink.published(keys)
        if log:
            self._log_batch(client, job, published=len(ops), failed=0, deferred=0)
        if ops:
            await self._finish_rows(len(ops))

    async def _transient(
        self, client: PrincipalClient, job: _Job, failure: RequestFailed, *, log: bool = True
    ) -> int:
        """Retry with backoff while tries remain, else defer. Returns rows deferred."""
        if job.kind is OpKind.CREATE:
            # the server may have committed before the failure: resend as upsert by id
            for op in job.ops:
                if op.kind is OpKind.CREATE:
                    op.upsert_by_id = True
            job.kind = OpKind.UPSERT
        if failure.kind is FailureKind.TOO_LARGE and len(job.ops) > 1:
            half = len(job.ops) // 2
            for suffix, part in (("a", job.ops[:half]), ("b", job.ops[half:])):
                self._enqueue(
                    _Job(job.target, job.kind, part, f"{job.batch_id}{suffix}", tries=job.tries),
                    priority=0,
                )
            if log:
                self._log_batch(client, job, published=0, failed=0, deferred=0)
            return 0
        for op in job.ops:
            op.last_error = str(failure)
        if job.tries < self.options.max_attempts:
            self.metrics.retries += 1
            job.retries += 1
            delay = backoff_delay(
                job.tries,
                self.options.backoff_base_seconds,
                self.options.backoff_cap_seconds,
                self._rng,
            )
            if failure.retry_after:
                delay = max(delay, failure.retry_after)
            self._enqueue_later(job, delay)
            if log:
                self._log_batch(client, job, published=0, failed=0, deferred=0)
            return 0
        self._defer(job, failure)
        if log:
            self._log_batch(client, job, published=0, failed=0, deferred=len(job.ops))
        await self._finish_rows(len(job.ops))
        return len(job.ops)

    def _defer(self, job: _Job, failure: RequestFailed) -> None:
        now = utc_now()
        deferred: list[DeferredOp] = []
        expired: list[Operation] = []
        for op in job.ops:
            deadline = (
                dt.datetime.fromtimestamp(op.first_attempt_at, dt.UTC)
                if op.first_attempt_at
                else now
            ) + dt.timedelta(seconds=self.options.defer_deadline_seconds)
            if op.attempts >= self.options.max_total_attempts or now >= deadline:
                expired.append(op)
                continue
            rounds = max(0, op.attempts // max(self.options.max_attempts, 1) - 1)
            delay = self.options.defer_delay_seconds * (2 ** min(rounds, 10))
            deferred.append(
                DeferredOp(
                    run_id=self.run_id,
                    target=job.target.table,
                    entity_set=job.target.entity_set,
                    mode=job.target.mode,
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
            self._fail_ops(
                job,
                expired,
                DEFERRED_EXPIRED,
                f"gave up after {expired[0].attempts} attempts: {failure}",
                failure.status,
            )
        if deferred:
            self.metrics.deferred += len(deferred)
            self.sink.deferred(deferred)

    def _fail_ops(
        self,
        job: _Job,
        ops: Sequence[Operation],
        code: str,
        message: str,
        status: int | None,
    ) -> None:
        rows = [
            FailedRow(
                run_id=self.run_id,
                batch_id=job.batch_id,
                mode=job.target.mode,
                target=job.target.table,
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
        self._emit_failed(rows)

    def _emit_failed(self, rows: list[FailedRow]) -> None:
        if rows:
            self.metrics.failed += len(rows)
            self.sink.failed(rows)

    def _log_batch(
        self, client: PrincipalClient, job: _Job, *, published: int, failed: int, deferred: int
    ) -> None:
        self.sink.batch_logged(
            BatchLogEntry(
                run_id=self.run_id,
                batch_id=job.batch_id,
                target=job.target.table,
                mode=job.target.mode,
                operation=job.kind.value,
                primitive=(
                    _BULK_MESSAGE[job.kind]
                    if self._uses_bulk(job.target, job.kind) and not job.force_batch
                    else "$batch"
                ),
                principal=client.name,
                rows=len(job.ops),
                published=published,
                failed=failed,
                deferred=deferred,
                duration_seconds=round(time.monotonic() - job.started, 4),
                requests=job.requests,
                retries=job.retries,
                throttled=dict(job.throttled),
                started_at=utc_now() - dt.timedelta(seconds=time.monotonic() - job.started),
            )
        )

    # ----------------------------------------------------------------- replay

    async def replay(self, deferred: list[DeferredOp], now: dt.datetime, only_due: bool) -> None:
        targets: dict[str, Target] = {}
        due: dict[tuple[str, OpKind], list[Operation]] = {}
        keep: list[DeferredOp] = []
        for item in deferred:
            self.metrics.rows_read += 1
            op = item.operation
            op.row_number = op.row_number
            if now >= item.deadline or op.attempts >= self.options.max_total_attempts:
                self._emit_failed(
                    [
                        FailedRow(
                            run_id=self.run_id,
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
                    ]
                )
                continue
            if only_due and item.next_attempt_at > now:
                keep.append(item)
                continue
            if item.target not in targets:
                meta = await fetch_metadata(self._pick, item.target, **self._read_kw())
                targets[item.target] = Target(
                    table=meta.logical_name,
                    entity_set=meta.entity_set,
                    primary_id=meta.primary_id,
                    mode=item.mode,
                    use_bulk={m: m in meta.bulk_messages for m in _BULK_MESSAGE.values()},
                )
            if op.kind is OpKind.CREATE:
                op.upsert_by_id = True  # an earlier attempt may have landed
            due.setdefault((item.target, op.effective_kind), []).append(op)
        if keep:
            self.metrics.deferred += len(keep)
            self.sink.deferred(keep)
        for (table, _kind), ops in due.items():
            await self._submit(targets[table], ops)


def _best_effort_key(plan: TablePlan, row: Mapping[str, Any]) -> str:
    """A key text for a row whose key could not be built (for the failed-rows table)."""
    parts = [f"{name}={row.get(source)!r}" for name, source in plan.spec.key.columns.items()]
    return ",".join(parts)
