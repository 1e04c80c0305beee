"""Retention: KKBox-format subscriptions → labels + features → model → predictions → dashboard,
and churn risk for the customer profile. Logic lives in customer360/churn (Dagster-free)."""

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from assets.keys import CHURN_RISK_KEY, DASHBOARD_KEY, MODEL_KEY, PREDICTIONS_KEY
from customer360.churn import (
    DashboardCurves,
    choose_threshold,
    churn_history,
    cross_check_labels,
    features_for_periods,
    label_periods,
    load_model,
    predict_churn,
    predict_churn_spark,
    predictions_to_customers,
    profit_curve,
    read_members,
    read_train,
    read_transactions,
    read_user_logs,
    render_dashboard,
    risk_band_column,
    save_model,
    scoring_candidates,
    subscription_windows,
    train_churn_model,
    transactions_clean,
    transactions_enhanced,
)
from customer360.churn.layout import (
    LABEL_FILES,
    LOG_FILES,
    MEMBERS_FILE,
    TRANSACTION_FILES,
    KKBoxLayout,
    KKBoxLayoutError,
    data_facts,
    layout_of_directory,
)
from customer360.churn.periods import ChurnPeriods, detect_periods
from resources.churn import ChurnSettingsResource
from resources.lakehouse import LakehouseResource, write_metadata
from resources.landing import LandingZoneResource
from resources.spark import SparkResource

GROUP = "churn"
KKBOX_AREA = "kkbox"
#: Kaggle's files per bronze table, in order; which are present decides the layout.
FILES = {
    "members": (MEMBERS_FILE,),
    "transactions": TRANSACTION_FILES,
    "user_logs": LOG_FILES,
    "train_labels": tuple(LABEL_FILES),
}
READERS = {
    "members": read_members,
    "transactions": read_transactions,
    "user_logs": read_user_logs,
    "train_labels": read_train,
}
DATE_COLUMN = {"transactions": "transaction_date", "user_logs": "date"}
#: Tables whose rows keep the file they came from (label months are decided per file).
WITH_SOURCE_FILE = {"transactions", "train_labels"}
PERIODS_KEY = dg.AssetKey(["churn", "periods"])
EAGER = dg.AutomationCondition.eager()
#: Unscored scoring candidates listed in metadata (the count covers all of them).
UNSCORED_SAMPLE = 50


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["churn", name])


def _landing_dir(landing: LandingZoneResource) -> Path:
    """Spark reads the landing files directly (they can be tens of GB)."""
    root = getattr(landing, "root", None)
    if root is None:
        raise dg.Failure("KKBox files are read from the local landing zone in this version")
    return Path(root) / KKBOX_AREA


def _layout(landing: LandingZoneResource) -> KKBoxLayout:
    try:
        return layout_of_directory(_landing_dir(landing))
    except KKBoxLayoutError as error:
        raise dg.Failure(f"{error} in {_landing_dir(landing)}: drop Kaggle's KKBox files") from None


def _read_kkbox(spark, landing, table: str):
    layout = _layout(landing)
    names = {
        "members": (layout.members,),
        "transactions": layout.transactions,
        "user_logs": layout.user_logs,
        "train_labels": layout.label_files,
    }[table]
    good, bad = None, None
    for name in names:
        g, b = READERS[table](spark, str(_landing_dir(landing) / name))
        if table in WITH_SOURCE_FILE:
            g = g.withColumn("source_file", F.lit(name))
        good = g if good is None else good.unionByName(g)
        bad = b if bad is None else bad.unionByName(b, allowMissingColumns=True)
    if good is None:  # a label-less drop: an empty label table keeps the graph uniform
        good = spark.createDataFrame([], "msno string, is_churn int, source_file string")
        bad = spark.createDataFrame(
            [], "source_file string, raw_line string, reason string, msno string"
        )
    return good, bad


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
        output_required=False,  # skipped (with the churn chain) while no KKBox data landed
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        landing: LandingZoneResource,
        lakehouse: LakehouseResource,
    ):
        if not landing.list_files(KKBOX_AREA, suffix=".csv"):
            reason = "no KKBox files landed in landing/kkbox/"
            context.log.info(f"churn/{table} skipped: {reason}")
            yield dg.AssetCheckResult(
                check_name="no_rejected_rows", passed=True, metadata={"skipped": reason}
            )
            return
        good, bad = _read_kkbox(spark.spark_session, landing, table)
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
    def _asset(spark: SparkResource, lakehouse: LakehouseResource):
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


def _periods_path(lakehouse: LakehouseResource) -> Path:
    return Path(lakehouse.root_uri) / "churn" / "periods.json"


def read_periods(lakehouse: LakehouseResource) -> ChurnPeriods:
    """The months chosen by the last churn/periods materialisation."""
    path = _periods_path(lakehouse)
    if not path.exists():
        raise dg.Failure("no churn periods yet: materialise churn/periods first")
    return ChurnPeriods.from_dict(json.loads(path.read_text()))


def _coverage_check(periods: ChurnPeriods) -> dg.AssetCheckResult:
    """WARN when the logs or transactions do not cover a month's 90-day look-back."""
    short = {
        month: shares for month, shares in periods.coverage.items() if min(shares.values()) < 1.0
    }
    described = "; ".join(
        f"{m}: logs {s['logs']:.0%}, transactions {s['transactions']:.0%}" for m, s in short.items()
    )
    return dg.AssetCheckResult(
        check_name="engagement_coverage",
        passed=not short,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"the data does not cover the engagement look-back of {described}: their activity "
            "features are missing (not zero)"
            if short
            else "logs and transactions cover every month's look-back"
        ),
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
    churn: ChurnSettingsResource,
) -> dg.MaterializeResult:
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
    path = _periods_path(lakehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(periods.as_dict(), indent=2))
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


def _cross_checks(derived: DataFrame, files: DataFrame, periods: ChurnPeriods) -> dict:
    """Each label file whose month the transactions also label, compared (not merged)."""
    return {
        name: {
            "month": f"{month:%Y-%m}",
            **cross_check_labels(
                derived.where(F.col("period_start") == F.lit(month)),
                files.where(F.col("source_file") == name),
            ),
        }
        for name, month in periods.cross_checked.items()
    }


@dg.asset(
    key=_key("labels"),
    deps=[_key("transactions"), _key("train_labels"), PERIODS_KEY],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="is_churn per member and month by the official labeller from the transactions "
    "wherever they allow it; a label file's labels for the month the transactions cannot label; "
    "label files for derivable months are cross-checked (disagreements in metadata).",
)
def churn_labels(spark: SparkResource, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    periods = read_periods(lakehouse)
    transactions = _read(spark, lakehouse, "transactions")
    files = _read(spark, lakehouse, "train_labels")
    by_file = {month: name for name, month in periods.file_only.items()}
    wanted = [p for p in periods.labelled if p not in by_file]
    checked = [m for m in periods.cross_checked.values() if m not in wanted]
    derived = label_periods(transactions, wanted + checked).cache() if wanted + checked else None
    parts = [derived.where(F.col("period_start").isin(wanted))] if wanted else []
    parts += [
        files.where(F.col("source_file") == by_file[p]).withColumn("period_start", F.lit(p))
        for p in periods.labelled
        if p in by_file
    ]
    labels = parts[0].select("msno", "period_start", "is_churn")
    for part in parts[1:]:
        labels = labels.unionByName(part.select("msno", "period_start", "is_churn"))
    checks = _cross_checks(derived, files, periods) if derived is not None else {}
    result = lakehouse.write(labels, "churn", "labels")
    rates = {
        str(r.period_start): round(r.rate, 4)
        for r in lakehouse.read(spark.spark_session, "churn", "labels")
        .groupBy("period_start")
        .agg(F.avg("is_churn").alias("rate"))
        .collect()
    }
    sources = {f"{p:%Y-%m}": by_file.get(p, "derived from transactions") for p in periods.labelled}
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            churn_rate_by_period=dg.MetadataValue.json(rates),
            label_sources=dg.MetadataValue.json(sources),
            label_file_cross_check=dg.MetadataValue.json(checks),
            label_file_disagreements=sum(c["disagree"] for c in checks.values()),
        )
    )


@dg.asset(
    key=_key("features"),
    deps=[_key("transactions_clean"), _key("user_logs"), _key("members"), PERIODS_KEY],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Transaction and engagement features for every training, validation and "
    "scoring month (only data before each month; engagement the logs do not cover is missing, "
    "not zero).",
)
def churn_features(spark: SparkResource, lakehouse: LakehouseResource):
    periods = read_periods(lakehouse)
    features = features_for_periods(
        _read(spark, lakehouse, "transactions_clean"),
        _read(spark, lakehouse, "user_logs"),
        _read(spark, lakehouse, "members"),
        periods.all,
    )
    result = lakehouse.write(features, "churn", "features")
    return dg.MaterializeResult(
        metadata=write_metadata(result, periods=[f"{p:%Y-%m}" for p in periods.all])
    )


def _frame(spark, lakehouse, periods: list[dt.date]) -> pd.DataFrame:
    labels = _read(spark, lakehouse, "labels").where(F.col("period_start").isin(periods))
    features = _read(spark, lakehouse, "features")
    return labels.join(features, ["msno", "period_start"], "left").toPandas()


def _md_table(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False) if rows else "none"


@dg.asset(
    key=MODEL_KEY,
    deps=[_key("labels"), _key("features")],
    group_name=GROUP,
    kinds={"scikitlearn", "delta"},
    automation_condition=EAGER,
    description="Gradient-boosted trees trained on the training months, tuned and calibrated "
    "on the validation month; persisted in the lake with its version, features and metrics.",
)
def churn_model(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
):
    periods = read_periods(lakehouse)
    frame = _frame(spark, lakehouse, periods.labelled)
    months = pd.to_datetime(frame["period_start"]).dt.date
    train = frame[months.isin(periods.train)]
    validation = frame[months == periods.validation]
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    bundle = train_churn_model(train, validation, version=version)
    bundle.info["periods"] = periods.as_dict()
    path = save_model(bundle, Path(lakehouse.root_uri) / "churn" / "models" / version)
    scores = bundle.metrics["validation"]
    context.log.info(f"model {version} ({periods.summary()}): {scores}")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "model_path": dg.MetadataValue.path(str(path)),
            "periods": periods.summary(),
            "average_precision": float(scores["average_precision"]),
            "roc_auc": float(scores["roc_auc"]),
            "log_loss": float(scores["log_loss"]),
            "base_rate": float(scores["base_rate"]),
            "calibration": dg.MetadataValue.md(_md_table(scores.get("calibration", []))),
            "feature_importance": dg.MetadataValue.md(
                _md_table(bundle.metrics.get("feature_importance", [])[:20])
            ),
            "params": dg.MetadataValue.json(bundle.params),
            "rows": {"train": len(train), "validation": len(validation)},
        }
    )


def _latest_model(lakehouse: LakehouseResource):
    models = sorted((Path(lakehouse.root_uri) / "churn" / "models").glob("*"))
    if not models:
        raise dg.Failure("no churn model yet: materialise churn/model first")
    return load_model(models[-1])


def _unscored(candidates: DataFrame, scored: DataFrame, clean: DataFrame, scoring: dt.date):
    """Scoring candidates without a prediction, each with why (few by design; listed)."""
    missing = candidates.join(scored.select("msno"), "msno", "left_anti")
    before = clean.where(F.col("transaction_date") < F.lit(scoring)).groupBy("msno").count()
    reason = F.when(
        F.col("count").isNull(), "no clean transaction before the scoring month"
    ).otherwise("no current subscription in the 30 days before the scoring month")
    return missing.join(before, "msno", "left").select("msno", "last_expire", reason.alias("why"))


@dg.asset(
    key=PREDICTIONS_KEY,
    deps=[MODEL_KEY, _key("features"), _key("transactions"), _key("transactions_clean")],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Calibrated churn probabilities for every member whose subscription expires in "
    "the detected scoring month (official scope), with the profit-maximising threshold chosen "
    "on the validation month; coverage of the candidates and the unscored ones with why.",
)
def churn_predictions(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    churn: ChurnSettingsResource,
):
    periods = read_periods(lakehouse)
    bundle = _latest_model(lakehouse)
    validation = _frame(spark, lakehouse, [periods.validation])
    scores = predict_churn(bundle, validation)
    curve = profit_curve(
        scores["churn_probability"], churn.economics, labels=validation["is_churn"]
    )
    choice = choose_threshold(curve)
    candidates = scoring_candidates(_read(spark, lakehouse, "transactions"), periods.scoring)
    candidates = candidates.dropDuplicates(["msno"]).cache()
    features = _read(spark, lakehouse, "features").where(
        F.col("period_start") == F.lit(periods.scoring)
    )
    scoring = candidates.select("msno").join(features, "msno")
    predictions = (
        predict_churn_spark(bundle, scoring)
        .withColumn("period_start", F.lit(periods.scoring))
        .withColumn("threshold", F.lit(choice.threshold))
        .withColumn("above_threshold", F.col("churn_probability") >= F.lit(choice.threshold))
        .withColumn("risk_band", risk_band_column("churn_probability", choice.threshold))
        .withColumn("model_version", F.lit(bundle.version))
    )
    result = lakehouse.write(predictions, "churn", "predictions")
    written = lakehouse.read(spark.spark_session, "churn", "predictions")
    above = written.where("above_threshold").count()
    unscored = _unscored(
        candidates, written, _read(spark, lakehouse, "transactions_clean"), periods.scoring
    ).toPandas()
    total = candidates.count()
    coverage = round(1 - len(unscored) / total, 4) if total else None
    curve.to_parquet(Path(lakehouse.root_uri) / "churn" / "profit_curve.parquet")
    context.log.info(
        f"{result.table_rows:,} of {total:,} candidates scored for {periods.scoring:%Y-%m} "
        f"(coverage {coverage}), {above:,} above {choice.threshold:.3f}"
    )
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            scoring_period=f"{periods.scoring:%Y-%m}",
            periods=periods.summary(),
            candidates=total,
            coverage=coverage,
            unscored=len(unscored),
            unscored_why=dg.MetadataValue.json(unscored["why"].value_counts().to_dict()),
            unscored_members=dg.MetadataValue.md(
                _md_table(unscored.head(UNSCORED_SAMPLE).astype(str).to_dict("records"))
            ),
            threshold=float(choice.threshold),
            expected_profit=float(choice.profit),
            members_above_threshold=above,
            model_version=bundle.version,
            economics=dg.MetadataValue.json(churn.economics.as_dict()),
        )
    )


@dg.asset(
    key=DASHBOARD_KEY,
    deps=[PREDICTIONS_KEY, _key("labels"), _key("members")],
    group_name=GROUP,
    kinds={"html"},
    automation_condition=EAGER,
    description="Self-contained HTML dashboard (opens from disk) for the detected scoring month: "
    "the training, validation and scoring months, predicted churners by city, age band, gender "
    "and registration channel, churn-rate trend, precision-recall and profit curves, top "
    "at-risk members.",
)
def churn_dashboard(
    spark: SparkResource, lakehouse: LakehouseResource, churn: ChurnSettingsResource
):
    session = spark.spark_session
    predictions = lakehouse.read(session, "churn", "predictions")
    first = predictions.select("threshold", "period_start").first()
    threshold, scoring = first["threshold"], first["period_start"]
    predictions_pdf = predictions.toPandas()
    members = (
        lakehouse.read(session, "churn", "members")
        .join(predictions.select("msno"), "msno")
        .toPandas()
    )
    history = churn_history(lakehouse.read(session, "churn", "labels"))
    bundle = _latest_model(lakehouse)
    periods = read_periods(lakehouse)
    curve = pd.read_parquet(Path(lakehouse.root_uri) / "churn" / "profit_curve.parquet")
    curves = DashboardCurves(
        precision_recall=bundle.metrics["precision_recall_curve"],
        profit=curve,
        threshold=threshold,
        economics=churn.economics,
        period_label=f"{scoring:%Y-%m}",
        months={
            "training": ", ".join(f"{p:%Y-%m}" for p in periods.train),
            "validation": f"{periods.validation:%Y-%m}",
            "scoring": f"{scoring:%Y-%m}",
        },
    )
    path = Path(lakehouse.root_uri) / "churn" / "dashboard" / f"churn-{scoring:%Y-%m}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    render_dashboard(predictions_pdf, members, history, curves, path)
    return dg.MaterializeResult(
        metadata={
            "dashboard_path": dg.MetadataValue.path(str(path)),
            "dashboard_url": lakehouse.link_metadata(path),
            "scoring_period": f"{scoring:%Y-%m}",
            "periods": periods.summary(),
            "members_scored": len(predictions_pdf),
        }
    )


@dg.asset(
    key=CHURN_RISK_KEY,
    deps=[PREDICTIONS_KEY, dg.AssetKey(["silver", "customer"])],
    group_name="gold",
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Churn probability and risk band per customer that maps to a KKBox member "
    "(msno derived from the customer number) for the scoring month of churn/predictions, "
    "ready for the profile and the Dynamics publish.",
)
def customer_churn_risk(spark: SparkResource, lakehouse: LakehouseResource):
    session = spark.spark_session
    predictions = lakehouse.read(session, "churn", "predictions")
    first = predictions.select("threshold", "period_start").first()
    customers = lakehouse.read(session, "silver", "customer").select(
        F.col("Id").alias("customer_id"), "cid"
    )
    # The member of customer `cid` is msno_for_customer(cid) (how the KKBox world is tied in).
    risk = predictions_to_customers(predictions, customers.select("cid"), first["threshold"], "cid")
    risk = risk.join(customers, "cid")
    result = lakehouse.write(risk, "gold", "customer_churn_risk")
    return dg.MaterializeResult(
        metadata=write_metadata(result, scoring_period=f"{first['period_start']:%Y-%m}")
    )
