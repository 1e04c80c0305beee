"""The one way an asset says "nothing to build" (its source never landed) without Dagster's skip.

Not Dagster's skip (an output not yielded): an asset backfill — the UI's "Materialize all" —
counts a targeted asset with neither a materialisation nor a failure as stalled and ends
COMPLETED_FAILED, although its runs succeed. So such an asset materialises, writes nothing and
says why in its metadata and its checks. Shared by the churn assets (assets/churn.py,
assets/churn_model.py)."""

import dagster as dg

from resources.landing import LandingZoneResource

KKBOX_AREA = "kkbox"
#: Why every churn asset has nothing to build (metadata `skipped`, on each check too).
NOT_LANDED = "no KKBox files landed in landing/kkbox/"


def kkbox_not_landed(landing: LandingZoneResource) -> str | None:
    """The reason the churn chain is skipped, or None once KKBox files landed."""
    return None if landing.list_files(KKBOX_AREA, suffix=".csv") else NOT_LANDED


def skipped_result(
    context: dg.AssetExecutionContext, reason: str, checks: tuple[str, ...] = ()
) -> dg.MaterializeResult:
    """A materialisation that writes nothing and says why: churn is an optional enrichment.

    Not Dagster's skip (an output not yielded): an asset backfill — the UI's "Materialize all"
    — counts a targeted asset with neither a materialisation nor a failure as stalled and ends
    COMPLETED_FAILED. Tables of an earlier drop are left as they are (the last good churn risk
    stays the profile's). When KKBox files land, the landing sensor materialises the bronze
    tables and eager automation builds the rest of the chain on them."""
    context.log.info(f"{context.asset_key.to_user_string()} skipped: {reason}")
    return dg.MaterializeResult(
        metadata={"skipped": reason},
        check_results=[
            dg.AssetCheckResult(check_name=check, passed=True, metadata={"skipped": reason})
            for check in checks
        ],
    )
