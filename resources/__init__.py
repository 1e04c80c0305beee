"""Resources, built for the active environment in exactly one place (`build_resources`)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_azure.adls2 import ADLS2DefaultAzureCredential, ADLS2Resource
from dagster_deltalake import AzureConfig

from customer360.settings import (
    AZURE_LANDING_CONTAINER,
    AZURE_STORAGE_ACCOUNT,
    Environment,
    Settings,
    get_settings,
)
from resources.lakehouse import LakehouseResource
from resources.landing import AdlsLandingZone, LocalLandingZone
from resources.spark import build_spark_resource


def _azure_storage() -> AzureConfig:
    # Service-principal credentials for the lake; all secrets stay EnvVars (never in config).
    return AzureConfig(
        account_name=dg.EnvVar(AZURE_STORAGE_ACCOUNT),
        client_id=dg.EnvVar("AZURE_CLIENT_ID"),
        client_secret=dg.EnvVar("AZURE_CLIENT_SECRET"),
        tenant_id=dg.EnvVar("AZURE_TENANT_ID"),
    )


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Every resource the graph uses, for `C360_ENV=local` (default) or `azure`."""
    settings = settings or get_settings()
    if settings.env is Environment.AZURE:
        lakehouse = LakehouseResource(root_uri=settings.lake_root, storage=_azure_storage())
        landing = AdlsLandingZone(
            adls2=ADLS2Resource(
                storage_account=dg.EnvVar(AZURE_STORAGE_ACCOUNT),
                credential=ADLS2DefaultAzureCredential(kwargs={}),
            ),
            file_system=dg.EnvVar(AZURE_LANDING_CONTAINER),
        )
    else:
        lakehouse = LakehouseResource(root_uri=settings.lake_root)
        landing = LocalLandingZone(root=settings.landing_root)
    return {
        "spark": build_spark_resource(),
        "lakehouse": lakehouse,
        "landing": landing,
    }
