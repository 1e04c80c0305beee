"""Sensors react to external events only (new landing files, due publish retries, churn risk)."""

from __future__ import annotations

import dagster as dg


def all_sensors() -> list[dg.SensorDefinition]:
    return []
