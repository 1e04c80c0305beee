"""The race of issue #17: several partition runs of silver/customer_history at once.

Each partition run is a real `dagster asset materialize` process against one Dagster instance
(DAGSTER_HOME with SQLite storage, as `customer360 dev` uses), each with its own Spark driver, all
started together — the way eager automation launched them. No pool limit is configured here, so
the runs really overlap: what is tested is that the merge itself is safe. Afterwards the history
must have exactly one current row per Id and equal (but for the `_merged_at` markers) the history
one sequential run builds from the same bronze table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from arrow_rows import sorted_rows
from small_data_jvm import SMALL_DATA_JVM

from customer360.generate import generate_customer_landing
from customer360.lakehouse import DeltaLake
from customer360.silver.history import merge_partitions
from customer360.tables import CUSTOMER_TABLE
from customer360.transforms.dataverse import MERGED_AT

pytestmark = [pytest.mark.spark, pytest.mark.e2e, pytest.mark.timeout(3600)]
REPO = Path(__file__).resolve().parents[2]
HISTORY = ("silver", "customer_history")


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        C360_HOME=str(home),
        C360_ENV="local",
        DAGSTER_HOME=str(home / "dagster"),
        C360_SPARK_DRIVER_MEMORY="1g",  # three drivers at once on a small CI machine
        JAVA_TOOL_OPTIONS=SMALL_DATA_JVM,  # each driver's own JVM, on 1,400 customers
        PYSPARK_PYTHON=sys.executable,
    )
    return env


def _dagster(env: dict[str, str], *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "dagster", "asset", "materialize",
               "-m", "customer360.definitions", "-a", "defs", *args]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(proc: subprocess.Popen, what: str) -> str:
    out, _ = proc.communicate(timeout=3000)  # generous: CI machines are often shared
    assert proc.returncode == 0, f"{what} failed:\n{out[-6000:]}"
    return out


def _register_partitions(env: dict[str, str]) -> list[str]:
    """The landing scan the sensor does, in a separate process on the same instance."""
    script = (
        "import dagster as dg\n"
        "from customer360.definitions import defs\n"
        "from sensors.landing import register_landing_partitions\n"
        "instance = dg.DagsterInstance.get()\n"
        "scan = register_landing_partitions(instance, defs.resources['landing'])\n"
        "print(','.join(sorted(scan.fingerprints['dataverse_export'])))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.strip().splitlines()[-1].split(",")


@pytest.fixture(scope="module")
def raced(tmp_path_factory):
    home = tmp_path_factory.mktemp("race")
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    generate_customer_landing(home / "landing", change_folders=2)
    env = _env(home)
    keys = _register_partitions(env)
    assert len(keys) == 3, keys
    bronze = f"bronze/{CUSTOMER_TABLE}"
    _finish(_dagster(env, "--select", bronze, "--partition-range", f"{keys[0]}...{keys[-1]}"),
            "bronze")  # fmt: skip
    started = time.monotonic()
    # Latest folder first: out of partition order as well as at the same time.
    runs = {k: _dagster(env, "--select", "/".join(HISTORY), "--partition", k) for k in keys[::-1]}
    try:
        logs = {k: _finish(p, f"history partition {k}") for k, p in runs.items()}
    finally:
        for proc in runs.values():  # none left behind when one failed
            if proc.poll() is None:
                proc.kill()
    return home, keys, logs, time.monotonic() - started


def _history(lake: DeltaLake) -> pa.Table:
    return lake.read_arrow(*HISTORY)


def test_concurrent_partition_runs_leave_one_current_row_per_id(raced):
    home, _, _, _ = raced
    history = _history(DeltaLake(str(home / "lake")))
    current = history.filter(history["is_current"])
    ids = pc.unique(history["Id"].combine_chunks())
    assert current.num_rows == len(ids), (
        f"{current.num_rows - len(pc.unique(current['Id']))} Ids have more than one current row"
    )
    assert len(pc.unique(current["Id"])) == len(ids)


def test_concurrent_runs_equal_one_sequential_run(raced, spark, tmp_path):
    home, keys, _, _ = raced
    sequential = DeltaLake(str(tmp_path / "lake"))
    shutil.copytree(home / "lake" / "bronze" / CUSTOMER_TABLE,
                    tmp_path / "lake" / "bronze" / CUSTOMER_TABLE)  # fmt: skip
    merge_partitions(spark, sequential, keys)
    expected = _history(sequential).drop_columns([MERGED_AT])
    got = _history(DeltaLake(str(home / "lake"))).drop_columns([MERGED_AT])
    assert got.num_rows == expected.num_rows
    assert sorted_rows(got) == sorted_rows(expected)


def test_partitions_merged_out_of_order_equal_in_order(raced, spark, tmp_path):
    home, keys, _, _ = raced
    bronze = home / "lake" / "bronze" / CUSTOMER_TABLE
    histories = []
    for name, order in (("in_order", keys), ("reversed", keys[::-1])):
        lake = DeltaLake(str(tmp_path / name))
        shutil.copytree(bronze, tmp_path / name / "bronze" / CUSTOMER_TABLE)
        for key in order:  # one merge per partition, as separate runs would do
            merge_partitions(spark, lake, [key])
        histories.append(_history(lake).drop_columns([MERGED_AT]))
    assert sorted_rows(histories[0]) == sorted_rows(histories[1])
