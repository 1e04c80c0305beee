"""silver/customer's `reconciliation` check against a landing that races it (issue #17 §1).

The check used to count live Ids in ALL of bronze: a folder landing (bronze run by the landing
sensor) between the history merge and the check failed it, and, being blocking, stopped
automation. It now compares with the bronze partitions the history merged, at the bronze
versions that merge read (recorded in the history's commit). Real parts: a small export written
in the Synapse Link layout, the real bronze ingestion, history merge and current refresh on the
shared SparkSession, delta-rs tables in tmp_path; the record's bookkeeping without Spark.
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from customer360.bronze.ingest import ingest_dataverse
from customer360.generate import generate_customer_landing
from customer360.generate.customers import SAMPLE_DATA
from customer360.lakehouse import DeltaLake, count_rows
from customer360.lakehouse.store import NEW_TABLE
from customer360.silver.current import refresh_current
from customer360.silver.history import merge_partitions
from customer360.silver.merged_bronze import (
    RECORD_FIELD,
    merged_live_ids,
    merged_partitions,
    record_for_merge,
)
from customer360.tables import CUSTOMER_TABLE, PARTITION_COLUMN
from customer360.transforms.dataverse import live_ids_arrow
from resources.landing import LocalLandingZone

LIVENESS = ["Id", "SinkModifiedOn", "versionnumber", "IsDelete"]
UTC_US = pa.timestamp("us", tz="UTC")


def _all_bronze_live(lake: DeltaLake) -> int:
    """What the check used to compare with: every live Id in bronze now."""
    return len(live_ids_arrow(lake.read_arrow("bronze", CUSTOMER_TABLE, columns=LIVENESS)))


def _derived_rows(lake: DeltaLake) -> int:
    return sum(count_rows(lake.table("silver", t)) for t in ("customer", "customer_quarantine"))


def _reingest_with_one_more_record(lake: DeltaLake, partition: str) -> None:
    """A re-ingest of `partition` (its file grew): every row restamped, one new record."""
    rows = lake.read_arrow("bronze", CUSTOMER_TABLE, partitions={PARTITION_COLUMN: [partition]})
    new_id = pa.array(["ffffffff-0000-0000-0000-00000000abcd"])
    grown = pa.concat_tables([rows, rows.slice(0, 1).set_column(0, "Id", new_id)])
    stamp = pa.array([dt.datetime.now(dt.UTC)] * grown.num_rows, UTC_US)
    grown = grown.set_column(grown.schema.get_field_index("_ingested_at"), "_ingested_at", stamp)
    lake.replace_where(grown, "bronze", CUSTOMER_TABLE, {PARTITION_COLUMN: partition},
                       partition_by=[PARTITION_COLUMN])  # fmt: skip


@pytest.mark.spark
def test_a_folder_landing_after_the_merge_cannot_fail_the_check(spark, tmp_path):
    customers = tmp_path / "customers.csv"  # 60 of the sample's customers: one Spark pass each
    customers.write_text("".join((SAMPLE_DATA / "customer.csv").open().readlines()[:61]))
    landing, lake = tmp_path / "landing", DeltaLake(str(tmp_path / "lake"))
    folders = generate_customer_landing(
        landing, customer_csv=customers, change_folders=1, delete_fraction=0.1, finance_months=1
    ).folders
    zone = LocalLandingZone(root=str(landing))
    ingest_dataverse(lake, zone, CUSTOMER_TABLE, [folders[0]], lambda _: None)
    assert lake.table("bronze", CUSTOMER_TABLE).schema().fields[0].name == "Id"
    merge_partitions(spark, lake, [folders[0]])
    # The next export lands (the landing sensor's bronze run) before silver/customer runs.
    ingest_dataverse(lake, zone, CUSTOMER_TABLE, [folders[1]], lambda _: None)
    done = refresh_current(spark, lake, requested=False)
    derived = done.valid.table_rows + done.quarantine.table_rows

    merged = merged_live_ids(lake, done.history_version)
    assert _all_bronze_live(lake) == derived - 6  # the old comparison fails here: the race
    assert (merged.live_ids, merged.partitions, merged.reread_partitions) == (derived, 1, 0)

    # A merged partition re-ingested since (a file that grew) is read as the merge read it.
    _reingest_with_one_more_record(lake, folders[0])
    again = merged_live_ids(lake, done.history_version)
    assert (again.live_ids, again.reread_partitions) == (derived, 1)

    # A real mismatch still fails: a customer missing from silver.
    some_id = lake.read_arrow("silver", "customer", columns=["Id"])["Id"][0].as_py()
    lake.table("silver", "customer").delete(f"Id = '{some_id}'")
    assert merged_live_ids(lake, done.history_version).live_ids == _derived_rows(lake) + 1


def _bronze(partitions: list[str], ids: list[str], deleted: list[bool | None]) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "Id": ids,
            "SinkModifiedOn": pa.array(
                [dt.datetime(2024, 1, 1 + i, tzinfo=dt.UTC) for i in range(n)], UTC_US
            ),
            "versionnumber": pa.array(range(1, n + 1), pa.int64()),
            "IsDelete": pa.array(deleted, pa.bool_()),
            PARTITION_COLUMN: partitions,
            "_ingested_at": pa.array([dt.datetime(2024, 2, 1, tzinfo=dt.UTC)] * n, UTC_US),
        }
    )


def test_the_record_is_cumulative_and_found_behind_other_commits(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_bronze(["p1", "p1", "p2"], ["a", "b", "b"], [None, None, True]),
                     "bronze", CUSTOMER_TABLE, partition_by=[PARTITION_COLUMN])  # fmt: skip

    def history_commit(partitions: list[str] | None, mode: str = "append") -> None:
        version = lake.table("silver", "customer_history").version() if mode == "append" else -1
        record = {}
        if partitions is not None:
            record = record_for_merge(lake, NEW_TABLE if version < 0 else version, partitions, 0)
        lake.write_arrow(pa.table({"Id": ["x"]}), "silver", "customer_history", mode=mode,
                         commit_metadata=record)  # fmt: skip

    history_commit(["p1"], mode="overwrite")  # the first merge creates the history (version 0)
    history_commit(None)  # a commit without a record (e.g. OPTIMIZE), version 1
    history_commit(["p2"])  # version 2
    stamp = dt.datetime(2024, 2, 1, tzinfo=dt.UTC).isoformat()
    assert merged_partitions(lake, 1) == {"p1": {"version": 0, "_ingested_at": stamp}}
    assert set(merged_partitions(lake, 2)) == {"p1", "p2"}  # cumulative
    assert (merged_live_ids(lake, 0).live_ids, merged_live_ids(lake, 2).live_ids) == (2, 1)


def test_a_history_without_a_record_is_compared_with_all_of_bronze(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_bronze(["p1", "p1", "p2"], ["a", "b", "c"], [None, None, True]),
                     "bronze", CUSTOMER_TABLE, partition_by=[PARTITION_COLUMN])  # fmt: skip
    lake.write_arrow(pa.table({"Id": ["a"]}), "silver", "customer_history")  # no record
    assert merged_partitions(lake, 0) is None
    old = merged_live_ids(lake, 0)
    assert (old.live_ids, old.partitions) == (2, None) and "all of bronze" in old.basis
    # A merge on such a history records nothing (a record of its partitions alone would be
    # wrong): the check keeps comparing with all of bronze.
    assert record_for_merge(lake, 0, ["p2"], 0) == {}
    record = {RECORD_FIELD: json.dumps({"p1": {"version": 0}})}
    lake.write_arrow(pa.table({"Id": ["b"]}), "silver", "customer_history", mode="append",
                     commit_metadata=record)  # fmt: skip
    assert merged_partitions(lake, 0) is None  # the record is later than version 0
    assert merged_partitions(lake, 1) == {"p1": {"version": 0}}
