"""Identity resolution in gold: every source record → one unified customer (customer360.unify).

`gold/customer_source_link` (record → unified_customer_id, with the rule and score that linked
it), `gold/customer_match_pairs` (which rule linked which records, per profile) and
`gold/match_candidates` (pairs scored just below a rule's threshold, for human review) come from
one resolution run over silver/customer (source `dataverse`, keyed by cid) and every configured
CSV source (silver/crm_<source>). Ids are carried forward from the previous link table, so
re-runs and unrelated changes keep them.

A run is incremental when it can be: the records whose source rows changed (fingerprints against
the block index in ops/match_index) are re-scored against their block partners and only the
affected profiles are re-clustered (customer360.unify.incremental); the rules or the truth file
changing, or `full_refresh`, resolve everything again (customer360/gold/identity.py does the
work). docs/unify.md explains rules, ids, figures.
"""

from typing import Any

import dagster as dg

from assets.keys import (
    CANDIDATES_KEY,
    CUSTOMER_KEY,
    MATCH_PAIRS_KEY,
    SOURCE_LINK_KEY,
    crm_silver_key,
)
from assets.refresh import EAGER, RefreshConfig
from assets.table_docs import TABLE_DESCRIPTIONS
from customer360.gold.identity import (
    CANDIDATES,
    LINKS,
    PAIRS,
    TRUTH_ENV,
    IdentityBuild,
    IdentityError,
    refresh_identity,
)
from customer360.unify import config_path, unify_config
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

IDENTITY_KEYS = (SOURCE_LINK_KEY, MATCH_PAIRS_KEY, CANDIDATES_KEY)
__all__ = ["TRUTH_ENV", "customer_identity", "merge_rate_check"]


def _previous_merge_rate(context: dg.AssetExecutionContext) -> float | None:
    event = context.instance.get_latest_materialization_event(SOURCE_LINK_KEY)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("merge_rate")
    # None also when the previous build had no records at all (finance alone landed)
    return None if value is None or value.value is None else float(value.value)


def merge_rate_check(
    merge_rate: float | None, previous: float | None, tolerance: float
) -> dg.AssetCheckResult:
    """WARN when the merge rate moved by more than `tolerance` since the previous run."""
    moved = None if merge_rate is None or previous is None else abs(merge_rate - previous)
    return dg.AssetCheckResult(
        check_name="merge_rate_stable",
        asset_key=SOURCE_LINK_KEY,
        passed=moved is None or moved <= tolerance,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "merge_rate": merge_rate,
            "previous_merge_rate": previous,
            "change": moved,
            "max_merge_rate_change": tolerance,
        },
    )


@dg.multi_asset(
    name="gold__customer_source_link_pairs_and_candidates",
    specs=[
        dg.AssetSpec(
            key,
            deps=[CUSTOMER_KEY] + [crm_silver_key(m.source) for m in unify_config().csv_sources],
            kinds={"pyspark", "delta"},
            automation_condition=EAGER,
            description=TABLE_DESCRIPTIONS[key],
        )
        for key in IDENTITY_KEYS
    ],
    group_name="gold",
    check_specs=[
        dg.AssetCheckSpec("every_record_linked_once", asset=SOURCE_LINK_KEY, blocking=True),
        dg.AssetCheckSpec(
            "merge_rate_stable",
            asset=SOURCE_LINK_KEY,
            description="WARN when the merge rate moved more than quality.max_merge_rate_change "
            "(match_rules.yaml) since the previous run",
        ),
    ],
)
def customer_identity(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    unify_cfg = unify_config()
    try:
        build = refresh_identity(
            lambda: spark.spark_session, lakehouse.lake, unify_cfg, config.full_refresh,
            lakehouse.plot_path(f"unify-{context.run_id}"), context.log.info,
            engine="local" if spark.is_local else "spark",
        )  # fmt: skip
    except IdentityError as exc:
        raise dg.Failure(str(exc)) from None
    figures = build.facts["figures"]
    context.log.info(
        f"{figures['records']:,} records → {figures['profiles']:,} profiles "
        f"(merge rate {figures['merge_rate']}), {figures['review_candidates']:,} for review "
        f"[{build.refresh}]"
    )
    links, pairs, review = (build.written[name] for name in (LINKS, PAIRS, CANDIDATES))
    previous_rate = _previous_merge_rate(context)
    yield dg.MaterializeResult(
        asset_key=SOURCE_LINK_KEY,
        metadata=write_metadata(links, **_link_metadata(build, lakehouse)),
    )
    yield dg.MaterializeResult(
        asset_key=MATCH_PAIRS_KEY,
        metadata=write_metadata(
            pairs,
            pairs_per_rule=dg.MetadataValue.json(figures["pairs_per_rule"]),
            example_merges=dg.MetadataValue.json(build.example_merges),
        ),
    )
    yield dg.MaterializeResult(asset_key=CANDIDATES_KEY, metadata=write_metadata(review))
    yield dg.AssetCheckResult(
        check_name="every_record_linked_once",
        asset_key=SOURCE_LINK_KEY,
        passed=links.table_rows == figures["records"] and build.records_linked_twice == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"records": figures["records"], "link_rows": links.table_rows,
                  "records_linked_twice": build.records_linked_twice},
    )  # fmt: skip
    yield merge_rate_check(figures["merge_rate"], previous_rate, unify_cfg.max_merge_rate_change)


def _link_metadata(build: IdentityBuild, lakehouse: LakehouseResource) -> dict[str, Any]:
    """The resolution's figures, as the link table's metadata."""
    facts, figures, accuracy = build.facts, build.facts["figures"], build.facts.get("accuracy")
    quality: dict[str, Any] = {
        "refresh": build.refresh,
        "records": figures["records"],
        "records_per_source": dg.MetadataValue.json(figures["records_per_source"]),
        "profiles": figures["profiles"],
        "merge_rate": figures["merge_rate"],
        "cross_source_profiles": figures["cross_source_profiles"],
        "profile_sizes": dg.MetadataValue.json(figures["profile_sizes"]),
        "pairs_per_rule": dg.MetadataValue.json(figures["pairs_per_rule"]),
        # Full run: every pair compared; incremental run: the pairs it re-scored.
        "pairs_compared": figures["pairs_compared"],
        "decisions_per_rule": dg.MetadataValue.json(figures["decisions_per_rule"]),
        "review_candidates": figures["review_candidates"],
        "oversized_blocks": dg.MetadataValue.json(facts["oversized"]),
        "ids": dg.MetadataValue.json(facts["id_origin"]),
        "match_rules": dg.MetadataValue.path(str(config_path())),
        "quality_plot": lakehouse.plot_metadata(facts["plot"], "match quality"),
    }
    if build.refresh == "incremental":
        quality["incremental"] = dg.MetadataValue.json(facts["incremental"])
    if build.refresh == "full" and "phases" in facts:  # one-machine engine: seconds per phase
        quality["phases"] = dg.MetadataValue.json(facts["phases"])
    if build.reason:
        quality["full_refresh_reason"] = build.reason
    if accuracy is not None:
        quality.update(
            precision=accuracy["precision"],
            recall=accuracy["recall"],
            truth_pairs=accuracy["truth_pairs"],
            per_rule_accuracy=dg.MetadataValue.json(accuracy.get("per_rule", {})),
            false_positive_sample=dg.MetadataValue.json(accuracy["false_positive_sample"]),
            false_negative_sample=dg.MetadataValue.json(accuracy["false_negative_sample"]),
        )
    return quality
