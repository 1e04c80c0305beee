"""The stand-alone checks (assets/checks.py: executable on their own from the UI) are blocking,
and automation only builds downstream of an asset whose blocking checks passed. Automation must
therefore run them with each new materialisation of their asset; before, it never did, and the
daemon's first wave stopped at silver/customer (seen in the browser test: silver finance, unify,
gold and the publish targets never requested). Real instance, real automation evaluation."""

from __future__ import annotations

import dagster as dg

from assets.checks import one_current_row_per_id, one_row_per_id
from assets.keys import FINANCE_KEY
from assets.refresh import EAGER, gate_on_blocking_checks


@dg.asset
def upstream() -> None:
    return None


@dg.asset(deps=[upstream], automation_condition=EAGER)
def downstream() -> None:
    return None


def _check(condition: dg.AutomationCondition | None) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=upstream, name="stored_table_ok", blocking=True,
                    automation_condition=condition)  # fmt: skip
    def stored_table_ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    return stored_table_ok


def _requested_after_upstream(check: dg.AssetChecksDefinition) -> set[str]:
    """What one automation tick requests after `upstream` was materialised without its check."""
    defs = dg.Definitions(assets=gate_on_blocking_checks([upstream, downstream]),
                          asset_checks=[check])  # fmt: skip
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        dg.materialize([upstream], instance=instance)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=first.cursor)  # fmt: skip
        return {r.key.to_user_string() for r in result.results if r.true_subset.size}


def test_a_check_automation_never_runs_blocks_everything_below():
    assert "downstream" not in _requested_after_upstream(_check(None))


def test_an_eager_check_runs_with_its_asset_and_lets_automation_go_on():
    requested = _requested_after_upstream(_check(dg.AutomationCondition.eager()))
    assert "downstream" in requested
    assert "upstream:stored_table_ok" in requested


def test_the_stand_alone_checks_are_eager():
    for checks in (one_current_row_per_id, one_row_per_id):
        (spec,) = checks.check_specs
        assert spec.automation_condition is not None, spec.key
        assert "eager" in (spec.automation_condition.get_label() or spec.automation_condition.name)


# An optional upstream with a blocking check (as silver/crm_<source> has `keys_unique`).
@dg.asset(key=FINANCE_KEY)
def optional_source() -> None:
    return None


@dg.asset(deps=[upstream, optional_source], automation_condition=EAGER)
def enriched() -> None:
    return None


def _optional_checked(passed: bool) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=optional_source, name="keys_unique", blocking=True)
    def keys_unique() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=passed)

    return keys_unique


def _requested_with_optional(optional_landed: bool, check_passes: bool = True) -> set[str]:
    """What automation requests after `upstream` changed, the optional source having landed
    (its blocking check run with it) or never."""
    check = _optional_checked(check_passes)
    defs = dg.Definitions(assets=gate_on_blocking_checks([upstream, optional_source, enriched]),
                          asset_checks=[check])  # fmt: skip
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        if optional_landed:
            dg.materialize([optional_source, check], instance=instance, raise_on_error=False)
        dg.materialize([upstream], instance=instance)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=first.cursor)  # fmt: skip
        return {r.key.to_user_string() for r in result.results if r.true_subset.size}


def test_an_optional_upstream_that_never_landed_does_not_block():
    """Its blocking check never ran: nothing to wait for (before, a fresh `customer360 dev`
    without a second source never built identity, gold or the publish)."""
    assert "enriched" in _requested_with_optional(optional_landed=False)


def test_an_optional_upstream_that_landed_gates_with_its_blocking_checks():
    assert "enriched" in _requested_with_optional(optional_landed=True, check_passes=True)
    assert "enriched" not in _requested_with_optional(optional_landed=True, check_passes=False)
