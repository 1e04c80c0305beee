"""Churn pipeline benchmark: generate KKBox-format data, then read → label → features → model →
score → target → dashboard, timing each stage on local Spark. Prints figures, asserts nothing.

    .venv/bin/python bench/churn.py                 # 100,000 members, ~6M user-log rows
    .venv/bin/python bench/churn.py --members 20000 --cores 2 --driver-memory 4g
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from customer360.churn import (
    DashboardCurves,
    FileQueueNotifier,
    RetentionEconomics,
    build_alert,
    choose_threshold,
    features_for_periods,
    generate_kkbox,
    label_periods,
    predict_churn_spark,
    profit_curve,
    read_members,
    read_train,
    read_transactions,
    read_user_logs,
    render_dashboard,
    save_model,
    scoring_candidates,
    train_churn_model,
    transactions_clean,
)
from customer360.sparkconf import build_local_session

DEC, JAN, FEB, MAR, APR = (dt.date(2016, 12, 1), dt.date(2017, 1, 1), dt.date(2017, 2, 1),
                           dt.date(2017, 3, 1), dt.date(2017, 4, 1))  # fmt: skip


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="churn-bench-"))
    landing = work / "landing" / "kkbox"
    timer = Timer()
    overall = time.perf_counter()
    print(f"load average at the start: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")

    files = timer(
        "generate (numpy → CSV)",
        lambda: generate_kkbox(landing, members=args.members, seed=args.seed),
        lambda paths: ", ".join(
            f"{stem} {sum(1 for _ in p.open()) - 1:,}" for stem, p in paths.items()
        ),
    )
    size_mb = sum(p.stat().st_size for p in files.values()) / 2**20
    print(f"{'':<36} {'':>7}    {'':>7}          {size_mb:,.0f} MiB of CSV in {landing}")

    spark = timer(
        "spark session",
        lambda: build_local_session("churn-bench", args.cores, args.driver_memory),
        lambda s: s.sparkContext.master,
    )

    def read_all():
        tx = [read_transactions(spark, files[k]) for k in ("transactions", "transactions_v2")]
        logs = [read_user_logs(spark, files[k]) for k in ("user_logs", "user_logs_v2")]
        members, members_bad = read_members(spark, files["members_v3"])
        train, train_bad = read_train(spark, files["train_v2"])
        transactions = tx[0][0].unionByName(tx[1][0]).cache()
        user_logs = logs[0][0].unionByName(logs[1][0]).cache()
        members = members.cache()
        rejected = sum(
            df.count()
            for df in (tx[0][1], tx[1][1], logs[0][1], logs[1][1], members_bad, train_bad)
        )
        counts = (transactions.count(), user_logs.count(), members.count())
        return transactions, user_logs, members, train, rejected, counts

    transactions, user_logs, members, train_v2, _rejected, _counts = timer(
        "read + validate + cache (6 files)",
        read_all,
        lambda r: f"tx {r[5][0]:,}, logs {r[5][1]:,}, members {r[5][2]:,}, rejected {r[4]}",
    )
    clean = transactions_clean(transactions).cache()
    timer("transactions_clean", clean.count, lambda n: f"{n:,} rows")
    labels = label_periods(transactions, [DEC, JAN, FEB]).select("msno", "period_start", "is_churn")
    labels = labels.unionByName(train_v2.withColumn("period_start", F.lit(MAR))).cache()
    timer("labels (Dec, Jan, Feb) + train_v2", labels.count, lambda n: f"{n:,} labels")
    frame = timer(
        "features (4 periods) ⋈ labels",
        lambda: (
            features_for_periods(clean, user_logs, members, [DEC, JAN, FEB, MAR])
            .join(labels, ["msno", "period_start"], "inner")
            .toPandas()
        ),
        lambda f: f"{len(f):,} rows × {f.shape[1]} columns",
    )
    by_period = {p: frame[frame["period_start"] == p] for p in (DEC, JAN, FEB, MAR)}
    bundle = timer(
        "model: tune (4 fits) + calibrate",
        lambda: train_churn_model(
            pd.concat([by_period[DEC], by_period[JAN]]),
            by_period[FEB],
            by_period[MAR],
            version="bench",
        ),
        lambda b: (
            f"chosen {json.dumps({k: b.params[k] for k in ('learning_rate', 'max_leaf_nodes')})}"
        ),
    )
    save_model(bundle, work / "model")

    def score_april():
        candidates = scoring_candidates(transactions, APR).select("msno", "period_start")
        features = features_for_periods(clean, user_logs, members, [APR]).join(
            candidates, ["msno", "period_start"], "inner"
        )
        return predict_churn_spark(bundle, features).toPandas()

    predictions = timer(
        "score Apr 2017 (Spark mapInPandas)", score_april, lambda p: f"{len(p):,} members"
    )

    def target_and_report():
        economics = RetentionEconomics()
        curve = profit_curve(predictions["churn_probability"], economics)
        choice = choose_threshold(curve)
        scored = members.join(
            spark.createDataFrame(predictions[["msno"]]), "msno", "inner"
        ).toPandas()
        history = frame.groupby("period_start", as_index=False)["is_churn"].mean()
        history = history.rename(columns={"is_churn": "churn_rate"})
        curves = DashboardCurves(
            bundle.metrics["precision_recall_curve"], curve, choice.threshold, economics, "2017-04"
        )
        path = render_dashboard(predictions, scored, history, curves, work / "churn-2017-04.html")
        alert = build_alert("2017-04", predictions, choice.threshold,
                            expected_profit=choice.profit, economics=economics,
                            dashboard_path=path)  # fmt: skip
        FileQueueNotifier(work / "queue").send(alert)
        return choice, path

    _choice, dashboard = timer(
        "profit threshold + dashboard + alert",
        target_and_report,
        lambda r: f"threshold {r[0].threshold:.4f}, targeted {r[0].targeted:,}",
    )
    total = time.perf_counter() - overall
    cpu_total = sum(stage[2] for stage in timer.stages)
    print(f"{'TOTAL (incl. generation)':<36} {total:7.1f} s  {cpu_total:7.1f} cpu-s")
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")

    test = bundle.metrics["test"]
    print("\nModel on the held-out month (Mar 2017, labels from train_v2.csv):")
    for key in ("rows", "positives", "base_rate", "average_precision", "roc_auc", "log_loss",
                "brier"):  # fmt: skip
        value = test[key]
        print(f"  {key:<18} {value:.4f}" if isinstance(value, float) else f"  {key:<18} {value}")
    print("  calibration (decile: mean predicted / observed):")
    for row in test["calibration"]:
        print(f"    {row['bin']:>2}: {row['mean_predicted']:.3f} / {row['observed_rate']:.3f}")
    print("  top features (permutation importance on Feb):")
    for row in bundle.metrics["feature_importance"][:8]:
        print(f"    {row['feature']:<45} {row['importance']:.4f}")
    print(f"\nDashboard: {dashboard}")
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Spark local[{args.cores}], driver {args.driver_memory}"
    )
    spark.stop()


if __name__ == "__main__":
    main()
