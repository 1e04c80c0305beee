"""The model on synthetic feature frames (pandas, no Spark): tuning, calibration, persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from customer360.churn.features import FEATURE_COLUMNS
from customer360.churn.model import (
    FeatureMismatchError,
    load_model,
    predict_churn,
    save_model,
    train_churn_model,
)
from customer360.churn.two_stage import TREE_FEATURES


def _frame(rows: int, seed: int) -> pd.DataFrame:
    """Random features; churn depends on auto-renew and listening days only."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    frame["last_is_auto_renew"] = (rng.random(rows) < 0.8).astype(float)
    frame["days_with_session"] = rng.integers(0, 31, rows).astype(float)
    frame["city"] = rng.choice([1.0, 5.0, 13.0, np.nan], rows)
    logit = -1.0 - 3.0 * frame["last_is_auto_renew"] - 0.2 * (frame["days_with_session"] - 15)
    frame["is_churn"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.insert(0, "msno", [f"m{seed}-{i}" for i in range(rows)])
    return frame


@pytest.fixture(scope="module")
def bundle():
    grid = [
        {"learning_rate": 0.1, "max_leaf_nodes": 7},
        {"learning_rate": 0.1, "max_leaf_nodes": 15},
    ]
    return train_churn_model(
        _frame(1500, 1), _frame(800, 2), _frame(800, 3), grid=grid, version="v-test",
        importance_repeats=2,
    )  # fmt: skip


def test_metrics_are_plain_json_and_the_model_beats_the_base_rate(bundle):
    metrics = bundle.metrics
    json.dumps(metrics)  # plain dicts/lists/numbers only
    assert [g["params"] for g in metrics["grid"]] == [
        {"learning_rate": 0.1, "max_leaf_nodes": 7},
        {"learning_rate": 0.1, "max_leaf_nodes": 15},
    ]
    assert metrics["headline"] == "test"
    test = metrics["test"]
    assert test["rows"] == 800
    assert test["average_precision"] > 2 * test["base_rate"]
    assert test["roc_auc"] > 0.75
    assert 0 < test["log_loss"] < 0.6
    table = test["calibration"]
    assert [row["bin"] for row in table] == list(range(1, 11))
    assert sum(row["rows"] for row in table) == 800
    # Calibrated: the deciles' mean prediction tracks the observed rate overall.
    mean_predicted = sum(r["mean_predicted"] * r["rows"] for r in table) / 800
    assert mean_predicted == pytest.approx(test["base_rate"], abs=0.05)
    top = [row["feature"] for row in metrics["feature_importance"][:2]]
    assert set(top) == {"last_is_auto_renew", "days_with_session"}
    assert metrics["validation"]["optimistic"] is True


def test_predictions_are_probabilities_not_labels(bundle):
    predictions = predict_churn(bundle, _frame(500, 4))
    assert list(predictions.columns) == ["msno", "churn_probability"]
    p = predictions["churn_probability"]
    assert p.between(0, 1).all()
    assert p.nunique() > 10  # a 0/1 classifier would give 2 values


def test_save_and_load_round_trip_and_tamper_check(bundle, tmp_path):
    path = save_model(bundle, tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["version"] == "v-test"
    assert manifest["feature_columns"] == list(FEATURE_COLUMNS)
    assert manifest["metrics"]["test"]["rows"] == 800
    loaded = load_model(path)
    frame = _frame(200, 5)
    pd.testing.assert_frame_equal(predict_churn(loaded, frame), predict_churn(bundle, frame))
    (path / "model.joblib").write_bytes((path / "model.joblib").read_bytes() + b"x")
    with pytest.raises(ValueError, match="SHA-256 differs"):
        load_model(path)


def test_a_model_trained_on_other_features_is_refused_by_name(bundle, tmp_path):
    path = save_model(bundle, tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["feature_columns"] = [c for c in FEATURE_COLUMNS if c != "fade_depth"] + ["old"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"missing \['fade_depth'\].*\['old'\].*retrain"):
        load_model(path)


def test_missing_feature_columns_are_named(bundle):
    frame = _frame(10, 6).drop(columns=["city", "bd"])
    with pytest.raises(FeatureMismatchError, match=r"\['city', 'bd'\]"):
        predict_churn(bundle, frame)


def test_auto_calibration_picks_by_cross_validated_log_loss_and_rejects_unknown():
    from customer360.churn.model import CALIBRATIONS, train_churn_model

    frame = _frame(3000, seed=11)
    bundle = train_churn_model(frame.iloc[:2000], frame.iloc[2000:], importance_repeats=0)
    assert bundle.metrics["calibration_method"] in {"none", "sigmoid", "isotonic"}
    assert [g["validation_log_loss"] > 0 for g in bundle.metrics["grid"]] == [True] * 4
    assert bundle.metrics["feature_importance"] == []  # importance_repeats=0 skips it
    assert "auto" in CALIBRATIONS
    with pytest.raises(ValueError, match="calibration must be one of"):
        train_churn_model(frame.iloc[:2000], frame.iloc[2000:], calibration="platt")


def test_refit_on_training_and_validation_only_when_no_calibration_is_needed():
    """With calibration "none" the final model is refitted on both months (its predictions
    differ from the training-only fit); a calibrated model keeps its held-out calibration."""
    train, validation, later = _frame(1500, 21), _frame(800, 22), _frame(300, 23)
    grid = [{"learning_rate": 0.1, "max_leaf_nodes": 7}]
    kwargs = {"grid": grid, "importance_repeats": 0}
    refitted = train_churn_model(train, validation, calibration="none", **kwargs)
    plain = train_churn_model(train, validation, calibration="none", refit=False, **kwargs)
    assert refitted.metrics["refit_on_validation"] is True
    assert plain.metrics["refit_on_validation"] is False
    a = predict_churn(refitted, later)["churn_probability"]
    b = predict_churn(plain, later)["churn_probability"]
    assert not np.allclose(a, b)
    assert a.between(0, 1).all() and a.nunique() > 10
    sigmoid = train_churn_model(train, validation, calibration="sigmoid", **kwargs)
    assert sigmoid.metrics["refit_on_validation"] is False


def _additive_frame(rows: int, seed: int) -> pd.DataFrame:
    """Churn = a listening interaction (few listening days raise churn for manual renewers
    only) + a city effect of +1.2 log-odds for city 5; three rows per member, as months."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(np.zeros((rows, len(FEATURE_COLUMNS))), columns=FEATURE_COLUMNS)
    frame["last_is_auto_renew"] = (rng.random(rows) < 0.7).astype(float)
    frame["days_with_session"] = rng.integers(0, 31, rows).astype(float)
    frame["city"] = rng.choice([1.0, 5.0, 13.0], rows)
    frame["bd"] = rng.integers(15, 60, rows).astype(float)
    quiet = (frame["days_with_session"] < 8) & (frame["last_is_auto_renew"] == 0)
    logit = -2.5 + 2.5 * quiet + 1.2 * (frame["city"] == 5.0)
    frame["is_churn"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.insert(0, "msno", [f"m{i % (rows // 3)}" for i in range(rows)])
    return frame


def test_two_stages_learn_the_additive_effect_and_the_listening_interaction():
    """The regression carries the city's log-odds effect (+1.2), the trees the listening
    interaction; the probabilities are calibrated on a later sample."""
    bundle = train_churn_model(
        _additive_frame(6000, 31), _additive_frame(3000, 32), importance_repeats=0
    )
    assert bundle.metrics["learner"] == "two_stage"
    later = _additive_frame(4000, 33)
    p = predict_churn(bundle, later)["churn_probability"].to_numpy()
    odds = np.log(p / (1 - p))
    city5, city1 = later["city"] == 5.0, later["city"] == 1.0
    quiet = (later["days_with_session"] < 8) & (later["last_is_auto_renew"] == 0)
    for group in (quiet, ~quiet):
        effect = odds[group & city5].mean() - odds[group & city1].mean()
        assert effect == pytest.approx(1.2, abs=0.3)
    assert odds[quiet].mean() - odds[~quiet].mean() == pytest.approx(2.5, abs=0.5)
    assert p.mean() == pytest.approx(later["is_churn"].mean(), abs=0.02)
    # The trees never see the city: it is the regression's.
    assert "city" not in TREE_FEATURES
    assert bundle.model.trees_.n_features_in_ == len(TREE_FEATURES)


def test_the_learner_is_checked_and_one_class_is_refused_by_name():
    frame = _frame(600, 41)
    with pytest.raises(ValueError, match="learner must be one of"):
        train_churn_model(frame.iloc[:400], frame.iloc[400:], learner="forest")
    stayers = frame.assign(is_churn=0)
    with pytest.raises(ValueError, match="only is_churn = \\[0\\]"):
        train_churn_model(stayers.iloc[:400], stayers.iloc[400:], importance_repeats=0)
