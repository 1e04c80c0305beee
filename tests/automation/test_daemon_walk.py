"""What the daemon builds on a partial drop: the project's real automation conditions, evaluated
tick after tick on a real Dagster instance, as `customer360 dev` runs them.

Nothing is executed: each tick's requests are recorded as materialisations with their checks
passed (what their runs report when they succeed), so the walk shows which assets automation
reaches and in which order. Two drops that `customer360 run` and "Materialize all" handle but the
daemon did not:
- a second CRM source alone (landing/crm2, no Synapse Link export): silver/customer waited on a
  history that never materialises, so identity, the profile and the publish never built;
- a Synapse Link export without a second source: identity ran before silver/crm_<source> existed
  and failed with `no Delta table at …/silver/crm_residents`.
"""

from __future__ import annotations

import dagster as dg
import pytest

from assets.churn import FILES
from assets.keys import (
    CHURN_RISK_KEY,
    CUSTOMER_KEY,
    DASHBOARD_KEY,
    HISTORY_KEY,
    MODEL_KEY,
    PERIODS_KEY,
    PREDICTIONS_KEY,
    PROFILE_KEY,
    SOURCE_LINK_KEY,
    churn_key,
    crm_bronze_key,
    crm_silver_key,
)
from assets.partitions import crm_drops, dataverse_exports
from customer360.definitions import build_definitions
from customer360.tables import CUSTOMER_TABLE
from customer360.unify import unify_config

SOURCE = unify_config().csv_sources[0].source
PUBLISH = [dg.AssetKey(["dynamics", "crc33_customer"]), dg.AssetKey(["dynamics", "contact"])]
TICKS = 12
#: The Customer 360 chain (the churn chain waits for KKBox files and its own sensor).
SELECTION = dg.AssetSelection.assets(*PUBLISH).upstream()


def _succeeded(instance: dg.DagsterInstance, graph, key, partition: str | None = None) -> None:
    """What a successful run of `key` reports: its materialisation and its checks passed."""
    if isinstance(key, dg.AssetCheckKey):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name, passed=True)
        )
        return
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))
    for check in graph.get(key).check_keys:
        _succeeded(instance, graph, check)


def _tick(defs, instance, graph, cursor, ticks: list[set], selection: dg.AssetSelection):
    """One automation tick; what it requests then succeeds."""
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=cursor, asset_selection=selection
    )
    requested = {r.key: r.true_subset for r in result.results if r.true_subset.size}
    for key, subset in requested.items():
        partitions = (
            sorted(subset.expensively_compute_partition_keys()) if subset.is_partitioned else [None]
        )
        for partition in partitions:
            _succeeded(instance, graph, key, partition)
    ticks.append(set(requested))
    return result.cursor


Landed = dict[dg.AssetKey, tuple[dg.DynamicPartitionsDefinition | None, str | None]]


def _walk(
    landed: Landed, selection: dg.AssetSelection = SELECTION, built_before: tuple = ()
) -> list[set]:
    """A `customer360 dev`: the daemon's first tick (after `built_before` was materialised, e.g.
    by "Materialize all"), the landing sensor's bronze runs for `landed`, then automation until
    it rests: the keys requested at each tick."""
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    ticks: list[set] = []
    # In-memory storage: the on-disk SQLite of instance_for_test made each tick ~10x slower.
    with dg.DagsterInstance.ephemeral() as instance:
        for key in built_before:
            _succeeded(instance, graph, key)
        cursor = _tick(defs, instance, graph, None, ticks, selection)
        for key, (partitions, partition) in landed.items():
            if partitions is not None:
                instance.add_dynamic_partitions(partitions.name, [partition])
            _succeeded(instance, graph, key, partition)
        for _ in range(TICKS):
            cursor = _tick(defs, instance, graph, cursor, ticks, selection)
            if not ticks[-1]:
                return ticks
    pytest.fail(f"automation did not rest after {TICKS} ticks: {ticks}")


def _first_tick(ticks: list[set], key) -> int | None:
    return next((i for i, keys in enumerate(ticks) if key in keys), None)


def test_a_second_source_alone_reaches_identity_profile_and_publish(c360_home):
    ticks = _walk({crm_bronze_key(SOURCE): (crm_drops(SOURCE), "2024-05-01")})
    reached = set().union(*ticks)
    assert crm_silver_key(SOURCE) in reached
    # silver/customer builds empty with its reason (no export), then everything below it.
    for key in (CUSTOMER_KEY, SOURCE_LINK_KEY, PROFILE_KEY, *PUBLISH):
        assert key in reached, (key, ticks)


def test_an_export_without_a_second_source_resolves_identity_after_its_empty_tables(c360_home):
    export = "2024-05-01T00.00.00Z"
    ticks = _walk({dg.AssetKey(["bronze", CUSTOMER_TABLE]): (dataverse_exports, export)})
    reached = set().union(*ticks)
    assert HISTORY_KEY in reached and PROFILE_KEY in reached and PUBLISH[0] in reached
    # The second source's silver tables exist (empty, with the reason) before identity reads
    # them: requested in an earlier tick, or in the same one (one run, in dependency order).
    crm, identity = _first_tick(ticks, crm_silver_key(SOURCE)), _first_tick(ticks, SOURCE_LINK_KEY)
    assert crm is not None and identity is not None and crm <= identity, ticks


def test_kkbox_landing_after_a_skipped_churn_chain_builds_the_real_chain(c360_home):
    """ "Materialize all" before any KKBox drop materialised the churn chain with `skipped`;
    when files land, the sensor's bronze runs still start the whole chain by `eager`."""
    graph = build_definitions().resolve_asset_graph()
    churn = [k for k in graph.materializable_asset_keys if k.path[0] == "churn"]
    readers = [churn_key(table) for table in FILES]
    ticks = _walk(
        {key: (None, None) for key in readers},
        selection=dg.AssetSelection.assets(*churn, CHURN_RISK_KEY),
        built_before=(*churn, CHURN_RISK_KEY),
    )
    assert ticks[0] == set()  # the skipped chain is up to date: nothing to do before the drop
    reached = set().union(*ticks)
    for key in (PERIODS_KEY, MODEL_KEY, PREDICTIONS_KEY, DASHBOARD_KEY):
        assert key in reached, (key, ticks)
