"""Landing fingerprints follow the files' content (size, time; ETag on ADLS), not their names: a
file that grows after its folder was ingested makes the sensor request that folder again."""

import dagster as dg

from customer360.generate import generate_customer_landing
from resources.landing import LocalLandingZone
from sensors.landing import dataverse_landing_sensor, register_landing_partitions


def _tick(instance, landing, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": landing}
    )
    return dataverse_landing_sensor(context)


def test_a_folder_whose_file_grew_is_requested_again_and_only_it(tmp_path):
    generated = generate_customer_landing(tmp_path, change_folders=2)
    landing = LocalLandingZone(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        first = _tick(instance, landing)
        assert [r.partition_key for r in first.run_requests] == generated.folders
        instance.add_dynamic_partitions("dataverse_export", generated.folders)  # as the daemon
        # The writer was still appending to a file of the second folder when it was listed.
        grown = next((tmp_path / "dataverse" / generated.folders[1]).rglob("*.csv"))
        grown.write_bytes(grown.read_bytes() + grown.read_bytes().splitlines(True)[0])

        second = _tick(instance, landing, cursor=first.cursor)

        assert [r.partition_key for r in second.run_requests] == [generated.folders[1]]
        (old,) = [r.run_key for r in first.run_requests if r.partition_key == generated.folders[1]]
        assert second.run_requests[0].run_key != old  # a new run, not a repeated run key
        assert second.dynamic_partitions_requests == []


def test_an_invalid_model_json_does_not_stop_the_scan_of_any_area(tmp_path):
    generated = generate_customer_landing(tmp_path, change_folders=2)
    (tmp_path / "dataverse" / generated.folders[0] / "model.json").write_text("{not json")
    landing = LocalLandingZone(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        scan = register_landing_partitions(instance, landing)
        # The broken folder keeps its partition (its run fails with the reason), the rest go on.
        assert sorted(scan.fingerprints["dataverse_export"]) == generated.folders
        assert scan.fingerprints["finance_drop"]
