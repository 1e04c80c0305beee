"""The churn assets up to labels and features on drops the default world does not cover: Kaggle's
first release over 2016 months with logs too short for the look-back, and a drop without any
label file. Real Spark, real Delta, real Dagster materialisations."""

import datetime as dt

import dagster as dg
import pytest

from assets import churn as churn_assets
from assets import keys
from customer360.churn import generate_kkbox
from resources.churn import ChurnSettingsResource
from resources.lakehouse import LakehouseResource
from resources.landing import LocalLandingZone
from resources.spark import SparkResource

pytestmark = pytest.mark.spark

UP_TO_FEATURES = [
    keys.churn_key(name)
    for name in ("members", "transactions", "user_logs", "train_labels", "transactions_clean",
                 "periods", "labels", "features")
]  # fmt: skip


def _materialise(home, churn=None):
    lakehouse = LakehouseResource(root_uri=str(home / "lake"))
    resources = {
        "spark": SparkResource(spark_config={}),
        "lakehouse": lakehouse,
        "landing": LocalLandingZone(root=str(home / "landing")),
        "churn": churn or ChurnSettingsResource(),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            dg.load_assets_from_modules([churn_assets]),
            selection=UP_TO_FEATURES,
            resources=resources,
            instance=instance,
        )
    return lakehouse, result


def _meta(result, key):
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return events[-1].materialization.metadata


def _check(result, name):
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return check


@pytest.fixture(scope="module")
def v1_2016(spark, tmp_path_factory):
    # Kaggle v1 files over Jan–Sep 2016; logs only from July (the look-back needs 90 days).
    home = tmp_path_factory.mktemp("v1-2016")
    generate_kkbox(
        home / "landing" / "kkbox", members=600, seed=3, layout="v1",
        start=dt.date(2016, 1, 1), end=dt.date(2016, 9, 30), log_months=3,
    )  # fmt: skip
    return _materialise(home)


def test_v1_drop_of_2016_detects_its_months_and_uses_train_csv(v1_2016):
    _, result = v1_2016
    assert result.success
    periods = _meta(result, keys.PERIODS_KEY)
    assert periods["scoring_month"].value == "2016-10"
    assert periods["validation_month"].value == "2016-09"  # train.csv labels September
    assert periods["train_months"].value == ["2016-08"]
    labels = _meta(result, keys.churn_key("labels"))
    assert labels["label_sources"].value == {
        "2016-08": "derived from transactions",
        "2016-09": "train.csv",
    }
    rates = labels["churn_rate_by_period"].value
    assert set(rates) == {"2016-08-01", "2016-09-01"} and 0.02 < rates["2016-09-01"] < 0.4


def test_short_logs_raise_the_coverage_warning_and_leave_engagement_missing(v1_2016):
    lakehouse, result = v1_2016
    check = _check(result, "engagement_coverage")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    not_covered = check.metadata["months_not_covered"].value
    assert not_covered["2016-08"]["logs"] == round(31 / 90, 4)
    assert "2016-08" in check.description and "missing (not zero)" in check.description
    features = lakehouse.read_arrow("churn", "features").to_pandas()
    august = features[features["period_start"] == dt.date(2016, 8, 1)]
    assert len(august) > 100
    # Logs start on 1 July: the last 30 days before August are known, 61–90 days back are not.
    assert august["active_share_w90"].isna().all() and august["active_share_w14"].notna().all()
    assert august["days_with_session"].notna().all()


def test_label_less_drop_labels_every_month_from_transactions(spark, tmp_path_factory):
    home = tmp_path_factory.mktemp("label-less")
    generate_kkbox(home / "landing" / "kkbox", members=500, seed=4, layout="label-less")
    assert not list((home / "landing" / "kkbox").glob("train*.csv"))
    _, result = _materialise(home, ChurnSettingsResource(max_train_months=2))
    assert result.success
    periods = _meta(result, keys.PERIODS_KEY)
    assert periods["scoring_month"].value == "2017-04"
    assert periods["validation_month"].value == "2017-02"  # March needs April's renewals
    assert periods["train_months"].value == ["2016-12", "2017-01"]
    labels = _meta(result, keys.churn_key("labels"))
    assert set(labels["label_sources"].value.values()) == {"derived from transactions"}
    assert labels["label_file_cross_check"].value == {}
    assert _check(result, "engagement_coverage").passed
