"""Resources, built for the active environment in exactly one place (`build_resources`)."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_deltalake import AzureConfig

from customer360.settings import (
    AZURE_LANDING_CONTAINER,
    AZURE_STORAGE_ACCOUNT,
    Environment,
    Settings,
    get_settings,
)
from resources.churn import ChurnSettingsResource, NotifierResource
from resources.dynamics import build_dynamics_resource
from resources.lakehouse import LakehouseResource
from resources.landing import LandingZoneResource, LocalLandingZone
from resources.spark import build_spark_resource


def _azure_storage() -> AzureConfig:
    # Service-principal credentials for the lake; all secrets stay EnvVars (never in config).
    return AzureConfig(
        account_name=dg.EnvVar(AZURE_STORAGE_ACCOUNT),
        client_id=dg.EnvVar("AZURE_CLIENT_ID"),
        client_secret=dg.EnvVar("AZURE_CLIENT_SECRET"),
        tenant_id=dg.EnvVar("AZURE_TENANT_ID"),
    )


def _notifier(settings: Settings) -> NotifierResource:
    """The churn alert channel from C360_ALERT_* variables (default: files under C360_HOME)."""
    recipients = os.environ.get("C360_ALERT_SMTP_TO", "")
    return NotifierResource(
        channel=os.environ.get("C360_ALERT_CHANNEL", "file"),
        queue_dir=os.environ.get("C360_ALERT_QUEUE_DIR", str(settings.home / "alerts")),
        smtp_host=os.environ.get("C360_ALERT_SMTP_HOST", "127.0.0.1"),
        smtp_port=int(os.environ.get("C360_ALERT_SMTP_PORT", "25")),
        smtp_sender=os.environ.get("C360_ALERT_SMTP_FROM", "customer360@localhost"),
        smtp_recipients=[r.strip() for r in recipients.split(",") if r.strip()],
        smtp_username_env="C360_ALERT_SMTP_USER"
        if os.environ.get("C360_ALERT_SMTP_USER")
        else None,
        smtp_password_env="C360_ALERT_SMTP_PASSWORD"
        if os.environ.get("C360_ALERT_SMTP_USER")
        else None,
        webhook_url=os.environ.get("C360_ALERT_WEBHOOK_URL"),
    )


#: A folder inside the landing container that holds the areas (default: its root).
AZURE_LANDING_PREFIX = "C360_AZURE_LANDING_PREFIX"
#: Areas that live elsewhere, e.g. the Synapse Link container read in place:
#: `dataverse=dataverse-myenv-myorg,finance=finance/incoming` (area=container[/folder]).
AZURE_LANDING_AREAS = "C360_AZURE_LANDING_AREAS"


def landing_areas(value: str) -> dict[str, str]:
    """Parse `area=container[/folder],…` (C360_AZURE_LANDING_AREAS)."""
    areas: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        area, sep, place = (x.strip() for x in item.partition("="))
        if not sep or not area or not place:
            raise ValueError(f"{AZURE_LANDING_AREAS}: {item!r} is not area=container[/folder]")
        areas[area] = place
    return areas


def _adls_landing() -> LandingZoneResource:
    """The landing zone in ADLS Gen2. dagster-azure and the Azure SDK are imported here, not at
    the top: every local run's start-up would pay about a second for them."""
    from dagster_azure.adls2 import ADLS2DefaultAzureCredential, ADLS2Resource

    from resources.landing_adls import AdlsLandingZone

    return AdlsLandingZone(
        adls2=ADLS2Resource(
            storage_account=dg.EnvVar(AZURE_STORAGE_ACCOUNT),
            credential=ADLS2DefaultAzureCredential(kwargs={}),
        ),
        file_system=os.environ.get(AZURE_LANDING_CONTAINER) or "landing",
        prefix=os.environ.get(AZURE_LANDING_PREFIX, ""),
        areas=landing_areas(os.environ.get(AZURE_LANDING_AREAS, "")),
    )


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Every resource the graph uses, for `C360_ENV=local` (default) or `azure`."""
    settings = settings or get_settings()
    if settings.env is Environment.AZURE:
        lakehouse = LakehouseResource(root_uri=settings.lake_root, storage=_azure_storage())
        landing = _adls_landing()
    else:
        lakehouse = LakehouseResource(root_uri=settings.lake_root)
        landing = LocalLandingZone(root=settings.landing_root)
    local_ca = None if settings.env is Environment.AZURE else str(settings.dataverse_dir / "ca.pem")
    return {
        "churn": ChurnSettingsResource(),
        "notifier": _notifier(settings),
        "dynamics": build_dynamics_resource(local_ca),
        "spark": build_spark_resource(),
        "lakehouse": lakehouse,
        "landing": landing,
    }
