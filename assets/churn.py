"""Retention: KKBox-format subscriptions → labels + features → model → predictions → dashboard,
and churn risk for the customer profile. Logic lives in customer360/churn (Dagster-free)."""

import datetime as dt
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
from resources.churn import ChurnSettingsResource
from resources.lakehouse import LakehouseResource, write_metadata
from resources.landing import LandingZoneResource
from resources.spark import SparkResource

GROUP = "churn"
KKBOX_AREA = "kkbox"
FILES = {
    "members": ("members_v3.csv",),
    "transactions": ("transactions.csv", "transactions_v2.csv"),
    "user_logs": ("user_logs.csv", "user_logs_v2.csv"),
    "train_labels": ("train_v2.csv",),
}
READERS = {
    "members": read_members,
    "transactions": read_transactions,
    "user_logs": read_user_logs,
    "train_labels": read_train,
}
DATE_COLUMN = {"transactions": "transaction_date", "user_logs": "date"}
EAGER = dg.AutomationCondition.eager()


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["churn", name])


def _local_path(landing: LandingZoneResource, name: str) -> str:
    """Spark reads the landing files directly (they can be tens of GB)."""
    root = getattr(landing, "root", None)
    if root is None:
        raise dg.Failure("KKBox files are read from the local landing zone in this version")
    return str(Path(root) / KKBOX_AREA / name)


def _read_kkbox(spark, landing, table: str):
    good, bad = None, None
    for name in FILES[table]:
        path = _local_path(landing, name)
        if not Path(path).exists():
            if name.endswith("_v2.csv") and table != "train_labels":
                continue  # transactions_v2/user_logs_v2 extend v1; a drop may lack them
            raise dg.Failure(f"{path} is missing: drop the Kaggle KKBox files in landing/kkbox/")
        g, b = READERS[table](spark, path)
        good = g if good is None else good.unionByName(g)
        bad = b if bad is None else bad.unionByName(b, allowMissingColumns=True)
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


@dg.asset(
    key=_key("labels"),
    deps=[_key("transactions"), _key("train_labels")],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="is_churn per member and period by the official labelling rules for the training "
    "and validation periods; train_v2.csv gives the test period's labels.",
)
def churn_labels(spark: SparkResource, lakehouse: LakehouseResource, churn: ChurnSettingsResource):
    transactions = _read(spark, lakehouse, "transactions")
    train_v2 = _read(spark, lakehouse, "train_labels")
    labels = (
        label_periods(transactions, churn.labelled_periods)
        .select("msno", "period_start", "is_churn")
        .unionByName(
            train_v2.select("msno", "is_churn").withColumn("period_start", F.lit(churn.test))
        )
    )
    result = lakehouse.write(labels, "churn", "labels")
    rates = {
        str(r.period_start): round(r.rate, 4)
        for r in lakehouse.read(spark.spark_session, "churn", "labels")
        .groupBy("period_start")
        .agg(F.avg("is_churn").alias("rate"))
        .collect()
    }
    return dg.MaterializeResult(
        metadata=write_metadata(result, churn_rate_by_period=dg.MetadataValue.json(rates))
    )


@dg.asset(
    key=_key("features"),
    deps=[_key("transactions_clean"), _key("user_logs"), _key("members")],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Transaction and activity features of the reference feature set for every "
    "training, validation, test and scoring period (only data before each period start).",
)
def churn_features(
    spark: SparkResource, lakehouse: LakehouseResource, churn: ChurnSettingsResource
):
    periods = [*churn.labelled_periods, churn.test, churn.scoring]
    features = features_for_periods(
        _read(spark, lakehouse, "transactions_clean"),
        _read(spark, lakehouse, "user_logs"),
        _read(spark, lakehouse, "members"),
        periods,
    )
    result = lakehouse.write(features, "churn", "features")
    return dg.MaterializeResult(metadata=write_metadata(result, periods=[str(p) for p in periods]))


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
    description="Gradient-boosted trees with class weighting, tuned on a time-based validation "
    "split and calibrated; persisted in the lake with its version, features and metrics.",
)
def churn_model(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    churn: ChurnSettingsResource,
):
    frame = _frame(spark, lakehouse, [*churn.labelled_periods, churn.test])
    periods = pd.to_datetime(frame["period_start"]).dt.date
    train = frame[periods.isin(churn.train)]
    validation = frame[periods == churn.validation]
    test = frame[periods == churn.test]
    version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    bundle = train_churn_model(train, validation, test, version=version)
    path = save_model(bundle, Path(lakehouse.root_uri) / "churn" / "models" / version)
    scores = bundle.metrics.get("test") or bundle.metrics["validation"]
    context.log.info(f"model {version}: {scores}")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "model_path": dg.MetadataValue.path(str(path)),
            "average_precision": float(scores["average_precision"]),
            "roc_auc": float(scores["roc_auc"]),
            "log_loss": float(scores["log_loss"]),
            "base_rate": float(scores["base_rate"]),
            "calibration": dg.MetadataValue.md(_md_table(scores.get("calibration", []))),
            "feature_importance": dg.MetadataValue.md(
                _md_table(bundle.metrics.get("feature_importance", [])[:20])
            ),
            "params": dg.MetadataValue.json(bundle.params),
            "rows": {"train": len(train), "validation": len(validation), "test": len(test)},
        }
    )


def _latest_model(lakehouse: LakehouseResource):
    models = sorted((Path(lakehouse.root_uri) / "churn" / "models").glob("*"))
    if not models:
        raise dg.Failure("no churn model yet: materialise churn/model first")
    return load_model(models[-1])


@dg.asset(
    key=PREDICTIONS_KEY,
    deps=[MODEL_KEY, _key("features"), _key("transactions")],
    group_name=GROUP,
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Calibrated churn probabilities for the members whose subscription expires in "
    "the scoring period, with the profit-maximising threshold chosen on the test period.",
)
def churn_predictions(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    churn: ChurnSettingsResource,
):
    bundle = _latest_model(lakehouse)
    test = _frame(spark, lakehouse, [churn.test])
    test_scores = predict_churn(bundle, test)
    curve = profit_curve(test_scores["churn_probability"], churn.economics, labels=test["is_churn"])
    choice = choose_threshold(curve)
    candidates = scoring_candidates(_read(spark, lakehouse, "transactions"), churn.scoring)
    features = _read(spark, lakehouse, "features").where(
        F.col("period_start") == F.lit(churn.scoring)
    )
    scoring = candidates.select("msno").join(features, "msno")
    predictions = (
        predict_churn_spark(bundle, scoring)
        .withColumn("period_start", F.lit(churn.scoring))
        .withColumn("threshold", F.lit(choice.threshold))
        .withColumn("above_threshold", F.col("churn_probability") >= F.lit(choice.threshold))
        .withColumn("risk_band", risk_band_column("churn_probability", choice.threshold))
        .withColumn("model_version", F.lit(bundle.version))
    )
    result = lakehouse.write(predictions, "churn", "predictions")
    above = (
        lakehouse.read(spark.spark_session, "churn", "predictions").where("above_threshold").count()
    )
    curve_path = Path(lakehouse.root_uri) / "churn" / "profit_curve.parquet"
    curve.to_parquet(curve_path)
    context.log.info(
        f"{result.table_rows:,} members scored, {above:,} above {choice.threshold:.3f}"
    )
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            scoring_period=str(churn.scoring),
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
    description="Self-contained HTML dashboard (opens from disk): predicted churners by city, age "
    "band, gender and registration channel, churn-rate trend, precision-recall and profit "
    "curves, top at-risk members.",
)
def churn_dashboard(
    spark: SparkResource, lakehouse: LakehouseResource, churn: ChurnSettingsResource
):
    session = spark.spark_session
    predictions = lakehouse.read(session, "churn", "predictions")
    threshold = predictions.select("threshold").first()[0]
    predictions_pdf = predictions.toPandas()
    members = (
        lakehouse.read(session, "churn", "members")
        .join(predictions.select("msno"), "msno")
        .toPandas()
    )
    history = churn_history(lakehouse.read(session, "churn", "labels"))
    bundle = _latest_model(lakehouse)
    curve = pd.read_parquet(Path(lakehouse.root_uri) / "churn" / "profit_curve.parquet")
    curves = DashboardCurves(
        precision_recall=bundle.metrics["precision_recall_curve"],
        profit=curve,
        threshold=threshold,
        economics=churn.economics,
        period_label=churn.scoring.strftime("%Y-%m"),
    )
    path = Path(lakehouse.root_uri) / "churn" / "dashboard" / f"churn-{churn.scoring:%Y-%m}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    render_dashboard(predictions_pdf, members, history, curves, path)
    return dg.MaterializeResult(
        metadata={
            "dashboard_path": dg.MetadataValue.path(str(path)),
            "dashboard_url": lakehouse.link_metadata(path),
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
    "(msno derived from the customer number), ready for the profile and the Dynamics publish.",
)
def customer_churn_risk(spark: SparkResource, lakehouse: LakehouseResource):
    session = spark.spark_session
    predictions = lakehouse.read(session, "churn", "predictions")
    threshold = predictions.select("threshold").first()[0]
    customers = lakehouse.read(session, "silver", "customer").select(
        F.col("Id").alias("customer_id"), "cid"
    )
    # The member of customer `cid` is msno_for_customer(cid) (how the KKBox world is tied in).
    risk = predictions_to_customers(predictions, customers.select("cid"), threshold, "cid")
    risk = risk.join(customers, "cid")
    result = lakehouse.write(risk, "gold", "customer_churn_risk")
    return dg.MaterializeResult(metadata=write_metadata(result))
