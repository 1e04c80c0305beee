"""Dynamics publish: one asset per publish target (customer360/publish_specs/*.yaml).

Every source row ends in exactly one state: published, unchanged, failed (row kept in
ops/publish_failed_rows with the error) or deferred (kept in ops/publish_deferred; the
`deferred_publish_sensor` re-materialises the asset in replay mode when they are due).
A target whose source table was never written (e.g. no Synapse Link export yet) publishes
nothing and materialises with the reason (metadata `skipped`), not failed and not left without a
status (an asset backfill, the UI's "Materialize all", would end failed). The ops tables and
their sink are in customer360/dynamics/ops_tables.py.
"""

import datetime as dt
import uuid
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from customer360.dynamics import (
    DeferredOp,
    Progress,
    PublishMetrics,
    ops_tables,
    plot_throughput,
    publish,
    replay_deferred,
)
from customer360.dynamics.ops_tables import (
    BATCH_LOG_TABLE,
    DEFERRED_TABLE,
    FAILED_TABLE,
    OpsTablesSink,
)
from customer360.publish_targets import PublishTarget, load_targets, stream_source
from resources.dynamics import DynamicsResource
from resources.lakehouse import LakehouseResource

BACKLOG_WARN_HOURS = 24
# Passes over a source that keeps changing during its publish (see _publish_settled).
MAX_SOURCE_PASSES = 5
# Re-exported: the deferred sensor and the tests name the ops tables from here.
__all__ = [
    "BATCH_LOG_TABLE",
    "DEFERRED_TABLE",
    "FAILED_TABLE",
    "PUBLISH_TARGETS",
    "DeltaOutcomeSink",
    "pending_deferred",
    "publish_assets",
]


class PublishRunConfig(dg.Config):
    replay_deferred_only: bool = False  # set by the deferred sensor: resend only due deferrals


class DeltaOutcomeSink(OpsTablesSink):
    """The ops-tables sink (customer360/dynamics/ops_tables.py) on the lakehouse resource's lake."""

    def __init__(self, lakehouse: LakehouseResource, publish_target: str) -> None:
        super().__init__(lakehouse.lake, publish_target)


def pending_deferred(lakehouse: LakehouseResource, publish_target: str) -> list[DeferredOp]:
    """The operations of one publish target waiting for a retry (the deferred sensor asks)."""
    return ops_tables.pending_deferred(lakehouse.lake, publish_target)


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


def _replay(
    target: PublishTarget,
    dynamics: DynamicsResource,
    lakehouse: LakehouseResource,
    progress,
    run_id: str,
) -> tuple[PublishMetrics, int, DeltaOutcomeSink]:
    """Resend the target's due deferred operations.
    Returns (metrics, operations expected to be accounted for, sink)."""
    ops = pending_deferred(lakehouse, target.name)
    sink = DeltaOutcomeSink(lakehouse, target.name)
    with _closing(sink):
        metrics = replay_deferred(
            ops,
            dynamics.connection(),
            sink=sink,
            options=dynamics.options(),
            progress=progress,
            run_id=run_id,
            spec=target.spec,
        )
    return metrics, len(ops), sink


def _publish_settled(
    target: PublishTarget,
    dynamics: DynamicsResource,
    lakehouse: LakehouseResource,
    progress,
    run_id: str,
    log,
) -> tuple[PublishMetrics, DeltaOutcomeSink, Path, list[int]]:
    """Publish the source table, and again while it changed underneath the publish.

    Why: another run may write the source while this one publishes it (the daemon's automation
    run writes the deletes into silver/customer_history while a backfill's deactivation runs).
    This publish then sent the older version, yet its materialisation lands after the source's,
    so eager automation takes the change as handled and nobody ever publishes it. Checking the
    version at the end shrinks that window to the moment between the check and the
    materialisation (so the plot is drawn before the check); change detection makes a further
    pass cost reads, not writes.
    Returns (metrics of the last pass, its sink, its plot, the source versions published)."""
    table = lakehouse.lake.table(target.source_layer, target.source_table)
    versions: list[int] = []
    while True:
        versions.append(table.version())
        sink = DeltaOutcomeSink(lakehouse, target.name)
        with _closing(sink):
            metrics = publish(
                stream_source(table, target.query),
                target.spec,
                dynamics.connection(),
                sink=sink,
                options=dynamics.options(),
                progress=progress,
                run_id=run_id,
            )
        plot = _plot(lakehouse, target, run_id, metrics)
        table = lakehouse.lake.table(target.source_layer, target.source_table)
        if table.version() == versions[-1]:
            return metrics, sink, plot, versions
        if len(versions) == MAX_SOURCE_PASSES:
            log.warning(
                f"{target.name}: {target.source_layer}/{target.source_table} kept changing "
                f"(versions {versions} then {table.version()}); its next materialisation "
                "triggers the next publish"
            )
            return metrics, sink, plot, versions
        log.info(
            f"{target.name}: {target.source_layer}/{target.source_table} changed during the "
            f"publish (version {versions[-1]} → {table.version()}): publishing the new version"
        )


def _plot(
    lakehouse: LakehouseResource, target: PublishTarget, run_id: str, metrics: PublishMetrics
) -> Path:
    plot = lakehouse.plot_path(f"publish-{target.name}-{run_id}")
    plot_throughput(metrics.throughput, plot)
    return plot


@contextmanager
def _closing(sink: DeltaOutcomeSink):
    """Close the sink; after a failure keep the audit rows written so far and leave the pending
    deferred set as it was."""
    try:
        yield
    except BaseException:
        sink.close(replace_deferred=False)
        raise
    sink.close()


def _check_results(
    metrics: PublishMetrics, expected: int, sink: DeltaOutcomeSink, lakehouse: LakehouseResource
) -> list[dg.AssetCheckResult]:
    age_hours = sink.oldest_deferred_age_hours(dt.datetime.now(dt.UTC))
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


def source_not_landed(target: PublishTarget, lakehouse: LakehouseResource) -> str | None:
    """Why there is nothing to publish yet (the source table was never written), or None.

    E.g. no Synapse Link export has landed, so silver/customer_history does not exist: the
    deactivation target has no deleted customers to look at, which is not a failure."""
    if lakehouse.exists(target.source_layer, target.source_table):
        return None
    return (
        f"source table {target.source_layer}/{target.source_table} does not exist yet (its "
        "landing data has not arrived): nothing to publish"
    )


def _skipped(context: dg.AssetExecutionContext, name: str, reason: str):
    """Nothing sent: a materialisation with the reason, in the log and on every check."""
    context.log.info(f"dynamics/{name} skipped: {reason}")
    yield dg.MaterializeResult(
        metadata={"skipped": reason},
        check_results=[
            dg.AssetCheckResult(check_name=check, passed=True, metadata={"skipped": reason})
            for check in ("reconciliation", "no_failed_rows", "deferred_backlog_age")
        ],
    )


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
    ):
        not_landed = None if config.replay_deferred_only else source_not_landed(target, lakehouse)
        if not_landed is not None:
            yield from _skipped(context, target.name, not_landed)
            return
        run_id = context.run_id or str(uuid.uuid4())
        progress = _progress_logger(context, target.name)
        source_meta: dict = {}
        if config.replay_deferred_only:
            metrics, expected, sink = _replay(target, dynamics, lakehouse, progress, run_id)
            plot = _plot(lakehouse, target, run_id, metrics)
        else:
            metrics, sink, plot, versions = _publish_settled(
                target, dynamics, lakehouse, progress, run_id, context.log
            )
            expected = metrics.rows_read
            source_meta = {"source_version": versions[-1], "source_passes": len(versions)}
        context.log.info(
            f"{target.name}: {metrics.published} published, {metrics.unchanged} unchanged, "
            f"{metrics.failed} failed, {metrics.deferred} deferred in "
            f"{metrics.duration_seconds:.1f} s ({metrics.records_per_second:,.0f} rows/s)"
        )
        yield dg.MaterializeResult(
            metadata=_metadata(metrics, plot)
            | source_meta
            | {
                "replay": config.replay_deferred_only,
                "throughput_plot": lakehouse.plot_metadata(plot, "publish throughput"),
            },
            check_results=_check_results(metrics, expected, sink, lakehouse),
        )

    return _publish


PUBLISH_TARGETS = load_targets()
publish_assets = [build_publish_asset(t) for t in PUBLISH_TARGETS]
