"""Landing sensors: new complete folders and files become partitions and runs, exactly once."""

import datetime as dt
import os

import dagster as dg

from customer360.generate import generate_customer_landing
from resources.landing import LocalLandingZone
from sensors.landing import dataverse_landing_sensor, finance_landing_sensor


def _tick(sensor, instance, landing, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": landing}
    )
    return sensor(context), context


def test_dataverse_sensor_requests_each_complete_folder_once(tmp_path):
    generated = generate_customer_landing(tmp_path, change_folders=2)
    # A newer folder that is still being written (no model.json yet) must not be requested.
    partial = tmp_path / "dataverse" / "2030-01-01T00.00.00Z" / "crc33_customer"
    partial.mkdir(parents=True)
    (partial / "2030.csv").write_text("half a row")
    landing = LocalLandingZone(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        result, _ = _tick(dataverse_landing_sensor, instance, landing)
        keys = [r.partition_key for r in result.run_requests]
        assert keys == generated.folders
        assert result.dynamic_partitions_requests[0].partition_keys == generated.folders
        assert all(r.run_key.startswith("dataverse_export:") for r in result.run_requests)
        again, _ = _tick(dataverse_landing_sensor, instance, landing, cursor=result.cursor)
        assert isinstance(again, dg.SkipReason) and "no new or changed" in again.skip_message


def test_finance_sensor_partitions_by_drop_day(tmp_path):
    generate_customer_landing(tmp_path, change_folders=1)
    landing = LocalLandingZone(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        result, _ = _tick(finance_landing_sensor, instance, landing)
        assert sorted(r.partition_key for r in result.run_requests) == ["2024-06-02", "2024-06-03"]
        # What the sensor daemon does with the result:
        instance.add_dynamic_partitions("finance_drop", ["2024-06-02", "2024-06-03"])
        late = tmp_path / "finance" / "late.csv"
        late.write_text("cid,spend\n1,5\n")
        stamp = dt.datetime(2024, 6, 3, 12, tzinfo=dt.UTC).timestamp()
        os.utime(late, (stamp, stamp))
        second, _ = _tick(finance_landing_sensor, instance, landing, cursor=result.cursor)
        # The day that got a new file runs again; nothing else does.
        assert [r.partition_key for r in second.run_requests] == ["2024-06-03"]
        assert second.dynamic_partitions_requests == []
