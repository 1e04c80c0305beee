"""Optional sources and isolated domains, without Spark: the profile follows churn risk although
churn is not its dependency. (The churn chain while no KKBox data landed:
test_materialize_all_backfill.py.)"""

from __future__ import annotations

import dagster as dg

from assets.gold import PROFILE_AUTOMATION
from assets.keys import CHURN_RISK_KEY, PROFILE_KEY, SOURCE_LINK_KEY
from customer360.definitions import build_definitions


def _asset(key: dg.AssetKey) -> dg.AssetsDefinition:
    @dg.asset(key=key)
    def _upstream() -> None: ...

    return _upstream


def test_profile_runs_without_churn_and_follows_each_new_churn_risk():
    upstreams = [_asset(SOURCE_LINK_KEY), _asset(CHURN_RISK_KEY)]

    @dg.asset(key=PROFILE_KEY, deps=[SOURCE_LINK_KEY], automation_condition=PROFILE_AUTOMATION)
    def profile() -> None: ...

    defs = [*upstreams, profile]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.get_num_requested(PROFILE_KEY) == 0  # the link table is missing
    instance.report_runless_asset_event(dg.AssetMaterialization(SOURCE_LINK_KEY))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(PROFILE_KEY) == 1  # no churn risk: runs anyway
    instance.report_runless_asset_event(dg.AssetMaterialization(PROFILE_KEY))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(PROFILE_KEY) == 0  # up to date
    instance.report_runless_asset_event(dg.AssetMaterialization(CHURN_RISK_KEY))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(PROFILE_KEY) == 1  # a new churn risk re-derives it


def test_churn_is_not_a_dependency_of_the_profile_so_its_failure_cannot_skip_it():
    graph = build_definitions().resolve_asset_graph()
    upstream = graph.get(PROFILE_KEY).parent_keys
    assert CHURN_RISK_KEY not in upstream
    assert SOURCE_LINK_KEY in upstream and dg.AssetKey(["silver", "customer_finance"]) in upstream
