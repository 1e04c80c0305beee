"""The profile's automation: it follows its upstreams (eager) but does not wait for churn risk,
which exists only once KKBox data landed (dg.evaluate_automation_conditions, no runs)."""

import dagster as dg

from assets.gold import EAGER_ALLOWING_NO_CHURN
from assets.keys import PROFILE_KEY


def _asset(key: dg.AssetKey) -> dg.AssetsDefinition:
    @dg.asset(key=key)
    def _upstream() -> None: ...

    return _upstream


def test_profile_runs_without_churn_risk_but_waits_for_its_other_inputs():
    links = dg.AssetKey(["gold", "customer_source_link"])
    churn = dg.AssetKey(["gold", "customer_churn_risk"])
    upstreams = [_asset(links), _asset(churn)]

    @dg.asset(key=PROFILE_KEY, deps=[links, churn], automation_condition=EAGER_ALLOWING_NO_CHURN)
    def profile() -> None: ...

    defs = [*upstreams, profile]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.get_num_requested(PROFILE_KEY) == 0  # the link table is missing
    instance.report_runless_asset_event(dg.AssetMaterialization(links))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(PROFILE_KEY) == 1  # churn risk still missing: runs anyway
