"""Sensors react to external events only (new landing files, due publish retries, churn risk)."""

import dagster as dg

from sensors.landing import dataverse_landing_sensor, finance_landing_sensor


def all_sensors() -> list[dg.SensorDefinition]:
    return [
        dataverse_landing_sensor,
        finance_landing_sensor,
        # Silver, gold and the lake database follow their upstreams (AutomationCondition.eager).
        dg.AutomationConditionSensorDefinition(
            "medallion_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
        ),
    ]
