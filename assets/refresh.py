"""Run config and automation shared by the incrementally maintained assets."""

import functools
import operator
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

#: Built once while its source has never landed, on the daemon's first tick too (plain `eager`
#: resets on the initial evaluation and waits for the missing bronze dep): silver/crm_<source>
#: then exists, empty with its reason, before identity resolution reads it (before, on a fresh
#: `customer360 dev` without a second-source drop, identity failed with `no Delta table at
#: …/silver/crm_<source>`). Once requested it waits for a real update, as `eager` does.
FIRST_BUILD = (
    dg.AutomationCondition.missing()
    .newly_true()
    .since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated())
    & ~dg.AutomationCondition.in_progress()
).with_label("missing: built before its first drop")


def _any_updated(keys: list[dg.AssetKey]) -> dg.AutomationCondition:
    updated = [
        dg.AutomationCondition.asset_matches(k, dg.AutomationCondition.newly_updated())
        for k in keys
    ]
    return functools.reduce(operator.or_, updated)


def _gated_or(extra: dg.AutomationCondition | None) -> dg.AutomationCondition:
    """`EAGER`, gated on the upstreams' blocking checks, or `extra` — which must not be gated:
    it fires precisely while an upstream is missing, so that upstream's checks never ran."""
    gated = (EAGER & BLOCKING_CHECKS_PASSED).with_label(f"eager & {GATED}")
    if extra is None:
        return gated
    return (gated | extra).with_label(f"eager & {GATED} | {extra.get_label()}")


#: silver/crm_<source> (+ quarantine): eager on its drops, and built empty before the first.
CRM_SILVER_AUTOMATION = _gated_or(FIRST_BUILD)

_CRM_SILVER_KEYS = [crm_silver_key(m.source) for m in unify_config().csv_sources]
#: silver/customer (+ quarantine): eager on the history, and — while it is missing, e.g. no
#: Synapse Link export landed — after a second source's silver tables changed: it builds empty
#: with the reason and identity, the profile and the publish follow from that source alone
#: (before, under the daemon they waited forever on a history that never materialises;
#: `customer360 run` and "Materialize all" did build them). With neither an export nor a second
#: source (a finance-only drop) the daemon requests nothing of it: `customer360 run` and
#: "Materialize all" build it empty with the reason.
CUSTOMER_AUTOMATION = _gated_or(
    (
        dg.AutomationCondition.missing()
        & _any_updated(_CRM_SILVER_KEYS)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("a second source changed before any export")
    if _CRM_SILVER_KEYS
    else None
)


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
