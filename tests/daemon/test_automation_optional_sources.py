"""Automation goes on without the optional domains: an asset whose optional upstream (finance,
churn risk, a second CRM source) never landed is still requested when its required upstream
changes; a required upstream that is missing still holds it back (Dagster's `eager`). Before,
plain `eager` waited for every dep, so a fresh `customer360 dev` without a second source never
built identity, gold or the publish. Real instance, real automation evaluation."""

from __future__ import annotations

import dagster as dg

from assets.keys import FINANCE_KEY
from assets.refresh import EAGER, OPTIONAL_DEPS


@dg.asset
def required() -> None:
    return None


@dg.asset(key=FINANCE_KEY)
def finance() -> None:  # an optional upstream: never materialised here (no finance drop)
    return None


@dg.asset
def other_required() -> None:  # a required upstream, never materialised
    return None


@dg.asset(deps=[required, finance], automation_condition=EAGER)
def with_optional_missing() -> None:
    return None


@dg.asset(deps=[required, other_required], automation_condition=EAGER)
def with_required_missing() -> None:
    return None


def test_a_missing_optional_upstream_does_not_hold_automation_back():
    defs = dg.Definitions(
        assets=[required, finance, other_required, with_optional_missing, with_required_missing]
    )
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        dg.materialize([required], instance=instance)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=first.cursor)  # fmt: skip
        requested = {r.key.to_user_string() for r in result.results if r.true_subset.size}
    assert "with_optional_missing" in requested
    assert "with_required_missing" not in requested


def test_the_optional_upstreams_are_the_enrichments_and_second_sources():
    from assets.keys import CHURN_RISK_KEY, crm_silver_key
    from customer360.unify import unify_config

    crm = [crm_silver_key(m.source) for m in unify_config().csv_sources]
    specs = [dg.AssetSpec(k) for k in (FINANCE_KEY, CHURN_RISK_KEY, *crm, dg.AssetKey("other"))]
    keys = OPTIONAL_DEPS.resolve(dg.Definitions(assets=specs).resolve_asset_graph())
    assert keys == {FINANCE_KEY, CHURN_RISK_KEY, *crm} and crm
