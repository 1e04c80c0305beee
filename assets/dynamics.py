"""Dynamics publish: one asset per publish target (customer360/publish_specs/*.yaml).

Every source row ends in exactly one state: published, unchanged, failed (row kept in
ops/publish_failed_rows with the error) or deferred (kept in ops/publish_deferred; the
`deferred_publish_sensor` re-materialises the asset in replay mode when they are due).
"""

import datetime as dt
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
    """Collects the engine's outcomes and writes them to the ops tables in bounded chunks."""

    FLUSH_ROWS = 5_000

    def __init__(self, lakehouse: LakehouseResource, publish_target: str) -> None:
        # Several targets may write one Dataverse table: ops rows are keyed by the target name.
        self.lakehouse, self.publish_target = lakehouse, publish_target
        self._failed: list[dict] = []
        self._log: list[dict] = []
        self.deferred_ops: list[DeferredOp] = []  # the target's complete pending set (small)
        self.failed_total = 0

    def published(self, keys) -> None:  # counts come from the metrics
        pass

    def unchanged(self, keys) -> None:
        pass

    def failed(self, rows: list[FailedRow]) -> None:
        self._failed += [{**r.to_record(), "publish_target": self.publish_target} for r in rows]
        self.failed_total += len(rows)
        if len(self._failed) >= self.FLUSH_ROWS:
            self._flush_failed()

    def deferred(self, ops: list[DeferredOp]) -> None:
        self.deferred_ops += ops

    def batch_logged(self, entry: BatchLogEntry) -> None:
        self._log.append({**entry.to_record(), "publish_target": self.publish_target})
        if len(self._log) >= self.FLUSH_ROWS:
            self._flush_log()

    def _flush_failed(self) -> None:
        if self._failed:
            data = pa.Table.from_pylist(self._failed, schema=FAILED_SCHEMA)
            self.lakehouse.write_arrow(data, "ops", FAILED_TABLE, mode="append")
            self._failed = []

    def _flush_log(self) -> None:
        if self._log:
            data = pa.Table.from_pylist(self._log, schema=BATCH_LOG_SCHEMA)
            self.lakehouse.write_arrow(data, "ops", BATCH_LOG_TABLE, mode="append")
            self._log = []

    def close(self) -> None:
        self._flush_failed()
        self._flush_log()
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


def build_publish_asset(target: PublishTarget) -> dg.AssetsDefinition:
    key = dg.AssetKey(["dynamics", target.name])
    source_key = dg.AssetKey([target.source_layer, target.source_table])
    checks = [
        dg.AssetCheckSpec(
            "reconciliation",
            asset=key,
            blocking=True,
            description="published + unchanged + failed + deferred = source rows",
        ),
        dg.AssetCheckSpec("no_failed_rows", asset=key),
        dg.AssetCheckSpec("deferred_backlog_age", asset=key),
    ]

    @dg.asset(
        key=key,
        deps=[source_key],
        group_name="dynamics",
        kinds={"dynamics365", "delta"},
        description=target.description,
        check_specs=checks,
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
        last_log = [0.0]

        def progress(p: Progress) -> None:
            if p.elapsed_seconds - last_log[0] >= 5 or p.finished:
                last_log[0] = p.elapsed_seconds
                context.log.info(
                    f"{target.name}: {p.done:,}/{p.rows_read:,} rows done — {p.published:,} "
                    f"published, {p.unchanged:,} unchanged, {p.failed:,} failed, "
                    f"{p.deferred:,} deferred; {p.records_per_second:,.0f} rows/s, "
                    f"{p.throttled} throttled"
                )

        if config.replay_deferred_only:
            ops = pending_deferred(lakehouse, target.name)
            expected = len(ops)
            metrics = replay_deferred(
                ops,
                dynamics.connection(),
                sink=sink,
                options=dynamics.options(),
                progress=progress,
                run_id=run_id,
            )
        else:
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
            expected = metrics.rows_read
        sink.close()
        plot = lakehouse.plot_path(f"publish-{target.name}-{run_id}")
        plot_throughput(metrics.throughput, plot)
        context.log.info(
            f"{target.name}: {metrics.published} published, {metrics.unchanged} unchanged, "
            f"{metrics.failed} failed, {metrics.deferred} deferred in "
            f"{metrics.duration_seconds:.1f} s ({metrics.records_per_second:,.0f} rows/s)"
        )
        oldest = min((op.deferred_at for op in sink.deferred_ops), default=None)
        age_hours = (
            (dt.datetime.now(dt.UTC) - oldest).total_seconds() / 3600 if oldest is not None else 0.0
        )
        return dg.MaterializeResult(
            metadata=_metadata(metrics, plot)
            | {
                "replay": config.replay_deferred_only,
                "throughput_plot": lakehouse.plot_metadata(plot, "publish throughput"),
            },
            check_results=[
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
                        "failed_rows_table": dg.MetadataValue.path(
                            lakehouse.uri("ops", FAILED_TABLE)
                        ),
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
            ],
        )

    return _publish


PUBLISH_TARGETS = load_targets()
publish_assets = [build_publish_asset(t) for t in PUBLISH_TARGETS]
