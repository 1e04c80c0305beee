"""The code location loads, validates and switches environments in one place."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from customer360.settings import Environment, get_settings
from resources import build_resources
from resources.spark import spark_config_from_env


def test_definitions_load_and_validate():
    from customer360.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert {"spark", "lakehouse"} <= set(defs.resources)


def test_local_settings_default_to_c360_home(c360_home):
    settings = get_settings()
    assert settings.env is Environment.LOCAL
    assert settings.lake_root == f"{c360_home}/lake"
    assert str(settings.dagster_home) == f"{c360_home}/dagster"
    assert build_resources(settings)["lakehouse"].root_uri == f"{c360_home}/lake"


def test_azure_settings_use_abfss_and_env_secrets(monkeypatch):
    monkeypatch.setenv("C360_ENV", "azure")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    monkeypatch.setenv("C360_AZURE_LAKE_CONTAINER", "lake")
    settings = get_settings()
    assert settings.lake_root == "abfss://lake@acct.dfs.core.windows.net"
    lakehouse = build_resources(settings)["lakehouse"]
    assert lakehouse.storage.provider == "azure"
    # Secrets are EnvVar references, never resolved values in the definition.
    assert isinstance(lakehouse.storage.client_secret, dg.EnvVar)


def test_unknown_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("C360_ENV", "prod")
    with pytest.raises(RuntimeError, match="C360_ENV='prod' is not one of: local, azure"):
        get_settings()


def test_azure_without_account_names_the_variable(monkeypatch):
    monkeypatch.setenv("C360_ENV", "azure")
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    with pytest.raises(RuntimeError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        _ = get_settings().lake_root


def test_spark_config_switches_to_cluster_or_connect():
    assert spark_config_from_env({})["spark.master"] == "local[*]"
    cluster = spark_config_from_env({"C360_SPARK_MASTER": "spark://h:7077"})
    assert cluster["spark.master"] == "spark://h:7077"
    connect = spark_config_from_env({"C360_SPARK_REMOTE": "sc://h:15002"})
    assert connect["spark.remote"] == "sc://h:15002" and "spark.master" not in connect


def test_loading_definitions_does_not_start_a_jvm():
    code = (
        "import customer360.definitions; from pyspark import SparkContext; "
        "print(SparkContext._gateway is None and SparkContext._active_spark_context is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("True")


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for command in ("demo", "run", "generate", "dataverse", "dev"):
        assert command in out.stdout
    generate = subprocess.run(
        [sys.executable, "-m", "customer360.cli", "generate", "--help"],
        capture_output=True,
        text=True,
    )
    assert "customers" in generate.stdout and "kkbox" in generate.stdout
