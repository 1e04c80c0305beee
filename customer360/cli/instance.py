"""The Dagster instance's `dagster.yaml` under DAGSTER_HOME: telemetry off and concurrency limits.

`customer360 dev` (UI + daemon) launches runs from sensors, automation and backfills; without
limits a landing scan starts one run per export folder and automation one per partition, each
with its own Spark driver. The defaults here:

- `concurrency.runs.max_concurrent_runs`: at most this many runs in progress (the rest wait in
  the run queue): one per CPU core, at most 4 — 2 on a 2-core machine (each run has its own
  Spark driver; the issue saw five at once). `C360_MAX_CONCURRENT_RUNS` overrides it.
- `concurrency.pools.default_limit: 1`: one step at a time per pool. Every writer of a Delta
  table chain declares a pool (`pool=` on the asset), so two runs never write one table at once.
- `concurrency.pools.op_granularity_run_buffer: 1`: one run more than the pool's free slots may
  start and wait for its slot inside the run. Without it the queue launches the next writer of a
  pool only once the previous run has ended, and every run first spends its start-up (a new
  process that loads the code location: seconds, tens of seconds on a busy machine) with the
  pool idle; with it that start-up overlaps the previous writer's work.

Keys the user set are kept; only missing ones are filled in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from customer360.settings import positive_int_env

MAX_RUNS_ENV = "C360_MAX_CONCURRENT_RUNS"


def default_max_concurrent_runs(cpu_count: int | None = None) -> int:
    """One per core, at most 4 (overridden by C360_MAX_CONCURRENT_RUNS)."""
    cores = cpu_count or os.cpu_count() or 1
    return positive_int_env(MAX_RUNS_ENV, max(1, min(4, cores)))


def instance_settings(max_concurrent_runs: int | None = None) -> dict[str, Any]:
    """The settings customer360 wants in dagster.yaml."""
    runs = max_concurrent_runs or default_max_concurrent_runs()
    return {
        "telemetry": {"enabled": False},  # no network here
        "concurrency": {
            "runs": {"max_concurrent_runs": runs},
            "pools": {"default_limit": 1, "op_granularity_run_buffer": 1},
        },
    }


def _fill(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """`current` with every key of `wanted` it lacks (recursively); its own values win."""
    merged = dict(current)
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _fill(merged[key], value)
        elif key not in merged:
            merged[key] = value
    return merged


def write_instance_config(home: Path, max_concurrent_runs: int | None = None) -> Path:
    """Create or complete `home/dagster.yaml`; returns its path."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    current: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a YAML mapping at the top level")
        current = loaded
    merged = _fill(current, instance_settings(max_concurrent_runs))
    if merged != current or not path.exists():
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path
