"""Run config and automation shared by the incrementally maintained assets."""

from collections.abc import Iterable

import dagster as dg
from pydantic import Field

#: Materialise when an upstream changed. Every automation condition of the graph is further
#: gated on the upstreams' blocking checks (`gate_on_blocking_checks`, applied in
#: customer360/definitions.py): a failed ERROR check stops automation downstream in later runs
#: too, not only inside the run that failed.
EAGER = dg.AutomationCondition.eager()

#: True once the latest evaluation of every blocking check of every upstream asset passed.
BLOCKING_CHECKS_PASSED = dg.AutomationCondition.all_deps_blocking_checks_passed()


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
