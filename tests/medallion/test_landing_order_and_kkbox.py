"""Partition keys registered in time order (also repairing an instance registered out of order),
and the landing/kkbox/ sensor."""

import dagster as dg

from assets.partitions import (
    dataverse_exports,
    in_time_order,
    register_in_time_order,
    time_ordered_requests,
)
from customer360.generate import generate_customer_landing
from resources.landing import LocalLandingZone
from sensors.kkbox_landing import evaluate_kkbox, kkbox_landing_sensor
from sensors.landing import dataverse_landing_sensor

A, B, C, D = "2024-06-03T08.00.00Z", "2024-06-03T09.00.00Z", "2024-06-03T10.00.00Z", "2024-06-04"


def test_new_keys_after_the_last_are_only_added():
    assert in_time_order([A, B], [C, D]) == ([], [C, D])
    assert in_time_order([A, B], []) == ([], [])


def test_a_late_key_takes_back_the_keys_after_it():
    # B arrives after C and D were registered: C and D are re-added behind it.
    assert in_time_order([A, C, D], [B]) == ([C, D], [B, C, D])


def test_an_instance_registered_out_of_order_is_repaired():
    assert in_time_order([C, A, B], []) == ([C, A, B], [A, B, C])


def test_the_instance_ends_in_time_order():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(dataverse_exports.name, [C, A])
        register_in_time_order(instance, dataverse_exports, [D, B])
        assert instance.get_dynamic_partitions(dataverse_exports.name) == [A, B, C, D]


def test_sensor_repairs_the_order_even_when_nothing_is_new(tmp_path):
    generated = generate_customer_landing(tmp_path, change_folders=2)
    landing = LocalLandingZone(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"landing": landing})
        first = dataverse_landing_sensor(context)
        # Registered the wrong way round, as an older version could leave it.
        instance.add_dynamic_partitions(dataverse_exports.name, generated.folders[::-1])
        context = dg.build_sensor_context(
            instance=instance, cursor=first.cursor, resources={"landing": landing}
        )
        again = dataverse_landing_sensor(context)
        assert again.run_requests == []
        expected = time_ordered_requests(dataverse_exports, generated.folders[::-1], [])
        assert again.dynamic_partitions_requests == expected
        assert expected[-1].partition_keys == sorted(generated.folders)


def _drop(folder, name, text="msno\n1\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_kkbox_sensor_requests_tables_whose_files_are_complete_and_changed(tmp_path):
    kkbox = tmp_path / "kkbox"
    landing = LocalLandingZone(root=str(tmp_path))
    skip = evaluate_kkbox(None, landing)
    assert isinstance(skip, dg.SkipReason) and "waiting for files of members" in skip.skip_message
    _drop(kkbox, "members_v3.csv")
    _drop(kkbox, "transactions.csv")  # transactions_v2.csv still missing
    first = evaluate_kkbox(None, landing)
    (request,) = first.run_requests
    assert request.asset_selection == [dg.AssetKey(["churn", "members"])]
    assert isinstance(evaluate_kkbox(first.cursor, landing), dg.SkipReason)
    _drop(kkbox, "transactions_v2.csv")
    _drop(kkbox, "members_v3.csv", "msno\n1\n2\n")  # changed
    second = evaluate_kkbox(first.cursor, landing)
    (request,) = second.run_requests
    assert set(request.asset_selection) == {
        dg.AssetKey(["churn", "members"]),
        dg.AssetKey(["churn", "transactions"]),
    }
    assert request.run_key != first.run_requests[0].run_key


def test_kkbox_sensor_is_on_by_default():
    assert kkbox_landing_sensor.default_status == dg.DefaultSensorStatus.RUNNING
