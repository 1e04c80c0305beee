"""Run by test_lakehouse_cluster.py in its own process: a driver attached to a standalone Spark
cluster writes and reads a table through the distributed path, then prints what it saw as JSON."""

from __future__ import annotations

import json
import sys

from customer360.lakehouse import DeltaLake, WritePath
from customer360.sparkconf import build_session


def main(master: str, lake_root: str) -> None:
    spark = build_session(
        {
            "spark.master": master,
            "spark.executor.memory": "512m",
            "spark.executor.cores": "1",
            "spark.cores.max": "1",
            "spark.driver.memory": "512m",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
            "spark.ui.enabled": "false",
        },
        app_name="customer360-cluster-test",
    )
    df = spark.range(0, 10_000, numPartitions=4).selectExpr(
        "id",
        "cast(id % 7 as int) as bucket",
        "concat('name-', id) as name",
        "timestamp_seconds(1700000000 + id) as seen",
    )
    lake = DeltaLake(lake_root)
    write = lake.write(df, "bronze", "events", partition_by=["bucket"], path=WritePath.DISTRIBUTED)
    back = lake.read(spark, "bronze", "events", path=WritePath.DISTRIBUTED)
    # Executor JVMs registered with the driver (the status tracker also lists the driver).
    executors = len(spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()) - 1
    print(
        json.dumps(
            {
                "rows_written": write.rows_written,
                "partitions": len(write.partition_row_counts),
                "rows_read": back.count(),
                "sum_id": back.agg({"id": "sum"}).collect()[0][0],
                "bucket_3": back.filter("bucket = 3").count(),
                "bucket_type": dict(back.dtypes)["bucket"],
                "master": spark.sparkContext.master,
                "executors": executors,
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
