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

import pandas as pd
from pyspark.sql import functions as F
from sklearn.metrics import average_precision_score, log_loss

from customer360.churn import (
    features_for_periods,
    generate_kkbox,
    label_periods,
    predict_churn,
    read_members,
    read_train,
    read_transactions,
    read_user_logs,
    scoring_candidates,
    train_churn_model,
    transactions_clean,
)
from customer360.churn.generator import DRIVER_MIXES
from customer360.churn.layout import LABEL_FILES, data_facts, layout_of_directory
from customer360.churn.periods import ChurnPeriods, detect_periods
from customer360.sparkconf import build_local_session


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
    """The drop's files by layout: transactions (with source_file), logs, members, labels."""
    layout = layout_of_directory(landing)

    def union(reader, names, tagged=False):
        frames = []
        for name in names:
            good, _bad = reader(spark, landing / name)
            frames.append(good.withColumn("source_file", F.lit(name)) if tagged else good)
        result = frames[0]
        for frame in frames[1:]:
            result = result.unionByName(frame)
        return result

    transactions = union(read_transactions, layout.transactions, tagged=True).cache()
    user_logs = union(read_user_logs, layout.user_logs).cache()
    members = read_members(spark, landing / layout.members)[0].cache()
    labels = union(read_train, layout.label_files, tagged=True) if layout.label_files else None
    return layout, transactions, user_logs, members, labels


def labelled_frame(transactions, clean, user_logs, members, files, periods: ChurnPeriods):
    """Features ⋈ labels of the training and validation months (pandas), plus the scoring
    month's features, in one feature job."""
    by_file = {month: name for name, month in periods.file_only.items()}
    derived_months = [p for p in periods.labelled if p not in by_file]
    labels = label_periods(transactions, derived_months).select("msno", "period_start", "is_churn")
    for month, name in by_file.items():
        labels = labels.unionByName(
            files.where(F.col("source_file") == name)
            .select("msno", "is_churn")
            .withColumn("period_start", F.lit(month))
        )
    features = features_for_periods(clean, user_logs, members, periods.all).cache()
    frame = features.join(labels, ["msno", "period_start"], "inner").toPandas()
    candidates = scoring_candidates(transactions, periods.scoring).select("msno").distinct()
    scoring = features.where(F.col("period_start") == F.lit(periods.scoring)).join(
        candidates, "msno", "inner"
    )
    return frame, scoring.toPandas(), candidates.count()


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
    scores["ap_ratio"] = scores["ap_model"] / scores["ap_true"]
    scores["logloss_ratio"] = scores["logloss_model"] / scores["logloss_true"]
    return scores


def run_layout(spark, work: Path, layout: str, args, timer: Timer) -> dict[str, Any]:
    """Generate one world in `layout`, run the pipeline on it, compare with the truth."""
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
    _, transactions, user_logs, members, files = read_drop(spark, landing)
    label_names = [] if files is None else list(LABEL_FILES)
    facts = data_facts(transactions, user_logs, [n for n in label_names if (landing / n).exists()])
    periods = detect_periods(facts)
    print(f"[{layout}] periods: {periods.summary()}", flush=True)
    clean = transactions_clean(transactions).cache()
    frame, scoring, candidates = timer(
        f"[{layout}] labels + features",
        lambda: labelled_frame(transactions, clean, user_logs, members, files, periods),
        lambda r: f"{len(r[0]):,} labelled rows, {len(r[1]):,} to score of {r[2]:,}",
    )
    # Kept for offline model work: the labelled and scoring feature frames of this world.
    frame.to_parquet(work / layout / "frame.parquet")
    scoring.to_parquet(work / layout / "scoring.parquet")
    (work / layout / "periods.json").write_text(json.dumps(periods.as_dict(), indent=2))
    months = pd.to_datetime(frame["period_start"]).dt.date
    bundle = timer(
        f"[{layout}] model",
        lambda: train_churn_model(
            frame[months.isin(periods.train)],
            frame[months == periods.validation],
            importance_repeats=0,
        ),
        lambda b: json.dumps(b.params.get("chosen", b.params), default=str)[:120],
    )
    predictions = predict_churn(bundle, scoring)
    truth = pd.read_csv(truth_dir / "truth.csv")
    scores = oracle_scores(predictions, truth)
    scores.update(layout=layout, periods=periods.summary(), candidates=candidates)
    scores["coverage"] = len(predictions) / candidates if candidates else float("nan")
    for frame_ in (transactions, user_logs, members, clean):
        frame_.unpersist()
    return scores


def print_scores(rows: list[dict[str, Any]]) -> None:
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
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="churn-bench-"))
    timer = Timer()
    print(f"load average at the start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    spark = timer(
        "spark session",
        lambda: build_local_session("churn-bench", args.cores, args.driver_memory),
        lambda s: s.sparkContext.master,
    )
    rows = [run_layout(spark, work, layout, args, timer) for layout in args.layouts.split(",")]
    print_scores(rows)
    if args.json:
        with args.json.open("a") as sink:
            for row in rows:
                sink.write(json.dumps({**row, "seed": args.seed, "world_members": args.members,
                                       "drivers": args.drivers}, default=str) + "\n")  # fmt: skip
    print(f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Spark local[{args.cores}], driver {args.driver_memory}; seed {args.seed}, "
        f"{args.members:,} members, drivers {args.drivers}"
    )
    spark.stop()


if __name__ == "__main__":
    main()
