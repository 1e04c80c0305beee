"""Settings of `customer360 dev` that decide how fast the UI reacts: the sensor and automation
intervals it honours (C360_LANDING_SENSOR_INTERVAL, C360_AUTOMATION_INTERVAL) — defaults,
overrides, bad values, and the definitions the code server loads with them (a real interpreter
loading customer360.definitions) — and the run queue of the instance it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from customer360.cli.instance import MAX_RUNS_ENV, write_instance_config
from sensors.intervals import (
    AUTOMATION_INTERVAL_ENV,
    LANDING_INTERVAL_ENV,
    automation_interval,
    landing_sensor_interval,
)

ROOT = Path(__file__).resolve().parents[2]
#: Imported only where they are used, never when the code location loads (local mode).
LAZY_MODULES = ("sklearn", "matplotlib", "dagster_azure", "azure.storage.filedatalake")


def test_defaults_are_a_minute_and_thirty_seconds(monkeypatch):
    monkeypatch.delenv(LANDING_INTERVAL_ENV, raising=False)
    monkeypatch.setenv(AUTOMATION_INTERVAL_ENV, "")
    assert landing_sensor_interval() == 60
    assert automation_interval() == 30


def test_the_environment_overrides_them(monkeypatch):
    monkeypatch.setenv(LANDING_INTERVAL_ENV, " 5 ")
    monkeypatch.setenv(AUTOMATION_INTERVAL_ENV, "7")
    assert landing_sensor_interval() == 5
    assert automation_interval() == 7


@pytest.mark.parametrize("raw", ["fast", "0", "-3", "2.5"])
def test_a_bad_value_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv(AUTOMATION_INTERVAL_ENV, raw)
    with pytest.raises(ValueError, match=f"{AUTOMATION_INTERVAL_ENV}='{raw}'"):
        automation_interval()


def test_the_loaded_definitions_use_them(tmp_path):
    """What the code server of `customer360 dev` loads: every landing sensor and the
    automation sensor evaluate at the intervals from the environment. And what every run the
    daemon starts imports: not scikit-learn (the churn model loads it in the runs that need
    it; with the rest of the churn library it was nearly half of a run's import time), not
    matplotlib (the plotting functions load it; ~16 % of the import CPU) and, in local mode,
    not dagster-azure or the Azure storage SDK (the ADLS landing zone loads them; ~14 %)."""
    probe = (
        "import json, sys; from customer360.definitions import defs; "
        f"heavy = sorted(m for m in {LAZY_MODULES!r} if m in sys.modules); "
        "print(json.dumps({'heavy': heavy, **{s.name: s.minimum_interval_seconds "
        "for s in defs.sensors}}))"
    )
    env = os.environ | {
        "C360_HOME": str(tmp_path),
        "C360_ENV": "local",
        LANDING_INTERVAL_ENV: "4",
        AUTOMATION_INTERVAL_ENV: "6",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    intervals = json.loads(done.stdout.strip().splitlines()[-1])
    assert intervals.pop("heavy") == []
    landing = {name: s for name, s in intervals.items() if name.endswith("_landing_sensor")}
    assert {"dataverse_landing_sensor", "finance_landing_sensor", "kkbox_landing_sensor"} <= set(
        landing
    )
    assert set(landing.values()) == {4}
    assert intervals["medallion_automation"] == 6
    assert intervals["deferred_publish_sensor"] == 60  # not a landing sensor: unchanged


def test_the_queue_starts_one_run_ahead_of_a_busy_pool(tmp_path, monkeypatch):
    """The next writer of a pool starts (a new process loading the code) while the current
    one still holds the slot, instead of after it ended."""
    monkeypatch.delenv(MAX_RUNS_ENV, raising=False)
    write_instance_config(tmp_path, max_concurrent_runs=2)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        assert config.run_queue_config.op_concurrency_slot_buffer == 1
        assert config.pool_config.default_pool_limit == 1
