"""Run config and automation shared by the incrementally maintained assets."""

from collections.abc import Iterable

import dagster as dg
from pydantic import Field

from assets.keys import CHURN_RISK_KEY, FINANCE_KEY, crm_silver_key
from customer360.unify import unify_config

#: The enrichments and second sources: their assets stay missing until their landing area
#: gets a drop, and what depends on them builds without them (finance measures null, no churn
#: columns, one source fewer; docs/medallion.md "Partial drops and isolated domains").
OPTIONAL_DEPS = dg.AssetSelection.assets(
    FINANCE_KEY, CHURN_RISK_KEY, *[crm_silver_key(m.source) for m in unify_config().csv_sources]
)

#: Materialise when an upstream changed — Dagster's `eager`, except that an optional upstream
#: that never landed does not hold it back (plain `eager` waits while any dep is missing: on a
#: fresh `customer360 dev` without a second source, identity, gold and publish never ran).
#: Every automation condition of the graph is further gated on the upstreams' blocking checks
#: (`gate_on_blocking_checks`, applied in customer360/definitions.py): a failed ERROR check
#: stops automation downstream in later runs too, not only inside the run that failed.
EAGER = dg.AutomationCondition.eager().replace(
    "any_deps_missing", dg.AutomationCondition.any_deps_missing().ignore(OPTIONAL_DEPS)
)

#: Dagster's `all_blocking_checks_passed`, evaluated on an upstream: its blocking checks passed
#: at their latest evaluation, or run in this tick's request with it.
_CHECKS_PASSED = dg.AutomationCondition.all_checks_match(
    dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested(),
    blocking_only=True,
)

#: True once the latest evaluation of every blocking check of every upstream asset passed —
#: Dagster's `all_deps_blocking_checks_passed`, except that an optional upstream that never
#: landed (missing, not requested) has nothing to pass: its checks never ran, and without this
#: a fresh `customer360 dev` without a second source never built identity, gold or the publish
#: (silver/crm_<source>'s blocking `keys_unique` never evaluated). Once it has materialised,
#: its blocking checks gate like any other's.
BLOCKING_CHECKS_PASSED = (
    dg.AutomationCondition.all_deps_match(_CHECKS_PASSED).ignore(OPTIONAL_DEPS)
    & dg.AutomationCondition.all_deps_match(
        _CHECKS_PASSED
        | (dg.AutomationCondition.missing() & ~dg.AutomationCondition.will_be_requested())
    ).allow(OPTIONAL_DEPS)
).with_label("all_deps_blocking_checks_passed")


GATED = "upstream blocking checks passed"


class RefreshConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Rebuild from all upstream data instead of applying only what changed "
        "(e.g. after changing standardisation code).",
    )


def _gated(spec: dg.AssetSpec) -> dg.AssetSpec:
    condition = spec.automation_condition
    if condition is None or GATED in (condition.get_label() or ""):
        return spec
    label = f"{condition.get_label() or condition.name} & {GATED}"
    gated = (condition & BLOCKING_CHECKS_PASSED).with_label(label)
    return spec.replace_attributes(automation_condition=gated)


def gate_on_blocking_checks(assets: Iterable) -> list:
    """Every asset with an automation condition waits until its upstreams' blocking checks
    passed: automation never builds on data a blocking check rejected (issue: gold was launched
    in a separate run after silver/customer's checks failed)."""
    return list(dg.map_asset_specs(_gated, list(assets)))
