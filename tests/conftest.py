"""Shared fixtures: one local SparkSession for the whole test session; the order in which
`make test` hands the test files to its two workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The files that take longest in `make test` (over ~20 s each, beside the browser test), longest
#: first. `make test` hands whole files to its two workers in collection order
#: (`--dist loadfile --no-loadscope-reorder`), each worker taking the next file when it runs
#: low: with the long files handed out first and the many short ones last, both workers end
#: within seconds of each other instead of one waiting for a long file handed out late.
LONGEST_FIRST = (
    "tests/graph/test_partial_landing.py",
    "tests/churn_assets/test_churn_graph.py",
    "tests/churn_assets/test_churn_layouts.py",
    "tests/daemon/test_history_race.py",
    "tests/churn/test_churn_integration.py",
    "tests/dynamics/test_dynamics_chaos.py",
    "tests/medallion/test_medallion_graph.py",
    "tests/graph/test_no_dataverse_export.py",
    "tests/unify/test_unify_seed.py",
    "tests/lakehouse/test_lakehouse_cluster.py",
    "tests/unify/test_unify_incremental.py",
    "tests/unify/test_local_engine.py",
    "tests/unify/test_pair_scoring.py",
    "tests/unify_assets/test_unified_graph.py",
    "tests/dynamics/test_dynamics_nothing_lost.py",
    "tests/unify_assets/test_incremental_gold.py",
    "tests/churn/test_churn_features.py",
)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The browser test (marker `ui`, ~8 minutes) first, so it starts at once on one worker
    while the other works through the rest; then LONGEST_FIRST; then the rest as collected."""
    missing = [name for name in LONGEST_FIRST if not (config.rootpath / name).is_file()]
    if missing:  # a renamed file would silently fall back to the end of the queue
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names no file: {missing}")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST, start=1)}
    last = len(rank) + 1

    def place(item: pytest.Item) -> int:
        if item.get_closest_marker("ui"):
            return 0
        return rank.get(Path(item.nodeid.split("::")[0]).as_posix(), last)

    items.sort(key=place)  # stable: a file's tests keep their order, and so do the rest


@pytest.fixture(scope="session")
def spark() -> Iterator:
    """A local SparkSession sized for CI (2 cores, ~1 GiB driver), shared by every test, with
    the small-data JVM settings (its driver's CPU is most of the suite's)."""
    from customer360.sparkconf import build_session, local_spark_config
    from tests.small_data_jvm import SMALL_DATA_JVM

    config = local_spark_config(cores=2, driver_memory="1g")
    config["spark.driver.extraJavaOptions"] += f" {SMALL_DATA_JVM}"
    session = build_session(config, app_name="customer360-tests")
    yield session
    session.stop()


@pytest.fixture
def c360_home(tmp_path, monkeypatch) -> str:
    """An isolated C360_HOME for one test."""
    home = tmp_path / "c360"
    home.mkdir()
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.setenv("C360_ENV", "local")
    return str(home)


os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
