"""The rows a churn model learns from and is judged on: the same population in every month.

A month's labels (`label_periods`, or a label file) cover members brought into scope by a
cancel made *inside* the month (the plan-change rule), but a month still to be scored cannot
know those cancels: its members are `scoring_candidates` (the scope without the future).
Training on members the scoring month can never hold teaches the model a population it will
not see (members expiring next month who will cancel now), so training and validation rows
are restricted to the same scope as the scoring set: the last history transaction expires
inside the month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.churn.labels import cross_check_labels, label_periods, scoring_candidates
from customer360.churn.periods import ChurnPeriods, month_label

KEYS = ("msno", "period_start")
DERIVED = "derived from transactions"


@dataclass
class LabelSet:
    """The labels of the training and validation months and where each month's came from.

    `labels`: msno, period_start, is_churn. `sources`: month → DERIVED or the label file.
    `cross_checks`: per label file whose month the transactions label too, its month and
    `cross_check_labels`' counts (the file is compared, never merged)."""

    labels: DataFrame
    sources: dict[str, str]
    cross_checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def disagreements(self) -> int:
        return sum(int(c["disagree"]) for c in self.cross_checks.values())


def assemble_labels(
    transactions: DataFrame, label_files: DataFrame, periods: ChurnPeriods
) -> LabelSet:
    """Official labels from the transactions for every labelled month they allow; a label
    file's labels (`label_files`: msno, is_churn, source_file) only for the month the
    transactions cannot label; label files of derivable months cross-checked."""
    by_file = {month: name for name, month in periods.file_only.items()}
    wanted = [p for p in periods.labelled if p not in by_file]
    checked = [m for m in periods.cross_checked.values() if m not in wanted]
    derived = label_periods(transactions, wanted + checked).cache() if wanted + checked else None
    parts = (
        [derived.where(F.col("period_start").isin(wanted))]
        if derived is not None and wanted
        else []
    )
    parts += [
        label_files.where(F.col("source_file") == by_file[p]).withColumn("period_start", F.lit(p))
        for p in periods.labelled
        if p in by_file
    ]
    labels = parts[0].select(*KEYS, "is_churn")
    for part in parts[1:]:
        labels = labels.unionByName(part.select(*KEYS, "is_churn"))
    checks = {
        name: {
            "month": month_label(month),
            **cross_check_labels(
                derived.where(F.col("period_start") == F.lit(month)),
                label_files.where(F.col("source_file") == name),
            ),
        }
        for name, month in periods.cross_checked.items()
        if derived is not None
    }
    sources = {month_label(p): by_file.get(p, DERIVED) for p in periods.labelled}
    return LabelSet(labels=labels, sources=sources, cross_checks=checks)


def scope_for_periods(transactions: DataFrame, periods: Sequence[dt.date]) -> DataFrame:
    """(msno, period_start, last_expire) of every month's scoring scope (one row per member
    and month): the members whose last transaction of the month before expires inside it."""
    if not periods:
        raise ValueError("at least one period is needed")
    frames = [scoring_candidates(transactions, p) for p in sorted(set(periods))]
    scope = frames[0]
    for frame in frames[1:]:
        scope = scope.unionByName(frame)
    return scope.dropDuplicates(list(KEYS))


def labelled_rows(
    labels: DataFrame, features: DataFrame, scope: DataFrame | None = None
) -> DataFrame:
    """Labels ⋈ features (members without features cannot be scored, so cannot teach), kept to
    `scope` (`scope_for_periods`) when given: msno, period_start, is_churn + the features."""
    rows = labels.select(*KEYS, "is_churn").join(features, list(KEYS), "inner")
    if scope is not None:
        rows = rows.join(scope.select(*KEYS).dropDuplicates(list(KEYS)), list(KEYS), "left_semi")
    return rows
