"""The Spark resource: lazy, so assets that never touch Spark never start a JVM."""

from __future__ import annotations

import os
from typing import Any

from dagster_pyspark import LazyPySparkResource

from customer360.sparkconf import build_session, local_spark_config

#: Cluster switches (README "Configuration"): a standalone/k8s master, or Spark Connect.
SPARK_MASTER_ENV = "C360_SPARK_MASTER"
SPARK_REMOTE_ENV = "C360_SPARK_REMOTE"
SPARK_DRIVER_MEMORY_ENV = "C360_SPARK_DRIVER_MEMORY"


class SparkResource(LazyPySparkResource):
    """dagster-pyspark's lazy resource with the project's session rules (UTC, Arrow, log level,
    the venv's Python for workers, Spark Connect when `spark.remote` is set)."""

    def _init_session(self) -> None:
        if self._spark_session is None:
            self._spark_session = build_session(self.spark_config, app_name="customer360")

    @property
    def is_local(self) -> bool:
        return str(self.spark_config.get("spark.master", "")).startswith("local")


def spark_config_from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Local mode sized for a 2-core/24 GiB machine unless a cluster is configured."""
    env = os.environ if environ is None else environ
    config = local_spark_config(cores="*", driver_memory=env.get(SPARK_DRIVER_MEMORY_ENV, "4g"))
    if env.get(SPARK_REMOTE_ENV):
        # Spark Connect: the server owns master and memory settings.
        keep = ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions")
        config = {k: v for k, v in config.items() if k in keep}
        config["spark.remote"] = env[SPARK_REMOTE_ENV]
    elif env.get(SPARK_MASTER_ENV):
        config["spark.master"] = env[SPARK_MASTER_ENV]
        # Executors elsewhere must reach the driver: let Spark pick its routable address.
        for key in ("spark.default.parallelism", "spark.driver.host", "spark.driver.bindAddress"):
            config.pop(key, None)
        config["spark.sql.shuffle.partitions"] = "200"
    return config


def build_spark_resource() -> SparkResource:
    return SparkResource(spark_config=spark_config_from_env())
