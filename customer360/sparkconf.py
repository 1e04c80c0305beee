"""SparkSession settings shared by the Dagster resource, the CLI and the tests (Dagster-free)."""

from __future__ import annotations

import os
import sys
from typing import Any


def local_spark_config(cores: int | str = "*", driver_memory: str = "2g") -> dict[str, Any]:
    """Settings for `local[N]` on a small machine: few shuffle partitions, UTC, no UI, Arrow on."""
    return {
        "spark.master": f"local[{cores}]",
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": "8",
        "spark.default.parallelism": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        # Partition values come back with the types the Delta schema declares, never inferred.
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        # Arrow tables handed to Spark (arrow_to_spark) become local relations, and this rule
        # evaluates projections over them inside the optimizer: row by row, interpreted, on one
        # thread, again for every query that plans them (seconds for the match keys of 100,000
        # records). Without it they run as ordinary code-generated stages. Spark's own test
        # harness excludes it for the same reason.
        "spark.sql.optimizer.excludedRules": (
            "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation"
        ),
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
        # Local mode talks to itself only: keep the driver on loopback.
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }


def build_session(config: dict[str, Any], app_name: str = "customer360"):
    """Create (or reuse) a SparkSession from a flat config dict."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if str(config.get("spark.master", "")).startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name)
    for key, value in config.items():
        is_remote = key == "spark.remote"
        builder = builder.remote(value) if is_remote else builder.config(key, value)
    session = builder.getOrCreate()
    if "spark.remote" not in config:
        session.sparkContext.setLogLevel("WARN")
    return session


def build_local_session(
    app_name: str = "customer360", cores: int | str = "*", driver_memory: str = "2g"
):
    return build_session(local_spark_config(cores, driver_memory), app_name)
