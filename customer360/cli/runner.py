"""Materialise the whole asset graph in-process (what `customer360 run` and `demo` do).

Partitioned assets are run per partition that has no materialisation yet (bronze ingests each new
landing folder exactly once); everything unpartitioned then runs in one run, in dependency order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg


@dataclass
class GraphRun:
    runs: int = 0
    failed: list[str] = field(default_factory=list)
    materialized: dict[str, dict] = field(default_factory=dict)  # asset key → last metadata
    failed_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return not self.failed


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """The error of every failed step, for a summary a person can act on."""
    out = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause  # the user code's exception, not Dagster's wrapper
            message = error.message.strip() if error else "unknown error"
            out.append(f"{event.step_key}: {message}")
    return out


def _record(result: dg.ExecuteInProcessResult, summary: GraphRun, label: str) -> None:
    summary.runs += 1
    if not result.success:
        summary.failed.append(f"{label}: {'; '.join(failure_messages(result))}")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        summary.materialized[mat.asset_key.to_user_string()] = meta
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            summary.failed_checks.append(
                f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                f" ({evaluation.severity.value})"
            )


def materialize_assets(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    asset_keys: list[dg.AssetKey],
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    """One in-process run of exactly these assets (and their checks)."""
    job = defs.get_repository_def().get_implicit_job_def_for_assets(asset_keys)
    return job.get_subset(asset_selection=set(asset_keys)).execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False
    )


#: Assets that learn from KKBox files: left out of a run while landing/kkbox/ has none (churn
#: risk is enrichment; the profile builds without it).
CHURN_ASSETS = dg.AssetSelection.groups("churn") | dg.AssetSelection.assets(
    ["gold", "customer_churn_risk"]
)


def selection_for_landing(landing) -> dg.AssetSelection | None:
    """What `customer360 run` materialises for this landing zone: everything (None), or
    everything but the churn assets when landing/kkbox/ holds no CSV file."""
    if landing.list_files("kkbox", suffix=".csv"):
        return None
    return dg.AssetSelection.all() - CHURN_ASSETS


def materialize_graph(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    selection: dg.AssetSelection | None = None,
    changed_partitions: dict[str, set[str]] | None = None,
) -> GraphRun:
    """Run every (selected) asset: partitions not yet materialised or listed in
    `changed_partitions` (partitions definition name → keys whose landing content changed),
    then the unpartitioned ones."""
    changed_partitions = changed_partitions or {}
    start = time.monotonic()
    summary = GraphRun()
    graph = defs.resolve_asset_graph()
    keys = graph.materializable_asset_keys
    if selection is not None:
        keys = selection.resolve(graph) & keys
    specs = [graph.get(key) for key in keys]
    partitioned = [n for n in specs if n.partitions_def is not None]
    unpartitioned = [n.key for n in specs if n.partitions_def is None]

    for partitions_def in {n.partitions_def for n in partitioned}:
        keys = [n.key for n in partitioned if n.partitions_def == partitions_def]
        for partition_key in partitions_def.get_partition_keys(dynamic_partitions_store=instance):
            done = partition_key not in changed_partitions.get(partitions_def.name, ()) and all(
                instance.get_latest_materialization_event(k) is not None
                and partition_key in instance.get_materialized_partitions(k)
                for k in keys
            )
            if done:
                continue
            result = materialize_assets(defs, instance, keys, partition_key)
            _record(result, summary, f"{keys} [{partition_key}]")
    if unpartitioned:
        result = materialize_assets(defs, instance, unpartitioned)
        _record(result, summary, "unpartitioned assets")
    summary.seconds = time.monotonic() - start
    return summary
