"""Sensors react to external events only (new landing files, due publish retries, churn risk)."""

import dagster as dg

from sensors.churn_alert import churn_alert_job, churn_alert_sensor
from sensors.deferred import deferred_publish_sensor
from sensors.intervals import automation_interval
from sensors.kkbox_landing import kkbox_landing_sensor
from sensors.landing import crm_landing_sensors, dataverse_landing_sensor, finance_landing_sensor


def all_sensors() -> list[dg.SensorDefinition]:
    return [
        dataverse_landing_sensor,
        finance_landing_sensor,
        *crm_landing_sensors,
        kkbox_landing_sensor,
        deferred_publish_sensor,
        churn_alert_sensor,
        # Silver, gold and the lake database follow their upstreams (AutomationCondition.eager).
        dg.AutomationConditionSensorDefinition(
            "medallion_automation",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=automation_interval(),
        ),
    ]


def all_jobs() -> list:
    return [churn_alert_job]
