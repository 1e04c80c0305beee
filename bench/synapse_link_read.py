"""Benchmark: read a Synapse Link partition file of N rows × 20 columns (default 1,000,000).

    .venv/bin/python bench/synapse_link_read.py [--rows 1000000] [--repeat 3] [--multiline]
                                                [--stdlib]

Generates one year-partition file in a temporary export root: the incremental folder and its
model.json come from ``SynapseLinkWriter.write``, the rows are formatted by the writer's own row
formatting and appended in chunks of 100,000. Then times ``read_entity`` (file read + parse +
typing + ingestion columns), printing wall and CPU rows/s. ``--multiline`` puts a line break
in every 100th name (records spanning lines), ``--stdlib`` forces the stdlib csv parser. Also
times ``SynapseLinkWriter.write`` on 100,000 rows.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from customer360.synapse_link import (
    Attribute,
    EntityModel,
    LocalFileSystem,
    SynapseLinkWriter,
    chunks,
    list_export_folders,
    read_entity,
)

TABLE = "crc33_benchcustomer"


def bench_model() -> EntityModel:
    business = [
        Attribute("crc33_cid", "int64"),
        Attribute("crc33_firstname", "string", max_length=100),
        Attribute("crc33_lastname", "string", max_length=100),
        Attribute("crc33_name", "string", max_length=200),
        Attribute("crc33_email", "string", max_length=100),
        Attribute("crc33_telephone", "string", max_length=50),
        Attribute("crc33_city", "string", max_length=100),
        Attribute("crc33_state", "string", max_length=50),
        Attribute("crc33_postcode", "string", max_length=20),
        Attribute("crc33_streetaddress", "string", max_length=250),
        Attribute("crc33_dateofbirth", "dateTime"),
        Attribute("crc33_spend", "decimal", precision=19, scale=4),
        Attribute("crc33_score", "double"),
        Attribute("statecode", "int32"),
        Attribute("createdon", "dateTimeOffset"),
    ]
    return EntityModel.for_dataverse_table(TABLE, business)  # 20 columns


def bench_rows(count: int, *, multiline: bool, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    rows = []
    for cid in range(count):
        created = start + timedelta(seconds=rng.randrange(300 * 86400))
        name = f"First{cid} Last{cid}"
        if multiline and cid % 100 == 0:
            name = f"First{cid}\nLast{cid}"
        rows.append(
            {
                "Id": str(uuid.UUID(int=rng.getrandbits(128))),
                "crc33_cid": cid,
                "crc33_firstname": f"First{cid}",
                "crc33_lastname": f"Last{cid}",
                "crc33_name": name,
                "crc33_email": f"first{cid}.last@contoso.com",
                "crc33_telephone": "801-555-0100",
                "crc33_city": "Salt Lake City, UT" if cid % 7 == 0 else "Provo",
                "crc33_state": "UT",
                "crc33_postcode": f"{cid % 99999:05d}",
                "crc33_streetaddress": "12345 Main Street",
                "crc33_dateofbirth": datetime(
                    1970 + cid % 30, 1 + cid % 12, 1 + cid % 28, tzinfo=UTC
                ),
                "crc33_spend": Decimal(rng.randrange(100_000_000)) / 100,
                "crc33_score": rng.random(),
                "statecode": 0,
                "versionnumber": 1_000 + cid,
                "createdon": created,
                "SinkCreatedOn": created,
                "SinkModifiedOn": created,
            }
        )
    return rows


def build_export(root: Path, count: int, *, multiline: bool) -> None:
    """One incremental folder holding one partition file of ``count`` rows."""
    model = bench_model()
    writer = SynapseLinkWriter(root)
    chunk = 100_000
    export_time = datetime(2022, 1, 1, tzinfo=UTC)
    folder = writer.write({TABLE: (model, [])}, export_time=export_time)
    # the bulk is formatted by the writer's own row formatting, appended chunk by chunk
    target = root / folder / TABLE / "2021.csv"
    target.parent.mkdir(exist_ok=True)
    for offset in range(0, count, chunk):
        rows = bench_rows(min(chunk, count - offset), multiline=multiline, seed=offset)
        partitions = writer._partition_lines(TABLE, model, rows, export_time)
        with open(target, "a", encoding="utf-8", newline="") as handle:
            for lines in partitions.values():
                handle.write("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--multiline", action="store_true")
    parser.add_argument(
        "--stdlib", action="store_true", help="disable the pyarrow fast path (reference parser)"
    )
    args = parser.parse_args()
    if args.stdlib:
        chunks._arrow_chunks = lambda data, field_count: None

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        build_export(root, args.rows, multiline=args.multiline)
        size = sum(p.stat().st_size for p in root.rglob("*.csv"))
        print(
            f"generated {args.rows:,} rows × 20 columns ({size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        fs = LocalFileSystem(root)
        (folder,) = list_export_folders(fs)
        timings = []  # (wall, cpu): the machine is shared, CPU time shows our own cost
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            result = read_entity(fs, folder, TABLE)
            timings.append((time.perf_counter() - started, time.process_time() - cpu_started))
            assert result.table.num_rows == args.rows and not result.rejected, result.rejected[:3]
        wall, cpu = min(t[0] for t in timings), min(t[1] for t in timings)
        print(
            f"read_entity: best wall {wall:.2f} s → {args.rows / wall:,.0f} rows/s; "
            f"best CPU {cpu:.2f} s → {args.rows / cpu:,.0f} rows/s "
            f"(runs: {', '.join(f'{w:.2f}/{c:.2f}' for w, c in timings)} s wall/CPU)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_rows(100_000, multiline=False)
        started = time.perf_counter()
        SynapseLinkWriter(tmp).write(
            {TABLE: (bench_model(), rows)}, export_time=datetime(2022, 1, 1, tzinfo=UTC)
        )
        elapsed = time.perf_counter() - started
        print(
            f"SynapseLinkWriter.write: 100,000 rows in {elapsed:.2f} s "
            f"→ {1e5 / elapsed:,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
