"""The one composition root: loads assets, checks and sensors and binds the resources of the
active environment (C360_ENV). Nothing else in the project builds a `Definitions`."""

from __future__ import annotations

import warnings

import dagster as dg

# The graph uses beta/preview parameters on purpose (e.g. `backfill_policy`): documented once
# here instead of a warning per asset on every load by the UI, the daemon and each run.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

import assets  # noqa: E402  (after the filters: importing them declares the assets)
import sensors  # noqa: E402
from assets.refresh import gate_on_blocking_checks  # noqa: E402
from customer360.settings import Environment, get_settings  # noqa: E402
from resources import build_resources  # noqa: E402


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
