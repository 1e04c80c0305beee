"""The churn assets as a graph on generated KKBox files: bronze → labels/features → model →
predictions → dashboard → customer churn risk, then the alert sensor and job."""

import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from assets import churn as churn_assets
from assets import churn_model, keys
from customer360.churn import generate_kkbox, msno_for_customer
from resources.churn import ChurnSettingsResource, NotifierResource
from resources.lakehouse import LakehouseResource
from resources.landing import LocalLandingZone
from resources.spark import SparkResource
from sensors.churn_alert import churn_alert_job, churn_alert_sensor

pytestmark = pytest.mark.spark

CUSTOMERS = list(range(1000, 1400))
FLIPPED = 5


@pytest.fixture(scope="module")
def churn_graph(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("c360")
    members = 3000
    ids = CUSTOMERS + list(range(50_000, 50_000 + members - len(CUSTOMERS)))
    landing = home / "landing" / "kkbox"
    generate_kkbox(landing, members=members, seed=1, customer_ids=ids)
    # Flip the first FLIPPED labels of train.csv (February, a month the transactions label
    # too): the cross-check must report exactly these, and the derived labels must win.
    lines = (landing / "train.csv").read_text().splitlines()
    for i in range(1, FLIPPED + 1):
        msno, label = lines[i].split(",")
        lines[i] = f"{msno},{1 - int(label)}"
    (landing / "train.csv").write_text("\n".join(lines) + "\n")
    lakehouse = LakehouseResource(root_uri=str(home / "lake"))
    silver = pa.table(
        {"Id": [f"id-{c}" for c in CUSTOMERS], "cid": pa.array(CUSTOMERS, pa.int64())}
    )
    lakehouse.write_arrow(silver, "silver", "customer")
    resources = {
        "spark": SparkResource(spark_config={}),
        "lakehouse": lakehouse,
        "landing": LocalLandingZone(root=str(home / "landing")),
        "churn": ChurnSettingsResource(alert_min_members=10),
        "notifier": NotifierResource(channel="file", queue_dir=str(home / "alerts")),
    }
    defs_assets = dg.load_assets_from_modules([churn_assets, churn_model])
    with dg.instance_for_test() as instance:
        result = dg.materialize(defs_assets, resources=resources, instance=instance)
        yield home, lakehouse, resources, instance, result


def _meta(result, key):
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return events[-1].materialization.metadata


def test_every_churn_asset_materialises_with_model_scores(churn_graph):
    _, _, _, _, result = churn_graph
    assert result.success
    model = _meta(result, keys.MODEL_KEY)
    # Generated churn is driven by the features; a model without signal sits at AUC 0.5 and
    # AP ≈ base rate (±0.02 at ~800 test members), so these bounds cannot pass by chance.
    assert model["roc_auc"].value >= 0.7
    assert model["average_precision"].value >= 2 * model["base_rate"].value
    assert "mean_predicted" in model["calibration"].value or "|" in model["calibration"].value


def test_features_carry_the_fitted_engagement_clock_and_fade_depths(churn_graph):
    _, lakehouse, _, _, result = churn_graph
    clock = _meta(result, keys.FEATURES_KEY)["fade_clock"].value
    assert clock["tau_days"] in (10.0, 14.0, 20.0, 28.0, 40.0)  # the grid fit_fade_model tries
    assert 0.1 < clock["onsets_per_member_year"] < 10 and 10 < clock["mean_fade_days"] < 1000
    features = lakehouse.read_arrow("churn", "features").to_pandas()
    depth = features["fade_depth"]
    assert depth.notna().mean() > 0.9 and depth.dropna().between(0, 0.95).all()  # 1 − floor
    # generated members fade at 12–15 % of billings: some rows deep, most near zero
    assert (depth > 0.5).mean() > 0.03 and (depth < 0.1).mean() > 0.6


def test_v2_periods_labels_and_the_label_file_cross_check(churn_graph):
    _, _, _, _, result = churn_graph
    periods = _meta(result, keys.PERIODS_KEY)
    assert periods["train_months"].value == [
        "2016-09", "2016-10", "2016-11", "2016-12", "2017-01", "2017-02"
    ]  # fmt: skip
    assert periods["validation_month"].value == "2017-03"  # train_v2.csv
    assert periods["scoring_month"].value == "2017-04"
    labels = _meta(result, keys.churn_key("labels"))
    assert labels["label_sources"].value["2017-03"] == "train_v2.csv"
    assert labels["label_sources"].value["2017-02"] == "derived from transactions"
    check = labels["label_file_cross_check"].value["train.csv"]
    assert check["month"] == "2017-02" and check["both"] > 500
    assert check["disagree"] == FLIPPED == len(check["disagreements"])
    assert check["only_in_file"] == 0 and check["only_derived"] == 0
    assert labels["label_file_disagreements"].value == FLIPPED


def test_predictions_are_probabilities_with_a_profit_threshold(churn_graph):
    _, lakehouse, _, _, result = churn_graph
    predictions = lakehouse.read_arrow("churn", "predictions").to_pandas()
    assert len(predictions) > 100
    p = predictions["churn_probability"]
    assert p.between(0, 1).all() and p.nunique() > 20  # probabilities, not 0/1 labels
    meta = _meta(result, keys.PREDICTIONS_KEY)
    assert meta["scoring_period"].value == "2017-04"
    assert meta["coverage"].value >= 0.95
    assert meta["unscored"].value == meta["candidates"].value - len(predictions)
    threshold = meta["threshold"].value
    assert meta["members_above_threshold"].value == int((p >= threshold).sum())


def test_dashboard_file_and_customer_enrichment(churn_graph):
    _, lakehouse, _, _, result = churn_graph
    path = _meta(result, keys.DASHBOARD_KEY)["dashboard_path"].value
    html = Path(path).read_text(encoding="utf-8")
    assert html.count("<svg") >= 6 and "http://" not in html.split("<svg")[0]
    assert path.endswith("churn-2017-04.html")
    for fact in ("Training months", "2016-09, 2016-10, 2016-11, 2016-12, 2017-01, 2017-02",
                 "Validation month",
                 "2017-03", "Scoring month", "2017-04"):  # fmt: skip
        assert fact in html
    assert _meta(result, keys.CHURN_RISK_KEY)["scoring_period"].value == "2017-04"
    risk = lakehouse.read_arrow("gold", "customer_churn_risk").to_pylist()
    assert risk and all(r["cid"] in CUSTOMERS for r in risk)
    assert all(r["msno"] == msno_for_customer(r["cid"]) for r in risk)
    assert {r["churn_risk_band"] for r in risk} <= {"low", "medium", "high"}


def test_alert_sensor_fires_once_per_prediction_run(churn_graph):
    home, _, resources, instance, _ = churn_graph
    context = dg.build_sensor_context(instance=instance, resources={"churn": resources["churn"]})
    request = churn_alert_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("churn-alert:")
    again = churn_alert_sensor(
        dg.build_sensor_context(
            instance=instance, cursor=context.cursor, resources={"churn": resources["churn"]}
        )
    )
    assert isinstance(again, dg.SkipReason)
    run = churn_alert_job.execute_in_process(
        run_config=request.run_config, resources=resources, instance=instance
    )
    assert run.success
    messages = list((home / "alerts").glob("*.json"))
    assert len(messages) == 1
    body = json.loads(messages[0].read_text())
    assert "predicted_churners" in json.dumps(body)
    assert "2017-04" in body["subject"]
