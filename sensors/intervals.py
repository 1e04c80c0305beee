"""How often the daemon evaluates the landing sensors and `medallion_automation`.

The defaults suit a deployment: a landing scan a minute, automation every 30 s (Dagster's own
default). Whoever watches the UI react — a developer, the browser test — shortens them in the
environment of `customer360 dev`; the code server reads them when it loads the definitions.
"""

from __future__ import annotations

import os

LANDING_INTERVAL_ENV = "C360_LANDING_SENSOR_INTERVAL"
AUTOMATION_INTERVAL_ENV = "C360_AUTOMATION_INTERVAL"
DEFAULT_LANDING_INTERVAL = 60
DEFAULT_AUTOMATION_INTERVAL = 30


def interval_seconds(env: str, default: int) -> int:
    """Whole seconds from `env`, or `default` when it is unset or empty."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not a whole number of seconds") from None
    if value < 1:
        raise ValueError(f"{env}={raw!r} must be at least 1 second")
    return value


def landing_sensor_interval() -> int:
    """Seconds between two evaluations of each landing sensor (dataverse, finance, CRM, KKBox)."""
    return interval_seconds(LANDING_INTERVAL_ENV, DEFAULT_LANDING_INTERVAL)


def automation_interval() -> int:
    """Seconds between two ticks of `medallion_automation`."""
    return interval_seconds(AUTOMATION_INTERVAL_ENV, DEFAULT_AUTOMATION_INTERVAL)
