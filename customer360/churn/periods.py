"""Monthly periods: a period is the calendar month whose membership expirations are labelled."""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def period_bounds(period_start: dt.date) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the period; `period_start` must be the first of a month."""
    if period_start.day != 1:
        raise ValueError(f"period_start must be the first day of a month, got {period_start}")
    last = calendar.monthrange(period_start.year, period_start.month)[1]
    return period_start, period_start.replace(day=last)


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month `months` after (or before, if negative) `day`'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return dt.date(index // 12, index % 12 + 1, 1)


def periods_frame(spark: SparkSession, periods: Sequence[dt.date]) -> DataFrame:
    """One row per period: period_start, period_end, history_start (the month before).

    Lets one Spark pass compute several periods: the period becomes a column, not a literal.
    """
    if not periods:
        raise ValueError("at least one period is needed")
    if len(set(periods)) != len(periods):
        raise ValueError(f"periods repeat: {sorted(periods)}")
    rows = [
        F.struct(
            F.lit(p).alias("period_start"),
            F.lit(period_bounds(p)[1]).alias("period_end"),
            F.lit(add_months(p, -1)).alias("history_start"),
        )
        for p in sorted(periods)
    ]
    # Built from literals inside the JVM: no Python worker is started to scan it.
    return spark.range(1).select(F.inline(F.array(*rows)))


# ---------------------------------------------------------------------------------------------
# periods found in the data

#: Days of engagement (user logs) and transaction history a training month's features look at.
ENGAGEMENT_LOOKBACK_DAYS = 90
#: Default number of training months (the newest labelled ones before the validation month).
DEFAULT_TRAIN_MONTHS = 6
#: Where the chosen periods are kept, relative to the lake root.
PERIODS_FILE = ("churn", "periods.json")


def periods_path(lake_root: str | Path) -> Path:
    """The periods file of a lake (`<lake>/churn/periods.json`)."""
    return Path(lake_root).joinpath(*PERIODS_FILE)


@dataclass(frozen=True)
class DataFacts:
    """What the periods are decided from: date ranges of the drop, and which months the label
    files label (`{file name: first day of its month}`)."""

    transactions_first: dt.date
    transactions_last: dt.date
    logs_first: dt.date | None = None
    logs_last: dt.date | None = None
    label_files: Mapping[str, dt.date] = field(default_factory=dict)


@dataclass(frozen=True)
class ChurnPeriods:
    """The months the model trains on, validates (and calibrates) on, and scores.

    `derived` are the months the official labeller can label from the transactions;
    `from_files` the month each label file labels (used where `derived` lacks it, cross-checked
    elsewhere); `coverage` the share of the engagement look-back each month's logs and
    transactions cover; `reasons` say how each choice was made."""

    train: tuple[dt.date, ...]
    validation: dt.date
    scoring: dt.date
    derived: tuple[dt.date, ...]
    from_files: Mapping[str, dt.date]
    coverage: Mapping[str, Mapping[str, float]]
    reasons: tuple[str, ...] = ()

    @property
    def labelled(self) -> list[dt.date]:
        """The months that need labels: training and validation."""
        return sorted({*self.train, self.validation})

    @property
    def file_only(self) -> dict[str, dt.date]:
        """Label files for months the transactions cannot label: their labels are used."""
        return {k: v for k, v in self.from_files.items() if v not in self.derived}

    @property
    def cross_checked(self) -> dict[str, dt.date]:
        """Label files for months the transactions also label: compared, not used."""
        return {k: v for k, v in self.from_files.items() if v in self.derived}

    @property
    def all(self) -> list[dt.date]:
        return sorted({*self.train, self.validation, self.scoring})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: months as yyyy-mm (for metadata, the run summary and periods.json)."""
        return {
            "train": [month_label(p) for p in self.train],
            "validation": month_label(self.validation),
            "scoring": month_label(self.scoring),
            "derived_label_months": [month_label(p) for p in self.derived],
            "label_file_months": {k: month_label(v) for k, v in self.from_files.items()},
            "coverage": {k: dict(v) for k, v in self.coverage.items()},
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChurnPeriods:
        return cls(
            train=tuple(parse_month(p) for p in data["train"]),
            validation=parse_month(data["validation"]),
            scoring=parse_month(data["scoring"]),
            derived=tuple(parse_month(p) for p in data.get("derived_label_months", [])),
            from_files={k: parse_month(v) for k, v in data.get("label_file_months", {}).items()},
            coverage=data.get("coverage", {}),
            reasons=tuple(data.get("reasons", [])),
        )

    def short_coverage(self) -> dict[str, dict[str, float]]:
        """Months whose look-back the logs or transactions do not fully cover, with shares."""
        return {m: dict(v) for m, v in self.coverage.items() if min(v.values()) < 1.0}

    def coverage_note(self) -> str:
        """One sentence for the coverage check: which months lack engagement, or none."""
        short = self.short_coverage()
        if not short:
            return "logs and transactions cover every month's look-back"
        described = "; ".join(
            f"{m}: logs {s['logs']:.0%}, transactions {s['transactions']:.0%}"
            for m, s in short.items()
        )
        return (
            f"the data does not cover the engagement look-back of {described}: their activity "
            "features are missing (not zero)"
        )

    def save(self, path: str | Path) -> Path:
        """Write `as_dict()` as JSON (what `load` reads back)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.as_dict(), indent=2))
        return target

    @classmethod
    def load(cls, path: str | Path) -> ChurnPeriods:
        """The periods saved at `path`; FileNotFoundError naming it when there are none."""
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no churn periods saved yet")
        return cls.from_dict(json.loads(source.read_text()))

    def summary(self) -> str:
        """One line for logs and the run summary."""
        train = ", ".join(month_label(p) for p in self.train)
        return (
            f"train {train}; validate {month_label(self.validation)}; "
            f"score {month_label(self.scoring)}"
        )


@dataclass(frozen=True)
class PeriodOverrides:
    """Months set by hand (`C360_CHURN_*` settings, `customer360 run` options); None = detect."""

    train: tuple[dt.date, ...] | None = None
    validation: dt.date | None = None
    scoring: dt.date | None = None
    train_months: int = DEFAULT_TRAIN_MONTHS


def month_label(day: dt.date) -> str:
    return f"{day:%Y-%m}"


def parse_month(text: str) -> dt.date:
    """'2017-03' or '2017-03-01' → 2017-03-01; anything else raises naming the value."""
    value = text.strip()
    try:
        if len(value) == 7:
            return dt.date.fromisoformat(value + "-01")
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a month (yyyy-mm): {text!r}") from None
    if day.day != 1:
        raise ValueError(f"a month starts on day 1: {text!r}")
    return day


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def coverage_share(first: dt.date | None, last: dt.date | None, period_start: dt.date) -> float:
    """Share of the `ENGAGEMENT_LOOKBACK_DAYS` before `period_start` inside [first, last]."""
    if first is None or last is None:
        return 0.0
    lo = max(first, period_start - dt.timedelta(days=ENGAGEMENT_LOOKBACK_DAYS))
    hi = min(last, period_start - dt.timedelta(days=1))
    return round(max(0, (hi - lo).days + 1) / ENGAGEMENT_LOOKBACK_DAYS, 4)


def derivable_months(facts: DataFacts) -> list[dt.date]:
    """Months the official labeller can label from the transactions: a history month before
    them, and the whole following month (the 30-day renewal window) inside the data."""
    first = add_months(month_of(facts.transactions_first), 1)
    last_full = month_of(facts.transactions_last + dt.timedelta(days=1))  # a month end counts
    months, month = [], first
    while add_months(month, 2) <= last_full:
        months.append(month)
        month = add_months(month, 1)
    return months


def detect_periods(facts: DataFacts, overrides: PeriodOverrides | None = None) -> ChurnPeriods:
    """Training, validation and scoring months from the data (see docs/churn.md §Periods).

    Scoring = the month after the latest month with transactions (its expiries cannot be
    labelled yet); validation = the newest labelled month (a label file's, or the newest
    derivable one); training = up to `train_months` earlier labelled months, preferring those
    whose logs cover the look-back. Each choice can be overridden."""
    o = overrides or PeriodOverrides()
    derived = derivable_months(facts)
    files = dict(facts.label_files)
    labelled = sorted({*derived, *files.values()})
    reasons = []
    scoring = o.scoring or add_months(month_of(facts.transactions_last), 1)
    reasons.append(
        "scoring set by hand"
        if o.scoring
        else f"scoring: the month after the last transaction ({facts.transactions_last})"
    )
    before = [p for p in labelled if p < scoring]
    if o.validation:
        validation = o.validation
        reasons.append("validation set by hand")
    elif before:
        validation = before[-1]
        reasons.append("validation: the newest labelled month before scoring")
    else:
        raise ValueError(
            f"no labelled month before the scoring month {month_label(scoring)}: the transactions "
            f"({facts.transactions_first}..{facts.transactions_last}) label none and no label "
            "file covers one"
        )
    train = _training_months(facts, o, [p for p in labelled if p < validation], reasons)
    coverage = {
        month_label(p): {
            "logs": coverage_share(facts.logs_first, facts.logs_last, p),
            "transactions": coverage_share(facts.transactions_first, facts.transactions_last, p),
        }
        for p in sorted({*train, validation, scoring})
    }
    return ChurnPeriods(
        tuple(train), validation, scoring, tuple(derived), files, coverage, tuple(reasons)
    )


def _training_months(
    facts: DataFacts, o: PeriodOverrides, earlier: list[dt.date], reasons: list[str]
) -> list[dt.date]:
    if o.train:
        reasons.append("training months set by hand")
        return sorted(o.train)
    covered = [p for p in earlier if coverage_share(facts.logs_first, facts.logs_last, p) >= 1.0]
    pool = covered or [
        p for p in earlier if coverage_share(facts.logs_first, facts.logs_last, p) > 0
    ]
    pool = pool or earlier
    if not pool:
        raise ValueError("no labelled month before the validation month to train on")
    chosen = pool[-max(1, o.train_months) :]
    reasons.append(
        "training: the newest labelled months before validation"
        + (" whose logs cover the look-back" if covered else " (logs do not cover them fully)")
    )
    return chosen
