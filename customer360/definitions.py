"""The one composition root: loads assets, checks and sensors and binds the resources of the
active environment (C360_ENV). Nothing else in the project builds a `Definitions`."""

from __future__ import annotations

import dagster as dg

import assets
import sensors
from assets.refresh import gate_on_blocking_checks
from customer360.settings import Environment, get_settings
from resources import build_resources


def build_definitions() -> dg.Definitions:
    settings = get_settings()
    # Locally every step shares one process (and so one JVM); on a cluster, steps fan out.
    executor = dg.in_process_executor if settings.env is Environment.LOCAL else None
    return dg.Definitions(
        assets=gate_on_blocking_checks(dg.load_assets_from_package_module(assets)),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        sensors=sensors.all_sensors(),
        jobs=sensors.all_jobs(),
        resources=build_resources(settings),
        executor=executor,
    )


defs = build_definitions()
