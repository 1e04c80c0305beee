"""Synapse Link drops into bronze (issue 14 §2): files still being written, repeated versions,
an invalid model.json in one folder, maxLength. Real exports written by the project's writer,
real LocalLandingZone, real delta-rs tables; nothing mocked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from customer360.bronze.ingest import ingest_dataverse
from customer360.bronze.max_length import MAX_LENGTH_COLUMN
from customer360.bronze.rejected import MAX_STORED_BYTES, write_rejected
from customer360.lakehouse import DeltaLake
from customer360.synapse_link import Attribute, EntityModel, RejectedRow, SynapseLinkWriter
from resources.landing import LocalLandingZone
from sensors.landing import dataverse_partition_keys, register_landing_partitions

TABLE = "crc33_customer"  # the configured table, so the real bronze asset reads it
MODEL = EntityModel.for_dataverse_table(TABLE, [Attribute("crc33_name", "string", max_length=20)])
T0 = datetime(2024, 6, 3, 8, tzinfo=UTC)
T1 = datetime(2024, 6, 3, 9, tzinfo=UTC)


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def export(landing: Path, when: datetime, names: list[str]) -> str:
    rows = [
        {"Id": i, "versionnumber": 100 + n, "crc33_name": name}
        for n, (i, name) in enumerate(zip(ids(len(names)), names, strict=True))
    ]
    writer = SynapseLinkWriter(landing / "dataverse")
    return writer.write({TABLE: (MODEL, rows)}, export_time=when)


def csv_of(landing: Path, folder: str) -> Path:
    (path,) = (landing / "dataverse" / folder / TABLE).glob("*.csv")
    return path


@pytest.fixture
def zone(tmp_path) -> LocalLandingZone:
    return LocalLandingZone(root=str(tmp_path / "landing"))


def bronze_ids(lake: DeltaLake) -> list[str]:
    return sorted(lake.read_arrow("bronze", TABLE, columns=["Id"])["Id"].to_pylist())


def test_a_file_still_being_written_is_read_up_to_its_last_full_line_then_again_once_complete(
    tmp_path, zone
):
    landing, lake, log = tmp_path / "landing", DeltaLake(str(tmp_path / "lake")), []
    folder = export(landing, T0, ["Ann", "Bob", "Cy"])
    path = csv_of(landing, folder)
    complete = path.read_bytes()
    path.write_bytes(complete[: complete.rindex(b"\n", 0, -1) + 20])  # Cy's line is half there
    before = dataverse_partition_keys(zone)

    first = ingest_dataverse(lake, zone, TABLE, [folder], log.append)

    assert (first.rows, first.rejected, first.held_back) == (2, 0, 1)
    assert "line 3: last line has no line break yet" in first.notes[0]
    assert bronze_ids(lake) == ids(2)

    path.write_bytes(complete)  # the writer finished: the file grew
    after = dataverse_partition_keys(zone)
    assert after[folder] != before[folder]  # content fingerprint, not the folder's name

    second = ingest_dataverse(lake, zone, TABLE, [folder], log.append)

    assert (second.rows, second.held_back) == (3, 0)
    assert bronze_ids(lake) == ids(3)  # the completed record arrived exactly once


def test_the_same_version_written_twice_is_kept_once(tmp_path, zone):
    landing, lake = tmp_path / "landing", DeltaLake(str(tmp_path / "lake"))
    folder = export(landing, T0, ["Ann", "Bob"])
    path = csv_of(landing, folder)
    first_line = path.read_bytes().split(b"\n")[0]
    path.write_bytes(path.read_bytes() + first_line + b"\n")  # a retry re-wrote Ann's version

    done = ingest_dataverse(lake, zone, TABLE, [folder], lambda _: None)

    assert (done.rows, done.duplicates) == (2, 1)
    table = lake.read_arrow("bronze", TABLE)
    assert sorted(table["Id"].to_pylist()) == ids(2)
    assert sorted(table["_source_line"].to_pylist()) == [1, 2]  # the first copy is the one kept


def test_invalid_model_json_fails_its_folder_only(tmp_path, zone):
    landing, lake = tmp_path / "landing", DeltaLake(str(tmp_path / "lake"))
    broken = export(landing, T0, ["Ann"])
    good = export(landing, T1, ["Ann", "Bob"])
    (landing / "dataverse" / broken / "model.json").write_text('{"entities": [{"name": ')
    (landing / "finance").mkdir()
    (landing / "finance" / "spend.csv").write_text("cid,spend\n1,5\n")

    done = ingest_dataverse(lake, zone, TABLE, [broken, good], lambda _: None)

    assert list(done.failed) == [broken]
    assert f"{broken}/model.json: model.json is not valid JSON" in done.failed[broken]
    assert done.rows == 2 and bronze_ids(lake) == ids(2)  # the good folder was written
    with dg.instance_for_test() as instance:  # listing the areas does not raise
        scan = register_landing_partitions(instance, zone)
        assert sorted(scan.fingerprints["dataverse_export"]) == [broken, good]
        assert len(scan.fingerprints["finance_drop"]) == 1


def test_a_file_that_cannot_be_read_is_set_aside_and_its_folders_other_files_ingested(
    tmp_path, zone
):
    """A partition file listed but not readable when read (removed since the listing): before,
    the error stopped every partition of the run; now that file alone is set aside."""
    landing, lake, log = tmp_path / "landing", DeltaLake(str(tmp_path / "lake")), []
    folder = export(landing, T0, ["Ann", "Bob"])
    gone = csv_of(landing, folder).with_name("2099.csv")
    gone.symlink_to(tmp_path / "removed-since-listing.csv")  # listed, nothing there to read

    done = ingest_dataverse(lake, zone, TABLE, [folder], log.append)

    assert done.failed == {} and done.rows == 2
    assert bronze_ids(lake) == ids(2)
    (reject,) = lake.read_arrow("bronze", "_rejected").to_pylist()
    assert (reject["partition"], reject["file"], reject["line"]) == (
        folder, f"{folder}/{TABLE}/2099.csv", 0,
    )  # fmt: skip
    assert reject["reason"].startswith("file set aside: cannot be read: [Errno 2]")
    assert done.notes == [f"{folder}/{TABLE}/2099.csv: {reject['reason']}"]
    assert "1 files set aside" in log[-1]


def test_the_bronze_asset_fails_a_broken_folder_with_its_reason_and_runs_the_others(tmp_path, zone):
    from assets.bronze import dataverse_bronze_assets
    from resources.lakehouse import LakehouseResource

    landing = tmp_path / "landing"
    broken = export(landing, T0, ["Ann"])
    good = export(landing, T1, ["Ann", "Bob"])
    (landing / "dataverse" / broken / "model.json").write_text("not json")
    resources = {"landing": zone, "lakehouse": LakehouseResource(root_uri=str(tmp_path / "lake"))}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataverse_export", [broken, good])
        runs = {
            key: dg.materialize(
                dataverse_bronze_assets,
                partition_key=key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
            for key in (broken, good)
        }
        assert runs[good].success
        assert not runs[broken].success
        (failure,) = [e for e in runs[broken].all_events if e.event_type_value == "STEP_FAILURE"]
        message = str(failure.event_specific_data.error.message)
        assert "1 partition(s) could not be read" in message
        failed_metadata = failure.event_specific_data.user_failure_data.metadata
        assert "model.json is not valid JSON" in failed_metadata[broken].value


def test_max_length_is_recorded_in_bronze_which_keeps_the_raw_value(tmp_path, zone):
    landing, lake = tmp_path / "landing", DeltaLake(str(tmp_path / "lake"))
    folder = export(landing, T0, ["Ann", "Bob"])
    path = csv_of(landing, folder)
    long_name = "x" * 5_000_000  # 5 MB: maxLength is 20
    path.write_bytes(path.read_bytes().replace(b",Bob,", f",{long_name},".encode()))

    done = ingest_dataverse(lake, zone, TABLE, [folder], lambda _: None)

    table = lake.read_arrow("bronze", TABLE).sort_by("_source_line")
    assert done.rows == 2
    assert table["crc33_name"].to_pylist() == ["Ann", long_name]  # bronze keeps it as exported
    assert table[MAX_LENGTH_COLUMN].to_pylist() == [
        None,
        "column 'crc33_name': 5000000 characters, maxLength 20",
    ]


def test_a_rejects_raw_text_and_reason_are_capped_and_marked(tmp_path):
    lake = DeltaLake(str(tmp_path / "lake"))
    huge = "é" * 3_000_000  # 6 MB of UTF-8
    write_rejected(lake, TABLE, "p", [RejectedRow("f.csv", 7, huge, "bad: " + huge)], T0)

    (row,) = lake.read_arrow("bronze", "_rejected").to_pylist()

    for text in (row["raw"], row["reason"]):
        assert len(text.encode()) <= MAX_STORED_BYTES + 100
        assert text.endswith("bytes in all]") and "[truncated: " in text
    assert row["raw"].startswith("éééé") and row["line"] == 7


@pytest.mark.spark
def test_silver_quarantines_a_row_over_max_length_with_the_reason(spark):
    from customer360.transforms.customer import split_valid

    rows = [
        ("1", 1, "a@example.com", "Ann", None, None, None, None),
        ("2", 2, "b@example.com", "Bob", None, None, None, "column 'crc33_name': 30 characters, "
         "maxLength 20"),
    ]  # fmt: skip
    columns = "Id string, cid long, email string, firstname string, lastname string, "
    columns += f"name string, dateofbirth date, {MAX_LENGTH_COLUMN} string"
    valid, quarantined = split_valid(spark.createDataFrame(rows, columns))

    assert [r.Id for r in valid.collect()] == ["1"]
    (row,) = quarantined.collect()
    assert row.failed_rules == ["values_within_max_length"]
    assert row[MAX_LENGTH_COLUMN].startswith("column 'crc33_name': 30 characters")
