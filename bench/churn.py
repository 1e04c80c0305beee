"""Churn quality against known truth: generate KKBox worlds whose churn probabilities are known,
run the pipeline (layout → periods → labels → features → model → scoring) per layout and print
AP and log loss on the scoring month against the true outcomes, and their ratios to the true
probabilities' own AP and log loss. Prints figures, asserts nothing.

    .venv/bin/python bench/churn.py --members 30000 --seed 0 --layouts v2,v1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import functions as F
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import average_precision_score, log_loss, r2_score, roc_auc_score
from threadpoolctl import threadpool_limits

from customer360.churn import (
    features_for_periods,
    generate_kkbox,
    predict_churn,
    train_churn_model,
    transactions_clean,
)
from customer360.churn.disengagement import FLOOR
from customer360.churn.drop import read_drop_table
from customer360.churn.fading import FADE_FEATURES, daily_plays, fade_depths, fit_fade_model
from customer360.churn.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS
from customer360.churn.generator import DRIVER_MIXES
from customer360.churn.layout import data_facts, layout_of_directory
from customer360.churn.model import feature_matrix
from customer360.churn.periods import ChurnPeriods, detect_periods
from customer360.churn.training import assemble_labels, labelled_rows, scope_for_periods
from customer360.sparkconf import build_local_session

#: The deepest disengagement (D at the level's floor): truth's `probability_if_fading`.
FULL_DEPTH = 1 - FLOOR


def tree_cpu_seconds() -> float:
    """CPU time (user + system) of this process and all its descendants (JVM, Python workers).

    Reported beside wall time because the shared 2-core machine makes wall time depend on what
    the other engineers run; CPU seconds do not. Linux /proc only (0.0 elsewhere).
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in mine]
        mine.update(children)
        frontier.extend(children)
    # Children that already exited are accounted in our own cumulative times (cutime/cstime).
    own = (proc / str(os.getpid()) / "stat").read_text().rsplit(")", 1)[1].split()
    total = sum(ticks.get(pid, 0) for pid in mine) + int(own[13]) + int(own[14])
    return total / os.sysconf("SC_CLK_TCK")


class Timer:
    def __init__(self) -> None:
        self.stages: list[tuple[str, float, float, str]] = []

    def __call__(self, name: str, work: Callable[[], Any], note: Callable[[Any], str] = str):
        start, cpu = time.perf_counter(), tree_cpu_seconds()
        result = work()
        seconds, cpu_seconds = time.perf_counter() - start, tree_cpu_seconds() - cpu
        self.stages.append((name, seconds, cpu_seconds, note(result)))
        print(f"{name:<36} {seconds:7.1f} s  {cpu_seconds:7.1f} cpu-s   {note(result)}", flush=True)
        return result


def read_drop(spark, landing: Path):
    """The drop's tables as the bronze assets read them (transactions and labels keep
    `source_file`); transactions, logs and members cached (each is used several times)."""
    transactions = read_drop_table(spark, landing, "transactions")[0].cache()
    user_logs = read_drop_table(spark, landing, "user_logs")[0].cache()
    members = read_drop_table(spark, landing, "members")[0].cache()
    labels = read_drop_table(spark, landing, "train_labels")[0]
    return transactions, user_logs, members, labels


def labelled_frame(transactions, clean, user_logs, members, files, periods: ChurnPeriods):
    """The labelled rows of the training and validation months (pandas; `in_scope` marks the
    rows in the month's scoring scope, the ones the graph's model learns from) and the scoring
    month's rows, from one feature job."""
    labels = assemble_labels(transactions, files, periods).labels
    features = features_for_periods(clean, user_logs, members, periods.all).cache()
    scope = scope_for_periods(transactions, periods.all).select(
        "msno", "period_start", F.lit(True).alias("in_scope")
    )
    frame = (
        labelled_rows(labels, features)
        .join(scope, ["msno", "period_start"], "left")
        .fillna(False, subset=["in_scope"])
        .toPandas()
    )
    scoring_scope = scope.where(F.col("period_start") == F.lit(periods.scoring)).drop("in_scope")
    scoring = features.join(scoring_scope, ["msno", "period_start"], "inner")
    return frame, scoring.toPandas(), scoring_scope.count()


def oracle_scores(predictions: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """AP and log loss of the predictions and of the true probabilities on the same members."""
    both = truth.merge(predictions, on="msno", how="inner", suffixes=("_true", ""))
    y = both["is_churn"].to_numpy()
    model_p = both["churn_probability"].clip(1e-6, 1 - 1e-6)
    true_p = both["churn_probability_true"].clip(1e-6, 1 - 1e-6)
    scores = {
        "members": len(both),
        "churners": int(y.sum()),
        "ap_model": average_precision_score(y, model_p),
        "ap_true": average_precision_score(y, true_p),
        "logloss_model": log_loss(y, model_p, labels=[0, 1]),
        "logloss_true": log_loss(y, true_p, labels=[0, 1]),
    }
    if "drawn_probability" in both:  # the draw's own probability (knows later cancels)
        drawn_p = both["drawn_probability"].clip(1e-6, 1 - 1e-6)
        scores["ap_drawn"] = average_precision_score(y, drawn_p)
        scores["logloss_drawn"] = log_loss(y, drawn_p, labels=[0, 1])
    scores["ap_ratio"] = scores["ap_model"] / scores["ap_true"]
    scores["logloss_ratio"] = scores["logloss_model"] / scores["logloss_true"]
    return scores


def build_frames(spark, work: Path, layout: str, args, timer: Timer) -> None:
    """Generate one world in `layout` and run the pipeline up to the feature frames, kept in
    `work/<layout>/` (frame.parquet, scoring.parquet, periods.json, bench.json, truth/)."""
    landing, truth_dir = work / layout / "landing" / "kkbox", work / layout / "truth"
    timer(
        f"[{layout}] generate",
        lambda: generate_kkbox(
            landing,
            args.members,
            seed=args.seed,
            layout=layout,
            truth_dir=truth_dir,
            drivers=DRIVER_MIXES[args.drivers],
        ),
        lambda paths: f"{len(paths)} files",
    )
    transactions, user_logs, members, files = read_drop(spark, landing)
    facts = data_facts(transactions, user_logs, layout_of_directory(landing).label_files)
    periods = detect_periods(facts)
    print(f"[{layout}] periods: {periods.summary()}", flush=True)
    clean = transactions_clean(transactions).cache()
    frame, scoring, candidates = timer(
        f"[{layout}] labels + features",
        lambda: labelled_frame(transactions, clean, user_logs, members, files, periods),
        lambda r: f"{len(r[0]):,} labelled rows, {len(r[1]):,} to score of {r[2]:,}",
    )
    frame.to_parquet(work / layout / "frame.parquet")
    scoring.to_parquet(work / layout / "scoring.parquet")
    periods.save(work / layout / "periods.json")
    world = {"seed": args.seed, "world_members": args.members, "drivers": args.drivers}
    (work / layout / "bench.json").write_text(json.dumps({**world, "candidates": candidates}))
    for cached in (transactions, user_logs, members, clean):
        cached.unpersist()


def model_scores(work: Path, layout: str, timer: Timer) -> dict[str, Any]:
    """Train on the saved frames of `work/<layout>/` as the graph does, score the scoring
    month and compare with the truth (also what `--rescore` runs, without Spark)."""
    frame = pd.read_parquet(work / layout / "frame.parquet")
    scoring = pd.read_parquet(work / layout / "scoring.parquet")
    periods = ChurnPeriods.load(work / layout / "periods.json")
    world = json.loads((work / layout / "bench.json").read_text())
    if not set(FADE_FEATURES) <= set(frame.columns):  # frames saved before the fade features
        frame, scoring = timer(
            f"[{layout}] fade features (pandas)",
            lambda: with_fade_features(work / layout, frame, scoring, periods),
            lambda r: f"{r[0]['fade_depth'].notna().mean():.3f} of the rows known",
        )
    # The graph's model learns from the rows in each month's scoring scope (training.py).
    rows = frame[frame["in_scope"]]
    months = pd.to_datetime(rows["period_start"]).dt.date
    bundle = timer(
        f"[{layout}] model",
        lambda: train_churn_model(
            rows[months.isin(periods.train)],
            rows[months == periods.validation],
            importance_repeats=0,
        ),
        lambda b: json.dumps(
            {"params": b.params, "calibration": b.metrics["calibration_method"]}, default=str
        )[:160],
    )
    predictions = predict_churn(bundle, scoring)
    truth = pd.read_csv(work / layout / "truth" / "truth.csv")
    scores = oracle_scores(predictions, truth)
    scores.update(fading_bound(rows[months.isin([*periods.train, periods.validation])], scoring,
                               truth, work / layout / "truth" / "fading.csv"))  # fmt: skip
    scores.update(layout=layout, periods=periods.summary(), **world)
    candidates = world["candidates"]
    scores["coverage"] = len(predictions) / candidates if candidates else float("nan")
    return scores


def with_fade_features(world: Path, frame, scoring, periods: ChurnPeriods):
    """Add `FADE_FEATURES` to frames saved without them, by the graph's own functions on the
    landing CSVs read with pandas (the clock fitted on a random sample of members, where the
    graph takes one hash slice); the frames are saved back."""
    landing = world / "landing" / "kkbox"

    def days(values: pd.Series) -> pd.Series:
        return (pd.to_datetime(values.astype(str), format="%Y%m%d") - pd.Timestamp(0)).dt.days

    logs = pd.concat(pd.read_csv(f) for f in sorted(landing.glob("user_logs*.csv")))
    logs["date"] = pd.to_datetime(logs["date"].astype(str), format="%Y%m%d")
    logs = daily_plays(logs)
    raw = pd.concat(pd.read_csv(f) for f in sorted(landing.glob("transactions*.csv")))
    transactions = pd.DataFrame({
        "msno": raw["msno"],
        "transaction_day": days(raw["transaction_date"]),
        "expire_day": days(raw["membership_expire_date"]),
        "is_cancel": raw["is_cancel"],
    })  # fmt: skip
    fade = fade_depths(logs, transactions, periods.all, fit_fade_model(logs, transactions))
    fade["period_start"] = pd.to_datetime(fade["period_start"]).dt.date

    def add(rows: pd.DataFrame) -> pd.DataFrame:
        keyed = rows.assign(period_start=pd.to_datetime(rows["period_start"]).dt.date)
        return keyed.merge(fade, on=["msno", "period_start"], how="left")

    frame, scoring = add(frame), add(scoring)
    frame.to_parquet(world / "frame.parquet")
    scoring.to_parquet(world / "scoring.parquet")
    return frame, scoring


def fading_bound(rows: pd.DataFrame, scoring: pd.DataFrame, truth: pd.DataFrame, path: Path):
    """What the files allow at best: the true probabilities with the member's hidden
    disengagement D on the billing day replaced by an estimate from our features (a regressor
    trained on the training and validation rows *with the hidden D as target*, which no real
    forecaster has), every other hidden driver (member effect, cancels, plan) still known
    exactly. Ratios of that bound to the truth say how much of the gap the logs alone leave
    open. Diagnostics only."""
    if not path.is_file() or "probability_if_fading" not in truth:
        return {}
    hidden = pd.read_csv(path)
    hidden["period_start"] = pd.to_datetime(hidden["period_start"]).dt.date
    labelled = rows.assign(period_start=pd.to_datetime(rows["period_start"]).dt.date).merge(
        hidden, on=["msno", "period_start"]
    )
    categorical = [c in CATEGORICAL_FEATURES for c in FEATURE_COLUMNS]
    detector = HistGradientBoostingRegressor(
        max_iter=1000, learning_rate=0.05, early_stopping=True, categorical_features=categorical
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        detector.fit(feature_matrix(labelled), labelled["fading"])
    both = truth.merge(scoring, on="msno")
    estimate = detector.predict(feature_matrix(both)).clip(0, FULL_DEPTH)
    y = both["is_churn"].to_numpy()
    true_p = both["churn_probability"].clip(1e-6, 1 - 1e-6)
    exact = with_depth(both, both["fading"])
    bound = with_depth(both, estimate)
    return {
        "fading_auc": roc_auc_score(both["fading"] > 0.3, estimate),
        "fading_r2": r2_score(both["fading"], estimate),
        "interpolation_ll_ratio": log_loss(y, exact, labels=[0, 1]) / log_loss(y, true_p),
        "bound_ap_ratio": average_precision_score(y, bound) / average_precision_score(y, true_p),
        "bound_logloss_ratio": log_loss(y, bound, labels=[0, 1])
        / log_loss(y, true_p, labels=[0, 1]),
    }


def with_depth(truth: pd.DataFrame, depth) -> np.ndarray:
    """The truth's probability at disengagement `depth`: the churn log-odds are linear in D, so
    interpolate the logits of D = 0 and D = FULL_DEPTH (exact without a pending cancel, which
    mixes two such sigmoids; `interpolation_ll_ratio` shows the error at the true D)."""

    def logit(p):
        p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    share = np.asarray(depth, dtype=float) / FULL_DEPTH
    mixed = (1 - share) * logit(truth["probability_if_not_fading"]) + share * logit(
        truth["probability_if_fading"]
    )
    return np.clip(1 / (1 + np.exp(-mixed)), 1e-6, 1 - 1e-6)


def print_scores(rows: list[dict[str, Any]]) -> None:
    """The goal table (ratios to the fair truth), then the ratios to the drawn probabilities."""
    print(
        f"\n{'layout':<11} {'members':>8} {'churners':>8} {'coverage':>8} {'AP':>7} {'AP true':>7}"
        f" {'ratio':>6} {'logloss':>8} {'ll true':>8} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['layout']:<11} {r['members']:>8,} {r['churners']:>8,} {r['coverage']:>8.3f} "
            f"{r['ap_model']:>7.4f} {r['ap_true']:>7.4f} {r['ap_ratio']:>6.3f} "
            f"{r['logloss_model']:>8.4f} {r['logloss_true']:>8.4f} {r['logloss_ratio']:>6.3f}"
        )
    print("\nbound from the files (the truth, its disengagement D estimated from the logs):")
    for r in rows:
        if "bound_ap_ratio" in r:
            print(
                f"{r['layout']:<11} D R² {r['fading_r2']:.3f}  AUC(D > 0.3) {r['fading_auc']:.3f}"
                f"   AP ratio {r['bound_ap_ratio']:.3f}   log loss ratio "
                f"{r['bound_logloss_ratio']:.3f}   (interpolation at the true D: log loss "
                f"ratio {r['interpolation_ll_ratio']:.3f})"
            )
    print("\nagainst drawn_probability (the draw's own: it knows cancels made inside the month):")
    for r in rows:
        if "ap_drawn" in r:
            print(
                f"{r['layout']:<11} AP drawn {r['ap_drawn']:.4f} ratio "
                f"{r['ap_model'] / r['ap_drawn']:.3f}   log loss drawn {r['logloss_drawn']:.4f} "
                f"ratio {r['logloss_model'] / r['logloss_drawn']:.3f}"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layouts", default="v2,v1", help="comma-separated: v2, v1, label-less")
    parser.add_argument("--drivers", default="default", choices=sorted(DRIVER_MIXES))
    parser.add_argument("--out", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--json", type=Path, default=None, help="append the scores as JSON lines")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="no Spark: retrain and score on the frames already in --out (model work)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="churn-bench-"))
    layouts = args.layouts.split(",")
    if args.rescore and not args.out:
        raise SystemExit("--rescore needs --out DIR holding a previous run's frames")
    timer = Timer()
    print(f"load average at the start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if not args.rescore:
        spark = timer(
            "spark session",
            lambda: build_local_session("churn-bench", args.cores, args.driver_memory),
            lambda s: s.sparkContext.master,
        )
        for layout in layouts:
            build_frames(spark, work, layout, args, timer)
        spark.stop()
    rows = [model_scores(work, layout, timer) for layout in layouts]
    print_scores(rows)
    if args.json:
        with args.json.open("a") as sink:
            for row in rows:
                sink.write(json.dumps(row, default=str) + "\n")
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    world = ", ".join(f"{r['layout']}: seed {r['seed']}, {r['world_members']:,} members, drivers "
                      f"{r['drivers']}" for r in rows)  # fmt: skip
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Spark local[{args.cores}], driver {args.driver_memory}; {world}"
    )


if __name__ == "__main__":
    main()
