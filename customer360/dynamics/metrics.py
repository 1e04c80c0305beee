"""Run metrics: outcome counts, rates, retries, 429s, stage timings and a throughput series."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PublishMetrics:
    run_id: str
    target: str
    mode: str
    rows_read: int = 0
    published: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    #: delete mode: rows whose record is not in Dataverse (nothing to do; counted in unchanged)
    absent: int = 0
    #: rows deferred because Dataverse could not be read for them (classified on replay)
    read_deferrals: int = 0
    by_operation: Counter = field(default_factory=Counter)  # create/update/upsert/delete → rows
    requests: int = 0  # write requests sent (bulk or $batch), incl. retries
    read_requests: int = 0  # key/lookup/metadata GETs
    retries: int = 0  # transient retries (not counting 429 resends)
    throttled: Counter = field(default_factory=Counter)  # 429s by reason
    auth_refreshes: int = 0
    bisections: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # load/pre_process/process/…
    started_at: float = field(default_factory=time.time)
    duration_seconds: float = 0.0
    #: (seconds since start, rows done) — rows done = published + unchanged + failed + deferred
    throughput: list[tuple[float, int]] = field(default_factory=list)
    principals: int = 0

    @property
    def done(self) -> int:
        return self.published + self.unchanged + self.failed + self.deferred

    @property
    def records_per_second(self) -> float:
        """Rows brought to a final state per second of wall time."""
        return self.done / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def published_per_second(self) -> float:
        return self.published / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def throttled_total(self) -> int:
        return sum(self.throttled.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain values for Dagster metadata / JSON logs."""
        return {
            "run_id": self.run_id,
            "target": self.target,
            "mode": self.mode,
            "rows_read": self.rows_read,
            "published": self.published,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "deferred": self.deferred,
            "absent": self.absent,
            "read_deferrals": self.read_deferrals,
            "by_operation": dict(self.by_operation),
            "requests": self.requests,
            "read_requests": self.read_requests,
            "retries": self.retries,
            "throttled": dict(self.throttled),
            "throttled_total": self.throttled_total,
            "auth_refreshes": self.auth_refreshes,
            "bisections": self.bisections,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "duration_seconds": round(self.duration_seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
            "principals": self.principals,
        }


@dataclass(frozen=True)
class Progress:
    """What a progress callback receives (every `progress_interval_seconds` and at the end)."""

    rows_read: int
    published: int
    unchanged: int
    failed: int
    deferred: int
    elapsed_seconds: float
    records_per_second: float
    throttled: int
    finished: bool

    @property
    def done(self) -> int:
        return self.published + self.unchanged + self.failed + self.deferred


def plot_throughput(
    series: list[tuple[float, int]] | dict[str, list[tuple[float, int]]],
    path: str | Path,
    title: str = "Dynamics publish throughput",
) -> Path:
    """Write a PNG of rows done over time (one line per series when given a dict)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers/CI
    import matplotlib.pyplot as plt

    named = series if isinstance(series, dict) else {"rows done": series}
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for name, points in named.items():
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            ax.plot(xs, ys, label=name)
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("rows done")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if len(named) > 1:
            ax.legend()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
