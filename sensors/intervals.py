"""How often the daemon evaluates the landing sensors and `medallion_automation`.

The defaults suit a deployment: a landing scan a minute, automation every 30 s (Dagster's own
default). Whoever watches the UI react — a developer, the browser test — shortens them in the
environment of `customer360 dev`; the code server reads them when it loads the definitions.
"""

from __future__ import annotations

from customer360.settings import positive_int_env

LANDING_INTERVAL_ENV = "C360_LANDING_SENSOR_INTERVAL"
AUTOMATION_INTERVAL_ENV = "C360_AUTOMATION_INTERVAL"
DEFAULT_LANDING_INTERVAL = 60
DEFAULT_AUTOMATION_INTERVAL = 30


def landing_sensor_interval() -> int:
    """Seconds between two evaluations of each landing sensor (dataverse, finance, CRM, KKBox)."""
    return positive_int_env(LANDING_INTERVAL_ENV, DEFAULT_LANDING_INTERVAL, "seconds")


def automation_interval() -> int:
    """Seconds between two ticks of `medallion_automation`."""
    return positive_int_env(AUTOMATION_INTERVAL_ENV, DEFAULT_AUTOMATION_INTERVAL, "seconds")
