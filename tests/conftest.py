"""Shared fixtures: one local SparkSession for the whole test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator:
    """A local SparkSession sized for CI (2 cores, ~1 GiB driver), shared by every test."""
    from customer360.sparkconf import build_local_session

    session = build_local_session(app_name="customer360-tests", cores=2, driver_memory="1g")
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
