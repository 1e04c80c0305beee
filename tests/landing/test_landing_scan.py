"""`customer360 run` without a daemon: which landing partitions must (re-)run. A changed drop day
runs again until a run on it succeeded (its fingerprint is remembered only then)."""

import os

import dagster as dg

from resources.landing import LocalLandingZone
from sensors.landing import register_landing_partitions, remember_landing_scan


def test_changed_days_stay_changed_until_a_successful_run_is_remembered(tmp_path):
    finance = tmp_path / "finance"
    finance.mkdir()
    first = finance / "spend.csv"
    first.write_text("cid,spend\n1,5\n")
    os.utime(first, (1_717_200_000, 1_717_200_000))  # 2024-06-01 UTC
    landing = LocalLandingZone(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        scan = register_landing_partitions(instance, landing)
        assert scan.changed["finance_drop"] == {"2024-06-01"}
        assert instance.get_dynamic_partitions("finance_drop") == ["2024-06-01"]
        # The run failed (nothing remembered): the day is still to be run.
        assert register_landing_partitions(instance, landing).changed["finance_drop"] == {
            "2024-06-01"
        }
        remember_landing_scan(instance, scan)
        assert register_landing_partitions(instance, landing).changed["finance_drop"] == set()
        # A second file dropped on the same day: the day runs again, no partition is added.
        second = finance / "more.csv"
        second.write_text("cid,spend\n2,7\n")
        os.utime(second, (1_717_210_000, 1_717_210_000))
        again = register_landing_partitions(instance, landing)
        assert again.changed["finance_drop"] == {"2024-06-01"}
        assert instance.get_dynamic_partitions("finance_drop") == ["2024-06-01"]
        assert again.fingerprints["finance_drop"]["2024-06-01"].count(";") == 2
