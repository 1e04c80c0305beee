"""End to end on generated data: files → readers → labels → features → model → predictions →
profit threshold → dashboard (rendered by Chromium) → e-mail alert over real SMTP.

4,000 members give about 1,100 labelled members per month, 11–14% churners. Periods:
train on Jan 2017 (labels by our labeller), tune and calibrate on Feb 2017, evaluate on
Mar 2017 using the generator's train_v2.csv, which neither tuning nor calibration saw (its
future transactions are not even in the files, as with Kaggle).
"""

from __future__ import annotations

import datetime as dt
import math
from email import message_from_bytes, policy

import numpy as np
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from churn_browser import chart_census, dump_dom
from pyspark.sql import functions as F
from sklearn.metrics import average_precision_score

from customer360.churn import (
    CHART_IDS,
    DashboardCurves,
    RetentionEconomics,
    SmtpNotifier,
    build_alert,
    choose_threshold,
    features_for_periods,
    generate_kkbox,
    label_periods,
    load_model,
    predict_churn,
    predict_churn_spark,
    profit_curve,
    read_members,
    read_train,
    read_transactions,
    read_user_logs,
    render_dashboard,
    save_model,
    train_churn_model,
    transactions_clean,
)
from customer360.churn.generator import _day, label_period_arrays
from tests.free_ports import free_port

pytestmark = pytest.mark.spark

JAN, FEB, MAR = dt.date(2017, 1, 1), dt.date(2017, 2, 1), dt.date(2017, 3, 1)


class _Inbox:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("c360")
    landing = root / "landing" / "kkbox"
    # Seven months of logs (from 2016-09) cover every window the Jan–Mar features look at
    # (January's 90-day look-back, most of its usual-level window); ten would only cost time.
    files = generate_kkbox(landing, members=4000, seed=0, log_months=7)

    tx_old, tx_old_bad = read_transactions(spark, files["transactions"])
    tx_new, tx_new_bad = read_transactions(spark, files["transactions_v2"])
    logs_old, _ = read_user_logs(spark, files["user_logs"])
    logs_new, _ = read_user_logs(spark, files["user_logs_v2"])
    members, members_bad = read_members(spark, files["members_v3"])
    train_v2, train_bad = read_train(spark, files["train_v2"])
    # The small files are checked for rejects here; the user logs' values are checked in
    # test_churn_generator (pandas) so this test scans the biggest file only once.
    rejected = (
        tx_old_bad.unionByName(tx_new_bad).select("reason")
        .unionByName(members_bad.select("reason")).unionByName(train_bad.select("reason"))
    )  # fmt: skip
    rejected_count = rejected.count()

    transactions = tx_old.unionByName(tx_new).cache()
    logs = logs_old.unionByName(logs_new)
    clean = transactions_clean(transactions)
    labels = (
        label_periods(transactions, [JAN, FEB])
        .select("msno", "period_start", "is_churn")
        .unionByName(train_v2.withColumn("period_start", F.lit(MAR)))
    )
    features = features_for_periods(clean, logs, members, [JAN, FEB, MAR])
    # Left join: a label without features would show up as NULL features.
    frame = labels.join(features, ["msno", "period_start"], "left").toPandas()
    members_pdf = members.toPandas()
    transactions.unpersist()
    return {
        "root": root,
        "files": files,
        "rejected_count": rejected_count,
        "frame": frame,
        "members": members_pdf,
    }


def test_files_read_without_rejects_and_every_label_has_features(pipeline):
    assert pipeline["rejected_count"] == 0
    frame = pipeline["frame"]
    assert frame["days_total"].notna().all()
    counts = frame.groupby("period_start").size()
    assert counts.between(900, 1400).all(), counts.to_dict()
    rates = frame.groupby("period_start")["is_churn"].mean()
    assert rates.between(0.08, 0.2).all(), rates.to_dict()


def test_spark_labeller_matches_the_generators_port_on_generated_data(pipeline):
    files = pipeline["files"]
    raw = pd.concat([pd.read_csv(files["transactions"]), pd.read_csv(files["transactions_v2"])])
    for column in ("transaction_date", "membership_expire_date"):
        raw[column] = pd.to_datetime(raw[column].astype(str), format="%Y%m%d").map(
            lambda t: _day(t.date())
        )
    raw = raw.rename(columns={"msno": "member"})
    frame = pipeline["frame"]
    for period in (JAN, FEB):
        ported = label_period_arrays(raw, period)
        spark_labels = frame[frame["period_start"] == period]
        assert dict(zip(ported["member"], ported["is_churn"], strict=True)) == dict(
            zip(spark_labels["msno"], spark_labels["is_churn"], strict=True)
        )


def test_model_predictions_dashboard_and_alert(pipeline, spark, tmp_path):
    frame = pipeline["frame"]
    by_period = {p: frame[frame["period_start"] == p] for p in (JAN, FEB, MAR)}
    bundle = train_churn_model(
        by_period[JAN], by_period[FEB], by_period[MAR], version="it", importance_repeats=1
    )
    test = bundle.metrics["test"]
    base_rate = test["base_rate"]

    # Why this cannot pass by chance. With n1 ≈ 140 churners among n ≈ 1,100 members, a model
    # with no information has ROC AUC ~ N(0.5, sd = sqrt((n+1) / (12·n1·n0)) ≈ 0.026), so
    # AUC ≥ 0.7 is ~7.7 sd out (p < 1e-13); its average precision is centred on the base rate
    # (≈ 0.125) with sd ≈ 0.015, so AP ≥ 2 × base rate is ~8 sd out. The permutation null below
    # measures that distribution on these very labels. (Seeds 0–3 of the generator gave
    # AUC 0.76–0.80 and AP 2.7–3.5 × the base rate; seed 0 is used.)
    y = by_period[MAR]["is_churn"].to_numpy()
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    auc_null_sd = math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    rng = np.random.default_rng(0)
    null_ap = [average_precision_score(y, rng.random(len(y))) for _ in range(200)]
    assert test["roc_auc"] >= 0.7
    assert (test["roc_auc"] - 0.5) / auc_null_sd > 6
    assert test["average_precision"] >= 2 * base_rate
    assert test["average_precision"] > max(null_ap)  # beats all 200 random orderings

    # Persist and reload, then score the held-out month (pandas and Spark give the same).
    reloaded = load_model(save_model(bundle, pipeline["root"] / "models" / "churn"))
    march = by_period[MAR]
    predictions = predict_churn(reloaded, march)
    assert predictions["churn_probability"].nunique() > 10
    sample = spark.createDataFrame(march.head(50)).coalesce(1)  # one Python worker is enough
    on_spark = predict_churn_spark(reloaded, sample).toPandas()
    merged = on_spark.merge(predictions, on="msno", suffixes=("_spark", ""))
    assert len(merged) == 50
    np.testing.assert_allclose(merged["churn_probability_spark"], merged["churn_probability"])

    economics = RetentionEconomics()
    curve = profit_curve(predictions["churn_probability"], economics, labels=march["is_churn"])
    choice = choose_threshold(curve)
    assert choice.targeted > 0 and choice.profit > 0
    history = frame.groupby("period_start", as_index=False)["is_churn"].mean()
    history = history.rename(columns={"is_churn": "churn_rate"})
    curves = DashboardCurves(
        precision_recall=bundle.metrics["precision_recall_curve"],
        profit=curve,
        threshold=choice.threshold,
        economics=economics,
        period_label="2017-03",
    )
    scored = pipeline["members"][pipeline["members"]["msno"].isin(predictions["msno"])]
    dashboard = render_dashboard(
        predictions, scored, history, curves, tmp_path / "churn-2017-03.html"
    )
    census = chart_census(dump_dom(dashboard, tmp_path / "chromium"))
    assert sorted(census.charts) == sorted(CHART_IDS)
    assert all(c["svg"] == 1 and c["path"] > 10 for c in census.charts.values()), census.charts

    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        alert = build_alert(
            "2017-03",
            predictions,
            choice.threshold,
            expected_profit=choice.profit,
            economics=economics,
            dashboard_path=dashboard,
        )
        SmtpNotifier("127.0.0.1", port, "churn@c360.test", ["crm@c360.test"]).send(alert)
    finally:
        controller.stop()
    message = message_from_bytes(inbox.envelopes[0].content, policy=policy.default)
    churners = int((predictions["churn_probability"] >= choice.threshold).sum())
    assert message["Subject"] == f"Churn risk 2017-03: {churners:,} predicted churners"
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "churn-2017-03.html"
    assert attachment.get_content() == dashboard.read_text(encoding="utf-8")
