"""Dynamics publish: one asset per publish target (customer360/publish_specs/*.yaml).

Every source row ends in exactly one state: published, unchanged, failed (row kept in
ops/publish_failed_rows with the error) or deferred (kept in ops/publish_deferred; the
`deferred_publish_sensor` re-materialises the asset in replay mode when they are due).
"""

import datetime as dt
import threading
import uuid
from pathlib import Path

import dagster as dg
import pyarrow as pa

from customer360.dynamics import (
    BatchLogEntry,
    DeferredOp,
    FailedRow,
    Progress,
    PublishMetrics,
    plot_throughput,
    publish,
    replay_deferred,
)
from customer360.publish_targets import PublishTarget, load_targets, stream_source
from resources.dynamics import DynamicsResource
from resources.lakehouse import LakehouseResource

FAILED_TABLE = "publish_failed_rows"
DEFERRED_TABLE = "publish_deferred"
BATCH_LOG_TABLE = "publish_batch_log"
BACKLOG_WARN_HOURS = 24

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


class PublishRunConfig(dg.Config):
    replay_deferred_only: bool = False  # set by the deferred sensor: resend only due deferrals


class DeltaOutcomeSink:
    """Writes the engine's failed rows and batch-log rows to the ops tables as they come.

    A writer thread commits whatever has accumulated as soon as the previous commit is done,
    so each batch's audit rows are in Delta within about one commit (tens of ms) of the batch
    ending — a SIGKILLed run keeps its audit trail (issue 14) — while a fast run still groups
    many batches per commit. The deferred set is replaced once, at `close()`: a killed run's
    re-run publishes every row again anyway.
    """

    def __init__(self, lakehouse: LakehouseResource, publish_target: str) -> None:
        # Several targets may write one Dataverse table: ops rows are keyed by the target name.
        self.lakehouse, self.publish_target = lakehouse, publish_target
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
            self.lakehouse.write_arrow(data, "ops", table, mode="append")
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
        self.lakehouse.lake.replace_where(pending, "ops", DEFERRED_TABLE, where)


def pending_deferred(lakehouse: LakehouseResource, publish_target: str) -> list[DeferredOp]:
    """The operations of one publish target waiting for a retry."""
    if not lakehouse.exists("ops", DEFERRED_TABLE):
        return []
    rows = lakehouse.read_arrow("ops", DEFERRED_TABLE).to_pylist()
    return [DeferredOp.from_record(r) for r in rows if r["publish_target"] == publish_target]


def _metadata(metrics: PublishMetrics, plot: Path | None) -> dict:
    meta = {
        "rows_read": metrics.rows_read,
        "published": metrics.published,
        "unchanged": metrics.unchanged,
        "failed": metrics.failed,
        "deferred": metrics.deferred,
        # delete modes: the record is not in Dataverse, so there is nothing to do (in unchanged)
        "absent_nothing_to_do": metrics.absent,
        # rows deferred unclassified because Dataverse could not be read for them
        "read_deferrals": metrics.read_deferrals,
        "records_per_second": round(metrics.records_per_second, 1),
        "requests": metrics.requests,
        "retries": metrics.retries,
        "throttled_429": metrics.throttled_total,
        "throttled_by_reason": dg.MetadataValue.json(dict(metrics.throttled)),
        "stage_seconds": dg.MetadataValue.json(
            {k: round(v, 3) for k, v in metrics.stage_seconds.items()}
        ),
        "principals": metrics.principals,
        "duration_seconds": round(metrics.duration_seconds, 2),
    }
    if plot is not None:
        meta["throughput_plot"] = dg.MetadataValue.path(str(plot))
    return meta


def _check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "reconciliation",
            asset=key,
            blocking=True,
            description="published + unchanged + failed + deferred = source rows",
        ),
        dg.AssetCheckSpec("no_failed_rows", asset=key),
        dg.AssetCheckSpec("deferred_backlog_age", asset=key),
    ]


def _progress_logger(context: dg.AssetExecutionContext, name: str):
    """A progress callback that logs at most every 5 s (and once at the end)."""
    last_log = [0.0]

    def progress(p: Progress) -> None:
        if p.elapsed_seconds - last_log[0] >= 5 or p.finished:
            last_log[0] = p.elapsed_seconds
            context.log.info(
                f"{name}: {p.done:,}/{p.rows_read:,} rows done — {p.published:,} "
                f"published, {p.unchanged:,} unchanged, {p.failed:,} failed, "
                f"{p.deferred:,} deferred; {p.records_per_second:,.0f} rows/s, "
                f"{p.throttled} throttled"
            )

    return progress


def _run_publish(
    target: PublishTarget,
    replay_only: bool,
    dynamics: DynamicsResource,
    lakehouse: LakehouseResource,
    sink: "DeltaOutcomeSink",
    progress,
    run_id: str,
) -> tuple[PublishMetrics, int]:
    """Publish the target's source (or replay its due deferred operations).
    Returns (metrics, rows expected to be accounted for)."""
    if replay_only:
        ops = pending_deferred(lakehouse, target.name)
        metrics = replay_deferred(
            ops,
            dynamics.connection(),
            sink=sink,
            options=dynamics.options(),
            progress=progress,
            run_id=run_id,
            spec=target.spec,
        )
        return metrics, len(ops)
    uri = lakehouse.uri(target.source_layer, target.source_table)
    metrics = publish(
        stream_source(uri, target.query),
        target.spec,
        dynamics.connection(),
        sink=sink,
        options=dynamics.options(),
        progress=progress,
        run_id=run_id,
    )
    return metrics, metrics.rows_read


def _check_results(
    metrics: PublishMetrics, expected: int, sink: "DeltaOutcomeSink", lakehouse: LakehouseResource
) -> list[dg.AssetCheckResult]:
    oldest = min((op.deferred_at for op in sink.deferred_ops), default=None)
    age_hours = (
        (dt.datetime.now(dt.UTC) - oldest).total_seconds() / 3600 if oldest is not None else 0.0
    )
    return [
        dg.AssetCheckResult(
            check_name="reconciliation",
            passed=metrics.done == expected,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"source_rows": expected, "accounted": metrics.done},
        ),
        dg.AssetCheckResult(
            check_name="no_failed_rows",
            passed=metrics.failed == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failed": metrics.failed,
                "failed_rows_table": dg.MetadataValue.path(lakehouse.uri("ops", FAILED_TABLE)),
            },
        ),
        dg.AssetCheckResult(
            check_name="deferred_backlog_age",
            passed=age_hours < BACKLOG_WARN_HOURS,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "pending_deferred": len(sink.deferred_ops),
                "oldest_age_hours": round(age_hours, 2),
            },
        ),
    ]


def build_publish_asset(target: PublishTarget) -> dg.AssetsDefinition:
    """The asset `dynamics/<target name>` that publishes one publish target."""
    key = dg.AssetKey(["dynamics", target.name])

    @dg.asset(
        key=key,
        deps=[dg.AssetKey([target.source_layer, target.source_table])],
        group_name="dynamics",
        kinds={"dynamics365", "delta"},
        description=target.description,
        check_specs=_check_specs(key),
        pool="dynamics_api",
        automation_condition=dg.AutomationCondition.eager(),
        metadata={"spec_mode": target.spec.mode.value, "entity_set": target.spec.entity_set},
    )
    def _publish(
        context: dg.AssetExecutionContext,
        config: PublishRunConfig,
        dynamics: DynamicsResource,
        lakehouse: LakehouseResource,
    ) -> dg.MaterializeResult:
        run_id = context.run_id or str(uuid.uuid4())
        sink = DeltaOutcomeSink(lakehouse, target.name)
        progress = _progress_logger(context, target.name)
        try:
            metrics, expected = _run_publish(
                target, config.replay_deferred_only, dynamics, lakehouse, sink, progress, run_id
            )
        except BaseException:
            # keep the audit rows written so far; the pending deferred set stays as it was
            sink.close(replace_deferred=False)
            raise
        sink.close()
        plot = lakehouse.plot_path(f"publish-{target.name}-{run_id}")
        plot_throughput(metrics.throughput, plot)
        context.log.info(
            f"{target.name}: {metrics.published} published, {metrics.unchanged} unchanged, "
            f"{metrics.failed} failed, {metrics.deferred} deferred in "
            f"{metrics.duration_seconds:.1f} s ({metrics.records_per_second:,.0f} rows/s)"
        )
        return dg.MaterializeResult(
            metadata=_metadata(metrics, plot)
            | {
                "replay": config.replay_deferred_only,
                "throughput_plot": lakehouse.plot_metadata(plot, "publish throughput"),
            },
            check_results=_check_results(metrics, expected, sink, lakehouse),
        )

    return _publish


PUBLISH_TARGETS = load_targets()
publish_assets = [build_publish_asset(t) for t in PUBLISH_TARGETS]
