"""Retention, first half: KKBox files in landing → bronze tables → transaction clean-up →
the training/validation/scoring months (`churn/periods`) → labels and features. The model, the
predictions, the dashboard and the churn risk are declared in assets/churn_model.py. Logic
lives in customer360/churn (Dagster-free); these assets only read, call and write."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from assets.keys import FEATURES_KEY, LABELS_KEY, PERIODS_KEY, churn_key
from assets.skipping import KKBOX_AREA, kkbox_not_landed, skipped_result
from customer360.churn import (
    subscription_windows,
    transactions_clean,
    transactions_enhanced,
)
from customer360.churn.drop import TABLE_FILES, read_drop_table
from customer360.churn.fade_job import fade_features
from customer360.churn.features import features_to_write, log_range
from customer360.churn.layout import KKBoxLayoutError, data_facts
from customer360.churn.periods import ChurnPeriods, detect_periods, periods_path
from customer360.churn.training import assemble_labels
from resources.churn import ChurnSettingsResource
from resources.lakehouse import LakehouseResource, write_metadata
from resources.landing import LandingZoneResource
from resources.spark import SparkResource

GROUP = "churn"
#: Kaggle's files per bronze table (the landing sensor fingerprints them).
FILES = TABLE_FILES
DATE_COLUMN = {"transactions": "transaction_date", "user_logs": "date"}
EAGER = dg.AutomationCondition.eager()


def _key(name: str) -> dg.AssetKey:
    return churn_key(name)


def _landing_dir(landing: LandingZoneResource) -> Path:
    """Spark reads the landing files directly (they can be tens of GB)."""
    root = getattr(landing, "root", None)
    if root is None:
        raise dg.Failure("KKBox files are read from the local landing zone in this version")
    return Path(root) / KKBOX_AREA


def _read_table(spark, landing: LandingZoneResource, table: str):
    directory = _landing_dir(landing)
    try:
        return read_drop_table(spark, directory, table)
    except KKBoxLayoutError as error:
        raise dg.Failure(f"{error} in {directory}: drop Kaggle's KKBox files") from None


def _bronze_asset(table: str) -> dg.AssetsDefinition:
    key = _key(table)
    partition = DATE_COLUMN.get(table)

    @dg.asset(
        key=key,
        group_name=GROUP,
        kinds={"pyspark", "delta", "csv"},
        description=f"KKBox {', '.join(FILES[table])} from landing/kkbox/, typed"
        + (", partitioned by month" if partition else "")
        + "; rejected rows go to churn/_rejected with the reason.",
        check_specs=[dg.AssetCheckSpec("no_rejected_rows", asset=key)],
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        landing: LandingZoneResource,
        lakehouse: LakehouseResource,
    ):
        reason = kkbox_not_landed(landing)
        if reason is not None:
            yield skipped_result(context, reason, ("no_rejected_rows",))
            return
        good, bad = _read_table(spark.spark_session, landing, table)
        partition_by = None
        if partition:
            good = good.withColumn("month", F.date_format(partition, "yyyy-MM"))
            partition_by = ["month"]
        result = lakehouse.write(good, "churn", table, partition_by=partition_by)
        rejected = bad.select(
            F.lit(table).alias("source_table"),
            F.col("source_file").cast("string"),
            F.col("raw_line").cast("string"),
            F.col("reason").cast("string"),
        )
        # Few rows by nature; replaced per source table so a re-run converges (even to none).
        rejected_rows = rejected.toArrow()
        lakehouse.lake.replace_where(
            rejected_rows,
            "churn",
            "_rejected",
            {"source_table": table},
            partition_by=["source_table"],
        )
        rejected_count = rejected_rows.num_rows
        context.log.info(f"{table}: {result.rows_written:,} rows, {rejected_count:,} rejected")
        yield dg.MaterializeResult(
            metadata=write_metadata(result, rejected_rows=rejected_count),
            check_results=[
                dg.AssetCheckResult(
                    check_name="no_rejected_rows",
                    passed=rejected_count == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"rejected_rows": rejected_count},
                )
            ],
        )

    return _bronze


kkbox_bronze_assets = [_bronze_asset(t) for t in FILES]


def _read(spark, lakehouse, name: str):
    return lakehouse.read(spark.spark_session, "churn", name)


def _derived_asset(
    name: str,
    inputs: tuple[str, ...],
    transform: Callable[..., DataFrame],
    description: str,
) -> dg.AssetsDefinition:
    """churn/<name> = transform(*churn/<inputs>): one pure Spark function, read → write."""

    @dg.asset(
        key=_key(name),
        deps=[_key(i) for i in inputs],
        group_name=GROUP,
        kinds={"pyspark", "delta"},
        automation_condition=EAGER,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        lakehouse: LakehouseResource,
        landing: LandingZoneResource,
    ):
        reason = kkbox_not_landed(landing)
        if reason is not None:
            return skipped_result(context, reason)
        frame = transform(*(_read(spark, lakehouse, i) for i in inputs))
        return dg.MaterializeResult(metadata=write_metadata(lakehouse.write(frame, "churn", name)))

    return _asset


churn_transactions_clean = _derived_asset(
    "transactions_clean",
    ("transactions",),
    transactions_clean,
    "Transactions in the official order with duplicates and cancelled-plan noise resolved "
    "(customer360.churn.transactions_clean).",
)
churn_subscription_windows = _derived_asset(
    "subscription_windows",
    ("transactions_clean",),
    subscription_windows,
    "Continuous subscription windows per member (gaps of more than 30 days split).",
)
churn_transactions_enhanced = _derived_asset(
    "transactions_enhanced",
    ("transactions_clean", "subscription_windows"),
    transactions_enhanced,
    "Transactions with their subscription window and plan/price/auto-renew changes.",
)


def read_periods(lakehouse: LakehouseResource) -> ChurnPeriods:
    """The months chosen by the last churn/periods materialisation."""
    try:
        return ChurnPeriods.load(periods_path(lakehouse.root_uri))
    except FileNotFoundError:
        raise dg.Failure("no churn periods yet: materialise churn/periods first") from None


def _coverage_check(periods: ChurnPeriods) -> dg.AssetCheckResult:
    """WARN when the logs or transactions do not cover a month's 90-day look-back."""
    short = periods.short_coverage()
    return dg.AssetCheckResult(
        check_name="engagement_coverage",
        passed=not short,
        severity=dg.AssetCheckSeverity.WARN,
        description=periods.coverage_note(),
        metadata={
            "months_not_covered": dg.MetadataValue.json(short),
            "coverage": dg.MetadataValue.json(dict(periods.coverage)),
        },
    )


@dg.asset(
    key=PERIODS_KEY,
    deps=[_key("transactions"), _key("user_logs"), _key("train_labels")],
    group_name=GROUP,
    kinds={"pyspark", "json"},
    automation_condition=EAGER,
    description="Training, validation and scoring months detected from the drop (the month "
    "after the last transaction is scored; the newest labelled month validates; earlier "
    "labelled months with log coverage train), overridable by C360_CHURN_* settings.",
    check_specs=[dg.AssetCheckSpec("engagement_coverage", asset=PERIODS_KEY)],
)
def churn_periods(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    landing: LandingZoneResource,
    churn: ChurnSettingsResource,
) -> dg.MaterializeResult:
    reason = kkbox_not_landed(landing)
    if reason is not None:
        return skipped_result(context, reason, ("engagement_coverage",))
    label_files = [
        r["source_file"]
        for r in _read(spark, lakehouse, "train_labels").select("source_file").distinct().collect()
    ]
    facts = data_facts(
        _read(spark, lakehouse, "transactions"), _read(spark, lakehouse, "user_logs"), label_files
    )
    try:
        periods = detect_periods(facts, churn.overrides)
    except ValueError as error:
        raise dg.Failure(f"churn periods: {error}") from None
    periods.save(periods_path(lakehouse.root_uri))
    context.log.info(f"churn periods: {periods.summary()}")
    info = periods.as_dict()
    return dg.MaterializeResult(
        metadata={
            "periods": periods.summary(),
            "train_months": info["train"],
            "validation_month": info["validation"],
            "scoring_month": info["scoring"],
            "label_file_months": dg.MetadataValue.json(info["label_file_months"]),
            "reasons": dg.MetadataValue.json(info["reasons"]),
            "data_range": f"transactions {facts.transactions_first}..{facts.transactions_last}, "
            f"logs {facts.logs_first}..{facts.logs_last}",
        },
        check_results=[_coverage_check(periods)],
    )


@dg.asset(
    key=LABELS_KEY,
    deps=[_key("transactions"), _key("train_labels"), PERIODS_KEY],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="is_churn per member and month by the official labeller from the transactions "
    "wherever they allow it; a label file's labels for the month the transactions cannot label; "
    "label files for derivable months are cross-checked (disagreements in metadata).",
)
def churn_labels(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    landing: LandingZoneResource,
) -> dg.MaterializeResult:
    reason = kkbox_not_landed(landing)
    if reason is not None:
        return skipped_result(context, reason)
    labels = assemble_labels(
        _read(spark, lakehouse, "transactions"),
        _read(spark, lakehouse, "train_labels"),
        read_periods(lakehouse),
    )
    result = lakehouse.write(labels.labels, "churn", "labels")
    rates = {
        str(r.period_start): round(r.rate, 4)
        for r in lakehouse.read(spark.spark_session, "churn", "labels")
        .groupBy("period_start")
        .agg(F.avg("is_churn").alias("rate"))
        .collect()
    }
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            churn_rate_by_period=dg.MetadataValue.json(rates),
            label_sources=dg.MetadataValue.json(labels.sources),
            label_file_cross_check=dg.MetadataValue.json(labels.cross_checks),
            label_file_disagreements=labels.disagreements,
        )
    )


@dg.asset(
    key=FEATURES_KEY,
    deps=[_key("transactions_clean"), _key("user_logs"), _key("members"), PERIODS_KEY],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Transaction and engagement features for every training, validation and "
    "scoring month (only data before each month; engagement the logs do not cover is missing, "
    "not zero).",
)
def churn_features(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    landing: LandingZoneResource,
):
    reason = kkbox_not_landed(landing)
    if reason is not None:
        return skipped_result(context, reason)
    periods = read_periods(lakehouse)
    clean = _read(spark, lakehouse, "transactions_clean")
    logs = _read(spark, lakehouse, "user_logs")
    span = log_range(logs)  # one scan for both the window features and the fade model
    fade, clock = fade_features(clean, logs, periods.all, span)
    members = _read(spark, lakehouse, "members")
    with features_to_write(clean, logs, members, periods.all, logs=span, fade=fade) as features:
        result = lakehouse.write(features, "churn", "features")
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            periods=[f"{p:%Y-%m}" for p in periods.all],
            # the engagement model's clock, fitted on the logs (docs/churn.md §5)
            fade_clock=dg.MetadataValue.json(
                {
                    "tau_days": clock.tau,
                    "onsets_per_member_year": round(clock.onset_rate * 365, 3),
                    "mean_fade_days": round(1 / clock.recover_rate, 1),
                }
            ),
        )
    )
