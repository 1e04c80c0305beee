"""Materialise the whole asset graph in-process (what `customer360 run` and `demo` do).

Partitioned assets are run per partition that has no materialisation yet (bronze ingests each new
landing folder exactly once); everything unpartitioned then runs in one run, in dependency order —
the same run the UI's "Materialize all" launches for them. Any subset of the landing areas works:
an asset whose source never landed is skipped or materialises with `skipped` metadata, and a
failing enrichment domain (churn, a second source, finance) fails only its own assets; the
summary says which enrichments the profile was built with (see docs/medallion.md).
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
    failed_steps: list[str] = field(default_factory=list)  # step keys, for the domain summary
    not_materialized: list[str] = field(default_factory=list)  # selected, neither built nor failed
    # asset key → what its runs set aside (bronze `set_aside` notes), over every partition run
    set_aside: dict[str, list[str]] = field(default_factory=dict)
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
        summary.failed_steps += [e.step_key for e in result.all_events if e.is_step_failure]
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        summary.materialized[mat.asset_key.to_user_string()] = meta
        notes = str(meta.get("set_aside") or "nothing")
        if notes != "nothing":  # partitions run one by one: keep every partition's notes
            summary.set_aside.setdefault(mat.asset_key.to_user_string(), []).extend(
                line.removeprefix("- ") for line in notes.splitlines()
            )
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
        built = {e.asset_key for e in result.get_asset_materialization_events()}
        failed = set(summary.failed_steps)
        summary.not_materialized = sorted(
            key.to_user_string()
            for key in unpartitioned
            if key not in built and graph.get(key).assets_def.node_def.name not in failed
        )
    summary.seconds = time.monotonic() - start
    return summary


#: Enrichment domains: the step keys (op names) that belong to each. A failure of one of them
#: leaves the profile to go on with that enrichment's last good table, or none.
def _domain_of(step_key: str) -> str | None:
    if step_key.startswith("churn__") or "customer_churn_risk" in step_key:
        return "churn"
    if "customer_finance" in step_key:
        return "finance"
    if step_key.startswith(("bronze__crm_", "silver__crm_")):
        return "second source " + step_key.split("crm_", 1)[1].removesuffix("_and_quarantine")
    return None


def enrichment_lines(summary: GraphRun) -> list[str]:
    """What the run summary says about the enrichments: which domains failed in this run and
    which table (or none) gold/customer_profile was built with."""
    lines = []
    failed_domains: dict[str, list[str]] = {}
    for step in summary.failed_steps:
        domain = _domain_of(step)
        if domain is not None:
            failed_domains.setdefault(domain, []).append(step)
    profile = summary.materialized.get("gold/customer_profile")
    used = (profile or {}).get("enrichments") or {}
    for domain, steps in sorted(failed_domains.items()):
        fallback = used.get(domain.split()[0], "the last good tables")
        lines.append(
            f"  domain {domain} FAILED in this run ({', '.join(sorted(set(steps)))}); "
            + (f"the profile went on with {fallback}" if profile else "no profile built")
        )
    for name, what in sorted(used.items()):
        lines.append(f"  gold/customer_profile {name}: {what}")
    # Dagster's skips, and the assets materialised with nothing to build (metadata `skipped`)
    skipped = {*summary.not_materialized}
    skipped |= {key for key, meta in summary.materialized.items() if "skipped" in meta}
    if skipped:
        lines.append("  skipped (their source has not landed): " + ", ".join(sorted(skipped)))
    return lines


def set_aside_lines(summary: GraphRun, limit: int = 10) -> list[str]:
    """What the run's bronze assets set aside (files rejected whole, lines held back, re-sent
    files skipped), per asset: at most `limit` lines each, the rest in the asset's metadata."""
    lines = []
    for key, notes in sorted(summary.set_aside.items()):
        lines += [f"  {key} set aside: {note}" for note in notes[:limit]]
        if len(notes) > limit:
            lines.append(f"  {key}: {len(notes) - limit} more (metadata `set_aside`)")
    return lines
