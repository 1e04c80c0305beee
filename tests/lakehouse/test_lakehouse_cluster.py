"""A real Spark standalone cluster on 127.0.0.1 (master + one worker started from the pyspark
installation): the distributed path writes and reads with executors in separate JVMs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest
from free_ports import free_port
from small_data_jvm import SMALL_DATA_JVM

pytestmark = pytest.mark.cluster

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"


def _wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("spark-logs")
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_CLASS.parent.parent),
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(logs / "work"),
        # Master, worker, executor and driver: four JVMs for 10,000 rows (tests/small_data_jvm.py).
        "JAVA_TOOL_OPTIONS": SMALL_DATA_JVM,
    }
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    master = subprocess.Popen(
        [
            str(SPARK_CLASS),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        ],
        env=env,
        stdout=(logs / "master.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        _wait_for_port(port)
        worker = subprocess.Popen(
            [
                str(SPARK_CLASS),
                "org.apache.spark.deploy.worker.Worker",
                master_url,
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1g",
                "--webui-port",
                str(free_port()),
            ],
            env=env,
            stdout=(logs / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        yield master_url, env
    finally:
        for proc in (worker, master):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def test_distributed_path_on_standalone_cluster(standalone_cluster, tmp_path):
    master_url, env = standalone_cluster
    job = Path(__file__).with_name("cluster_job.py")
    done = subprocess.run(
        [sys.executable, str(job), master_url, str(tmp_path / "lake")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["master"] == master_url
    assert result["rows_written"] == 10_000 and result["rows_read"] == 10_000
    assert result["partitions"] == 7
    assert result["sum_id"] == sum(range(10_000))
    assert result["bucket_3"] == len([i for i in range(10_000) if i % 7 == 3])
    assert result["bucket_type"] == "int"  # declared type restored, not inferred
    assert result["executors"] == 1  # the worker's executor: a JVM separate from the driver
