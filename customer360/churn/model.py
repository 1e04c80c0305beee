"""The churn model: two stages (trees, then a logistic regression), time-based tuning, calibrated
probabilities.

`train_churn_model` fits, for each point of a small grid, `two_stage.TwoStageChurnModel`
(gradient-boosted trees on the listening and the billing's timing; a logistic regression on
their out-of-fold score and the account and member codes) — or, with `learner="trees"`,
scikit-learn's HistGradientBoostingClassifier on every feature (native categorical splits for
the code columns) — on an earlier period, keeps the point with the lowest log loss on a later
validation period, then calibrates it on that period when that helps (or refits it on both),
so `predict_churn` returns probabilities, never 0/1 labels. Metrics (AP, log loss, ROC AUC,
Brier, a decile calibration table, a precision-recall curve, permutation importances) are
plain dicts and lists, ready for JSON or Dagster metadata.

Persisted bundles are a directory: `model.joblib` + `manifest.json` (version, features,
metrics, library versions, SHA-256 of the joblib file). Loading unpickles Python objects:
only load bundles you wrote yourself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from customer360.churn.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS
from customer360.churn.two_stage import TwoStageChurnModel

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
LABEL_COLUMN = "is_churn"
PROBABILITY_COLUMN = "churn_probability"

#: The default tuning grid: 4 fits. Each point overrides `BASE_PARAMS`.
DEFAULT_GRID: tuple[dict[str, Any], ...] = tuple(
    {"learning_rate": lr, "max_leaf_nodes": leaves}
    for lr, leaves in itertools.product((0.05, 0.1), (7, 15))
)
#: A calibration must cut the validation month's cross-validated log loss by more than this
#: share to be used; otherwise the trees are refitted uncalibrated on training + validation.
CALIBRATION_MARGIN = 0.01
#: No class weights: re-weighting distorts the probabilities that calibration must then undo
#: from one month of data (measured: worse log loss and AP against the true probabilities).
BASE_PARAMS: dict[str, Any] = {
    "max_iter": 500,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "class_weight": None,
    "early_stopping": True,
    "validation_fraction": 0.15,
    "n_iter_no_change": 25,
    "scoring": "loss",
}
CALIBRATIONS = ("auto", "isotonic", "sigmoid", "none")
#: "two_stage": trees on the listening, a logistic regression for the account and the member
#: (`two_stage.py`); "trees": one set of trees on every feature (the earlier model).
LEARNERS = ("two_stage", "trees")


@dataclass
class ModelBundle:
    """A fitted, calibrated churn model and what is needed to use and trust it."""

    model: Any  # sklearn estimator with predict_proba on a DataFrame of `feature_columns`
    version: str
    feature_columns: list[str]
    metrics: dict[str, Any]
    params: dict[str, Any]
    trained_at: str
    info: dict[str, Any] = field(default_factory=dict)  # e.g. train/validation periods


class FeatureMismatchError(ValueError):
    """The scoring frame lacks feature columns the model was trained on."""


def train_churn_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame | None = None,
    *,
    grid: Sequence[Mapping[str, Any]] = DEFAULT_GRID,
    calibration: str = "auto",
    random_state: int = 0,
    version: str | None = None,
    importance_repeats: int = 3,
    threads: int | None = 1,
    refit: bool = True,
    learner: str = "two_stage",
) -> ModelBundle:
    """Tune on `validation` (a later period than `train`), calibrate on it, evaluate.

    Each frame holds `FEATURE_COLUMNS` and `is_churn` (0/1), e.g. `period_features` joined with
    `label_period` and converted with `toPandas()`. With `test` (a still later period) the
    headline metrics are on `test`, which neither tuning nor calibration saw; without it they
    are on `validation` and flagged `optimistic`. Grid points are compared by validation log
    loss. `calibration`: "isotonic", "sigmoid", "none", or "auto" (default: whichever of the
    three has the lowest log loss in 2-fold cross-validation on the validation month).
    `threads` caps the trees' OpenMP threads (1 by default: on a small shared machine OpenMP
    spin-waiting costs far more than it gains; None = all cores). With `refit` (default), when
    the validation month shows the trees need no calibration, the final model is the chosen
    parameters refitted on training + validation rows (the newest month is the closest to the
    one scored; measured on three generated worlds: +0.01–0.02 × AP and −0.01 × log loss
    against the true probabilities); its validation metrics are then in-sample. `learner`:
    "two_stage" (default, `two_stage.TwoStageChurnModel`; the grid tunes its trees) or "trees".
    """
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS}, got {learner!r}")
    with _thread_limit(threads):
        return _train(
            train, validation, test, grid, calibration, random_state, version, importance_repeats,
            refit, learner,
        )  # fmt: skip


def _grid_search(
    grid: Sequence[Mapping[str, Any]],
    training: tuple[pd.DataFrame, pd.Series, np.ndarray | None],
    validation: tuple[pd.DataFrame, pd.Series],
    random_state: int,
    learner: str,
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """(the model with the lowest validation log loss, its parameters, every point tried)."""
    (x_train, y_train, groups), (x_valid, y_valid) = training, validation
    tried = []
    best: tuple[float, Any, dict[str, Any]] | None = None
    for point in grid:
        params = {**BASE_PARAMS, **point, "random_state": random_state}
        model = _fit(learner, params, x_train, y_train, groups)
        p = model.predict_proba(x_valid)[:, 1]
        loss = float(log_loss(y_valid, p, labels=[0, 1]))
        tried.append(
            {
                "params": dict(point),
                "validation_log_loss": loss,
                "validation_average_precision": float(average_precision_score(y_valid, p)),
            }
        )
        if best is None or loss < best[0]:
            best = (loss, model, params)
    assert best is not None
    return best[1], best[2], tried


def _train(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame | None,
    grid: Sequence[Mapping[str, Any]],
    calibration: str,
    random_state: int,
    version: str | None,
    importance_repeats: int,
    refit: bool = True,
    learner: str = "two_stage",
) -> ModelBundle:
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    x_train, y_train = _xy(train, "train")
    x_valid, y_valid = _xy(validation, "validation")
    if not grid:
        raise ValueError("grid must hold at least one parameter set")

    groups = [_members(train), _members(validation)]
    fitted, params, tried = _grid_search(grid, (x_train, y_train, groups[0]),
                                         (x_valid, y_valid), random_state, learner)  # fmt: skip
    calibration_losses: dict[str, float] = {}
    if calibration == "auto":
        calibration_losses = _calibration_losses(fitted, x_valid, y_valid, random_state)
        calibration = min(calibration_losses, key=calibration_losses.get)
        # A calibration that gains less than CALIBRATION_MARGIN is noise: refit uncalibrated.
        if refit and calibration_losses["none"] <= calibration_losses[calibration] * (
            1 + CALIBRATION_MARGIN
        ):
            calibration = "none"
    calibrated = _calibrate(fitted, calibration, x_valid, y_valid)
    refitted = refit and calibration == "none"
    if refitted:
        calibrated = _refit(learner, params, fitted, (x_train, x_valid), (y_train, y_valid),
                            groups)  # fmt: skip

    metrics: dict[str, Any] = {
        "learner": learner,
        "grid": tried,
        "chosen_params": {k: v for k, v in params.items() if k != "random_state"},
        "calibration_method": calibration,
        "calibration_cv_log_loss": calibration_losses,
        "refit_on_validation": refitted,
        "train": {"rows": len(y_train), "positives": int(y_train.sum())},
        "validation": evaluate(calibrated, validation),
    }
    metrics["validation"]["optimistic"] = True  # tuned and calibrated on it
    if test is not None:
        metrics["test"] = evaluate(calibrated, test)
    metrics["headline"] = "test" if test is not None else "validation"
    metrics["feature_importance"] = (
        feature_importance(
            fitted, validation, repeats=importance_repeats, random_state=random_state
        )
        if importance_repeats > 0
        else []
    )
    x_eval, y_eval = _xy(test if test is not None else validation, metrics["headline"])
    metrics["precision_recall_curve"] = pr_curve(y_eval, calibrated.predict_proba(x_eval)[:, 1])
    now = dt.datetime.now(dt.UTC)
    return ModelBundle(
        model=calibrated,
        version=version or now.strftime("%Y%m%dT%H%M%SZ"),
        feature_columns=list(FEATURE_COLUMNS),
        metrics=metrics,
        params=metrics["chosen_params"],
        trained_at=now.isoformat(),
    )


def _refit(
    learner: str,
    params: Mapping[str, Any],
    fitted: Any,
    xs: tuple[pd.DataFrame, pd.DataFrame],
    ys: tuple[np.ndarray, np.ndarray],
    groups: Sequence[np.ndarray | None],
) -> Any:
    """The chosen parameters fitted on training + validation rows.

    Trees alone: early stopping is not repeated (its hold-out would be a random slice of both
    months): the fit runs the iterations it chose on the training rows, grown by 10% for the
    extra rows. Two stages: refitted as they were tuned (their out-of-fold score needs each
    fold's trees to stop on their own)."""
    x, y = pd.concat(xs), np.concatenate(ys)
    if learner == "two_stage":
        both = None if any(g is None for g in groups) else np.concatenate(groups)
        return _fit(learner, params, x, y, both)
    iterations = max(1, int(fitted.named_steps["trees"].n_iter_ * 1.1))
    final = {**params, "early_stopping": False, "max_iter": iterations}
    return _pipeline(final).fit(x, y)


def _fit(
    learner: str,
    params: Mapping[str, Any],
    x: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray | None,
) -> Any:
    if learner == "two_stage":
        tree_params = {k: v for k, v in params.items() if k != "random_state"}
        model = TwoStageChurnModel(tree_params, random_state=params.get("random_state", 0))
        return model.fit(x, y, groups=groups)
    return _pipeline(params).fit(x, y)


def _members(frame: pd.DataFrame) -> np.ndarray | None:
    """The member of each row (the two stages' folds keep a member's months together)."""
    return frame["msno"].to_numpy() if "msno" in frame.columns else None


def _calibrate(fitted: Pipeline, method: str, x: pd.DataFrame, y: np.ndarray) -> Any:
    if method == "none":
        return fitted
    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(x, y)


def _calibration_losses(
    fitted: Pipeline, x: pd.DataFrame, y: np.ndarray, seed: int
) -> dict[str, float]:
    """Log loss of none / sigmoid / isotonic in 2-fold cross-validation on `x`, `y`: isotonic
    needs more data than sigmoid, and a well-fitted model may need neither."""
    folds = np.random.default_rng(seed).permutation(len(y)) % 2
    losses = {}
    for method in ("none", "sigmoid", "isotonic"):
        total = 0.0
        for fold in (0, 1):
            fit, held = folds != fold, folds == fold
            if len(np.unique(y[fit])) < 2:
                return {"none": 0.0}
            model = _calibrate(fitted, method, x[fit], y[fit])
            p = np.clip(model.predict_proba(x[held])[:, 1], 1e-6, 1 - 1e-6)
            total += log_loss(y[held], p, labels=[0, 1]) * held.sum()
        losses[method] = total / len(y)
    return losses


def evaluate(model: Any, frame: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """AP, log loss, ROC AUC, Brier, base rate and a calibration table on a labelled frame."""
    x, y = _xy(frame, "evaluation")
    probability = model.predict_proba(x)[:, 1]
    both_classes = 0 < y.sum() < len(y)
    return {
        "rows": len(y),
        "positives": int(y.sum()),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "average_precision": float(average_precision_score(y, probability))
        if both_classes
        else None,
        "roc_auc": float(roc_auc_score(y, probability)) if both_classes else None,
        "log_loss": float(log_loss(y, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y, probability)),
        "calibration": calibration_table(y, probability, bins=bins),
    }


def calibration_table(
    y_true: np.ndarray, probability: np.ndarray, bins: int = 10
) -> list[dict[str, float]]:
    """Equal-count bins by predicted probability (deciles by default): predicted vs observed."""
    order = np.argsort(probability, kind="stable")
    rows = []
    for index, chunk in enumerate(np.array_split(order, bins), start=1):
        if chunk.size == 0:
            continue
        rows.append(
            {
                "bin": index,
                "rows": int(chunk.size),
                "mean_predicted": float(probability[chunk].mean()),
                "observed_rate": float(np.asarray(y_true)[chunk].mean()),
            }
        )
    return rows


def pr_curve(y_true: np.ndarray, probability: np.ndarray, max_points: int = 200) -> dict:
    """Precision-recall curve, thinned to at most `max_points` points (for the dashboard)."""
    precision, recall, thresholds = precision_recall_curve(y_true, probability)
    keep = np.unique(
        np.linspace(0, len(thresholds) - 1, min(max_points, len(thresholds))).astype(int)
    )
    return {
        "precision": [float(v) for v in precision[keep]],
        "recall": [float(v) for v in recall[keep]],
        "thresholds": [float(v) for v in thresholds[keep]],
        "average_precision": float(average_precision_score(y_true, probability)),
    }


def feature_importance(
    model: Any,
    frame: pd.DataFrame,
    repeats: int = 3,
    random_state: int = 0,
    max_rows: int = 10_000,
) -> list[dict[str, float]]:
    """Permutation importance (drop in average precision), most important first.

    At most `max_rows` rows (a seeded sample) are used: 58 features × `repeats` predictions
    over a full period would cost more than the training itself.
    """
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=random_state)
    x, y = _xy(frame, "importance")
    result = permutation_importance(
        model,
        x,
        y,
        scoring="average_precision",
        n_repeats=repeats,
        random_state=random_state,
        n_jobs=1,
    )
    rows = [
        {"feature": name, "importance": float(mean), "std": float(std)}
        for name, mean, std in zip(
            x.columns, result.importances_mean, result.importances_std, strict=True
        )
    ]
    return sorted(rows, key=lambda r: r["importance"], reverse=True)


def predict_churn(
    bundle: ModelBundle, features: pd.DataFrame, threads: int | None = 1
) -> pd.DataFrame:
    """(msno, churn_probability) for each row of a feature frame (pandas)."""
    x = feature_matrix(features, bundle.feature_columns)
    with _thread_limit(threads):
        probability = bundle.model.predict_proba(x)[:, 1]
    return pd.DataFrame({"msno": features["msno"].to_numpy(), PROBABILITY_COLUMN: probability})


def predict_churn_spark(bundle: ModelBundle, features: DataFrame) -> DataFrame:
    """(msno, churn_probability) computed on the executors (mapInPandas); nothing is collected.

    Use this for a full-size scoring period; `bundle` is shipped to the executors once per task.
    """
    missing = sorted(set(bundle.feature_columns) - set(features.columns))
    if missing:
        raise FeatureMismatchError(f"features lack the model's columns: {missing}")
    columns = ["msno", *bundle.feature_columns]
    model, feature_columns = bundle.model, list(bundle.feature_columns)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if batch.empty:
                continue
            x = feature_matrix(batch, feature_columns)
            # Spark already runs one task per core: one OpenMP thread per task.
            with _thread_limit(1):
                probability = model.predict_proba(x)[:, 1]
            yield pd.DataFrame({"msno": batch["msno"], PROBABILITY_COLUMN: probability})

    schema = T.StructType(
        [
            T.StructField("msno", T.StringType()),
            T.StructField(PROBABILITY_COLUMN, T.DoubleType()),
        ]
    )
    return features.select(*columns).mapInPandas(score, schema)


def feature_matrix(
    frame: pd.DataFrame, feature_columns: Sequence[str] = FEATURE_COLUMNS
) -> pd.DataFrame:
    """The model's input: the feature columns in order, as float64 (NULL → NaN)."""
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise FeatureMismatchError(f"features lack the model's columns: {missing}")
    return frame[list(feature_columns)].apply(pd.to_numeric, errors="raise").astype("float64")


def save_model(bundle: ModelBundle, path: str | Path) -> Path:
    """Write `model.joblib` and `manifest.json` into directory `path` (created); returns it."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    tmp = directory / (MODEL_FILE + ".tmp")
    joblib.dump(bundle.model, tmp)
    tmp.replace(model_path)
    manifest = {
        "version": bundle.version,
        "trained_at": bundle.trained_at,
        "feature_columns": bundle.feature_columns,
        "params": bundle.params,
        "metrics": bundle.metrics,
        "info": bundle.info,
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_path),
        "sklearn_version": sklearn.__version__,
    }
    tmp_manifest = directory / (MANIFEST_FILE + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    tmp_manifest.replace(directory / MANIFEST_FILE)
    return directory


def load_model(path: str | Path) -> ModelBundle:
    """Read a bundle written by `save_model`; refuses a model file whose hash does not match,
    or one trained on another feature set (an older version of the features)."""
    directory = Path(path)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: no model manifest")
    manifest = json.loads(manifest_path.read_text())
    model_path = directory / manifest.get("model_file", MODEL_FILE)
    if _sha256(model_path) != manifest["model_sha256"]:
        raise ValueError(f"{model_path}: SHA-256 differs from the manifest; refusing to load")
    if manifest.get("sklearn_version") != sklearn.__version__:
        raise ValueError(
            f"{directory}: model was saved with scikit-learn {manifest.get('sklearn_version')}, "
            f"this is {sklearn.__version__}; retrain it"
        )
    missing = [c for c in FEATURE_COLUMNS if c not in manifest["feature_columns"]]
    extra = [c for c in manifest["feature_columns"] if c not in FEATURE_COLUMNS]
    if missing or extra:  # the model's own code would fail deep in its design matrix
        raise ValueError(
            f"{directory}: model was trained on other features (missing {missing}, no longer "
            f"built {extra}); retrain it (materialise churn/model)"
        )
    return ModelBundle(
        model=joblib.load(model_path),
        version=manifest["version"],
        feature_columns=list(manifest["feature_columns"]),
        metrics=manifest["metrics"],
        params=manifest["params"],
        trained_at=manifest["trained_at"],
        info=manifest.get("info", {}),
    )


def _thread_limit(threads: int | None) -> contextlib.AbstractContextManager:
    if threads is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="openmp")


def _pipeline(params: Mapping[str, Any]) -> Pipeline:
    categorical = list(CATEGORICAL_FEATURES)
    numeric = [c for c in FEATURE_COLUMNS if c not in CATEGORICAL_FEATURES]
    encode = ColumnTransformer(
        [
            (
                "codes",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    max_categories=250,  # HGB takes at most 255 categories per feature
                ),
                categorical,
            ),
            ("numbers", "passthrough", numeric),
        ],
        verbose_feature_names_out=False,
    )
    mask = [True] * len(categorical) + [False] * len(numeric)
    trees = HistGradientBoostingClassifier(categorical_features=mask, **params)
    return Pipeline([("encode", encode), ("trees", trees)])


def _xy(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    if LABEL_COLUMN not in frame.columns:
        raise ValueError(f"{name} frame has no {LABEL_COLUMN!r} column")
    y = frame[LABEL_COLUMN].to_numpy()
    if len(y) == 0:
        raise ValueError(f"{name} frame is empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} frame: {LABEL_COLUMN} must be 0 or 1")
    return feature_matrix(frame), y.astype(np.int64)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
