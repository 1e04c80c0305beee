"""Lake I/O benchmark: write and read a 5-million-row, 10-column table through both lakehouse paths
and, as the physical reference, with plain pyarrow.parquet. Prints rows/s and the ratio to the
reference. Then four tables of a fifth of the rows each written with `DeltaLake.write_arrow`, one
after the other and side by side (`incremental.concurrently`, as gold's incremental rewrites).
Usage: python bench/lake_io.py [--rows N] [--cores N]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from customer360.lakehouse import DeltaLake, WritePath
from customer360.lakehouse.incremental import concurrently
from customer360.sparkconf import build_local_session


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--cores", default="*")
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args()

    spark = build_local_session("bench-lake-io", cores=args.cores, driver_memory=args.driver_memory)
    source = spark.range(args.rows, numPartitions=8).selectExpr(
        "id",
        "cast(id % 1000 as int) as bucket",
        "concat('customer-', id) as name",
        "cast(id * 1.5 as double) as score",
        "cast(id % 100000 as decimal(12,2)) as amount",
        "id % 2 = 0 as active",
        "date_add(date'2020-01-01', cast(id % 1500 as int)) as day",
        "timestamp_seconds(1600000000 + id) as seen",
        "sha2(cast(id as string), 256) as fingerprint",
        "cast(id % 7 as string) as segment",
    )
    workdir = Path(tempfile.mkdtemp(prefix="c360-bench-"))
    cached = source.cache()
    cached.count()
    arrow_table = cached.toArrow()  # the reference writes the same data from memory
    results: dict[str, float] = {}

    ref_path = workdir / "reference.parquet"
    results["reference write"], _ = _timed(lambda: pq.write_table(arrow_table, ref_path))
    results["reference read"], _ = _timed(lambda: pq.read_table(ref_path).num_rows)

    lake = DeltaLake(str(workdir / "lake"))
    for path in (WritePath.ARROW, WritePath.DISTRIBUTED):
        results[f"{path} write"], _ = _timed(
            lambda p=path: lake.write(cached, "bench", p.value, path=p)
        )
        results[f"{path} read"], _ = _timed(
            lambda p=path: (
                lake.read(spark, "bench", p.value, path=p)
                .selectExpr("sum(id)", "count(*)")
                .collect()
            )
        )

    # Four rewrites of a fifth of the rows each, as gold identity's incremental run does.
    fifth = args.rows // 5
    parts = {f"part{i}": arrow_table.slice(i * fifth, fifth) for i in range(4)}
    sides: dict[str, float] = {}
    sides["one after the other"], _ = _timed(
        lambda: [lake.write_arrow(t, "side", name) for name, t in parts.items()]
    )
    sides["side by side"], _ = _timed(
        lambda: concurrently(
            {name: lambda n=name, t=t: lake.write_arrow(t, "side", n) for name, t in parts.items()}
        )
    )

    print(
        f"machine: {platform.node()} {platform.machine()}, python {platform.python_version()}, "
        f"rows {args.rows:,}, columns 10, spark local[{args.cores}]"
    )
    print(f"{'operation':<22}{'seconds':>10}{'rows/s':>14}{'vs pyarrow':>12}")
    for name, seconds in results.items():
        kind = name.split()[-1]
        ratio = results[f"reference {kind}"] / seconds
        print(f"{name:<22}{seconds:>10.2f}{args.rows / seconds:>14,.0f}{ratio:>12.2f}")
    print(f"four write_arrow overwrites of {fifth:,} rows each")
    for name, seconds in sides.items():
        print(f"{name:<22}{seconds:>10.2f}{4 * fifth / seconds:>14,.0f}")
    shutil.rmtree(workdir, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
