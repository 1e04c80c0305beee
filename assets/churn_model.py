"""Retention, second half: the churn model (trained on the detected training months, tuned and
calibrated on the validation month), the scoring month's predictions, the dashboard and the
churn risk per customer. The inputs (periods, labels, features) are declared in
assets/churn.py; the logic lives in customer360/churn (Dagster-free)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from pyspark.sql import functions as F

from assets.keys import (
    CHURN_RISK_KEY,
    CUSTOMER_KEY,
    DASHBOARD_KEY,
    FEATURES_KEY,
    LABELS_KEY,
    MODEL_KEY,
    PREDICTIONS_KEY,
    churn_key,
)
from assets.skipping import kkbox_not_landed, skipped_result
from customer360.churn import choose_threshold, churn_history, profit_curve, scoring_candidates
from customer360.churn.periods import ChurnPeriods, periods_path
from customer360.churn.training import labelled_rows, scope_for_periods
from resources.churn import ChurnSettingsResource
from resources.lakehouse import LakehouseResource, write_metadata
from resources.landing import LandingZoneResource
from resources.spark import SparkResource

GROUP = "churn"
EAGER = dg.AutomationCondition.eager()
#: Unscored scoring candidates listed in metadata (the count covers all of them).
UNSCORED_SAMPLE = 50


def _read(spark: SparkResource, lakehouse: LakehouseResource, name: str):
    return lakehouse.read(spark.spark_session, "churn", name)


def _periods(lakehouse: LakehouseResource) -> ChurnPeriods:
    try:
        return ChurnPeriods.load(periods_path(lakehouse.root_uri))
    except FileNotFoundError:
        raise dg.Failure("no churn periods yet: materialise churn/periods first") from None


def _frame(spark, lakehouse, months: list[dt.date]) -> pd.DataFrame:
    """Labelled rows of `months` in the scoring scope (the population the model will score)."""
    labels = _read(spark, lakehouse, "labels").where(F.col("period_start").isin(months))
    scope = scope_for_periods(_read(spark, lakehouse, "transactions"), months)
    return labelled_rows(labels, _read(spark, lakehouse, "features"), scope).toPandas()


def _md_table(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False) if rows else "none"


@dg.asset(
    key=MODEL_KEY,
    deps=[LABELS_KEY, FEATURES_KEY, churn_key("transactions")],
    group_name=GROUP,
    kinds={"scikitlearn", "delta"},
    automation_condition=EAGER,
    description="Two stages — gradient-boosted trees on the listening, a logistic regression "
    "for the account and the member — trained on the training months, tuned and calibrated on "
    "the validation month; persisted in the lake with its version, features and metrics.",
)
def churn_model(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    landing: LandingZoneResource,
):
    reason = kkbox_not_landed(landing)
    if reason is not None:  # no model trained; an earlier drop's model stays the latest
        return skipped_result(context, reason)
    from customer360.churn.model import save_model, train_churn_model  # scikit-learn: here only

    periods = _periods(lakehouse)
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
    from customer360.churn.model import load_model  # scikit-learn: here only

    models = sorted((Path(lakehouse.root_uri) / "churn" / "models").glob("*"))
    if not models:
        raise dg.Failure("no churn model yet: materialise churn/model first")
    return load_model(models[-1])


@dg.asset(
    key=PREDICTIONS_KEY,
    deps=[MODEL_KEY, FEATURES_KEY, churn_key("transactions"), churn_key("transactions_clean")],
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
    landing: LandingZoneResource,
    churn: ChurnSettingsResource,
):
    reason = kkbox_not_landed(landing)
    if reason is not None:
        return skipped_result(context, reason)
    from customer360.churn.model import predict_churn  # scikit-learn: here only
    from customer360.churn.scoring import score_month, unscored_candidates

    periods = _periods(lakehouse)
    bundle = _latest_model(lakehouse)
    validation = _frame(spark, lakehouse, [periods.validation])
    scores = predict_churn(bundle, validation)
    curve = profit_curve(
        scores["churn_probability"], churn.economics, labels=validation["is_churn"]
    )
    choice = choose_threshold(curve)
    candidates = scoring_candidates(_read(spark, lakehouse, "transactions"), periods.scoring)
    candidates = candidates.dropDuplicates(["msno"]).cache()
    predictions = score_month(
        bundle, _read(spark, lakehouse, "features"), candidates, periods.scoring, choice.threshold
    )
    result = lakehouse.write(predictions, "churn", "predictions")
    written = lakehouse.read(spark.spark_session, "churn", "predictions")
    above = written.where("above_threshold").count()
    unscored = unscored_candidates(
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
    deps=[PREDICTIONS_KEY, LABELS_KEY, churn_key("members")],
    group_name=GROUP,
    kinds={"html"},
    automation_condition=EAGER,
    description="Self-contained HTML dashboard (opens from disk) for the detected scoring month: "
    "the training, validation and scoring months, predicted churners by city, age band, gender "
    "and registration channel, churn-rate trend, precision-recall and profit curves, top "
    "at-risk members.",
)
def churn_dashboard(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    landing: LandingZoneResource,
    churn: ChurnSettingsResource,
):
    reason = kkbox_not_landed(landing)
    if reason is not None:
        return skipped_result(context, reason)
    from customer360.churn.dashboard import DashboardCurves, render_dashboard  # matplotlib

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
    periods = _periods(lakehouse)
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
    deps=[PREDICTIONS_KEY, CUSTOMER_KEY],
    group_name="gold",
    kinds={"pyspark", "delta"},
    automation_condition=EAGER,
    description="Churn probability and risk band per customer that maps to a KKBox member "
    "(msno derived from the customer number) for the scoring month of churn/predictions, "
    "ready for the profile and the Dynamics publish.",
)
def customer_churn_risk(
    context: dg.AssetExecutionContext,
    spark: SparkResource,
    lakehouse: LakehouseResource,
    landing: LandingZoneResource,
):
    reason = kkbox_not_landed(landing)
    if reason is not None:  # the profile goes on with the last good churn risk, or none
        return skipped_result(context, reason)
    from customer360.churn.enrichment import predictions_to_customers  # loads the model module

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
