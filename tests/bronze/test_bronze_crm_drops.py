"""Second CRM source drops into bronze (issue 14 §1): one file of a drop day that cannot be read
is set aside whole with its file and reason; the day's other files are ingested and the asset's
metadata says what was set aside. Real files in a LocalLandingZone, the real bronze asset run by
Dagster, real delta-rs; nothing mocked."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.crm import crm_assets
from assets.keys import crm_bronze_key
from customer360.bronze.drops import day_files
from customer360.generate.customers import RESIDENTS_CSV
from customer360.lakehouse import DeltaLake
from customer360.unify import read_crm_csv, unify_config
from resources.lakehouse import LakehouseResource
from resources.landing import LocalLandingZone

DAY = "2024-06-03"
MAPPING = unify_config().source("residents").csv
BRONZE = crm_bronze_key("residents")


def drop(landing: Path, name: str, data: bytes) -> Path:
    path = landing / MAPPING.landing_area / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = datetime.fromisoformat(DAY).replace(hour=12, tzinfo=UTC).timestamp()
    os.utime(path, (when, when))
    return path


def good_rows() -> bytes:
    header, *rows = RESIDENTS_CSV.read_bytes().splitlines(keepends=True)
    return header + b"".join(rows[:5])


BAD_FILES = {
    # a header without the mapped key column
    "header": b"Name,Email\nAnn,ann@example.com\n",
    # not UTF-8 (e.g. a Latin-1 export)
    "encoding": "cid,FirstName\n1,Jos\xe9\n".encode("latin-1"),
    # not text at all
    "binary": bytes(range(128, 256)) + b"\n",
}


def materialize_bronze(tmp_path: Path) -> dg.ExecuteInProcessResult:
    (bronze,) = [a for a in crm_assets if BRONZE in a.keys]
    resources = {
        "landing": LocalLandingZone(root=str(tmp_path / "landing")),
        "lakehouse": LakehouseResource(root_uri=str(tmp_path / "lake")),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("crm_residents_drop", [DAY])
        return dg.materialize(
            [bronze], partition_key=DAY, instance=instance, resources=resources,
            raise_on_error=False,
        )  # fmt: skip


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_one_unreadable_file_is_set_aside_and_the_days_other_files_are_ingested(tmp_path, problem):
    landing = tmp_path / "landing"
    drop(landing, "a_good.csv", good_rows())
    drop(landing, "b_bad.csv", BAD_FILES[problem])

    result = materialize_bronze(tmp_path)

    assert result.success  # before: the whole drop day failed (dg.Failure from the parser)
    lake = DeltaLake(str(tmp_path / "lake"))
    files = set(lake.read_arrow("bronze", BRONZE.path[-1], columns=["_source_file"])[0].to_pylist())
    assert files == {"a_good.csv"}
    assert lake.read_arrow("bronze", BRONZE.path[-1]).num_rows == 5
    (reject,) = lake.read_arrow("bronze", "_rejected").to_pylist()
    assert (reject["source_table"], reject["partition"], reject["file"]) == (
        BRONZE.path[-1], DAY, "b_bad.csv",
    )  # fmt: skip
    assert reject["reason"].startswith("file rejected: source 'residents': ")
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert meta["rejected_rows"].value == 1
    assert "b_bad.csv: set aside whole" in meta["set_aside"].value
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "no_rejected_rows" and not check.passed  # WARN, visible


def test_the_reasons_name_the_problem(tmp_path):
    landing = tmp_path / "landing"
    for name, data in BAD_FILES.items():
        drop(landing, f"{name}.csv", data)
    zone = LocalLandingZone(root=str(landing))

    def parse(data: bytes, path: str):
        return read_crm_csv(data, path, MAPPING)

    files = zone.list_files(MAPPING.landing_area, suffix=".csv")
    parts, rejected, notes = day_files(zone, MAPPING.landing_area, files, DAY, parse, None)

    assert parts == []
    reasons = {r.file: r.reason for r in rejected}
    assert "header.csv: header lacks column(s) [" in reasons["header.csv"]
    assert "'cid'" in reasons["header.csv"]
    assert "encoding.csv: not UTF-8 (byte 19)" in reasons["encoding.csv"]
    assert "binary.csv: not UTF-8 (byte 0)" in reasons["binary.csv"]
    assert len(notes) == 3


def test_a_file_gone_between_listing_and_reading_is_set_aside(tmp_path):
    """A file listed and then removed (or unreadable) before it is read: only it is set aside."""
    landing = tmp_path / "landing"
    drop(landing, "a.csv", good_rows())
    gone = drop(landing, "b.csv", good_rows())
    zone = LocalLandingZone(root=str(landing))
    files = zone.list_files(MAPPING.landing_area, suffix=".csv")
    gone.unlink()

    parts, rejected, notes = day_files(
        zone, MAPPING.landing_area, files, DAY, lambda d, p: read_crm_csv(d, p, MAPPING), None
    )

    assert [p.num_rows for p in parts] == [5]
    (reject,) = rejected
    assert (reject.file, reject.line) == ("b.csv", 0)
    assert reject.reason.startswith("file rejected: cannot be read: ")
    assert notes[0].startswith("b.csv: set aside, cannot be read:")
