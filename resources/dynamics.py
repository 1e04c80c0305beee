"""DynamicsResource: where and as whom to publish, and the engine's knobs.

Every value that differs between the local Dataverse and a real org comes from environment
variables (`customer360.settings` names them); client secrets are `dagster.EnvVar`s, so they
are resolved at run time and never stored in the definition, logs or metadata. The engine in
`customer360/dynamics/` pools one httpx client and one msal app per service principal.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from customer360.dynamics import (
    DataverseConnection,
    Principal,
    PublishOptions,
    ServiceLimits,
    TransportOptions,
)
from customer360.settings import (
    AUTHORITY_HOST_ENV,
    CA_BUNDLE_ENV,
    PRINCIPAL_COUNT_ENV,
    TENANT_ENV,
    URL_ENV,
    client_id_env,
    client_secret_env,
)

API_PATH = "/api/data/v9.2/"
ENTRA_AUTHORITY_HOST = "https://login.microsoftonline.com"


class ServicePrincipal(dg.Config):
    client_id: str
    client_secret: str = Field(description="Always an EnvVar; never a literal.")


class DynamicsResource(dg.ConfigurableResource):
    """A Dataverse environment and the application users that publish to it."""

    environment_url: str = Field(description="https://<org>.crm.dynamics.com (or the emulator)")
    authority_host: str = Field(default=ENTRA_AUTHORITY_HOST)
    tenant_id: str
    principals: list[ServicePrincipal] = Field(min_length=1)
    ca_bundle: str | None = Field(default=None, description="extra CA file (local Dataverse)")
    timeout_seconds: float = 120.0
    bulk_batch_size: int = 1000
    batch_batch_size: int = 200
    max_attempts: int = 5
    defer_delay_seconds: float = 300.0
    defer_deadline_seconds: float = 86_400.0
    max_concurrency_per_principal: int = Field(default=52, le=52)

    def connection(self) -> DataverseConnection:
        base = self.environment_url.rstrip("/")
        return DataverseConnection(
            api_url=base + API_PATH,
            authority=f"{self.authority_host.rstrip('/')}/{self.tenant_id}",
            principals=tuple(Principal(p.client_id, p.client_secret) for p in self.principals),
            ca_file=self.ca_bundle or None,
            timeout_seconds=self.timeout_seconds,
        )

    def options(self, **overrides) -> PublishOptions:
        values = {
            "bulk_batch_size": self.bulk_batch_size,
            "batch_batch_size": self.batch_batch_size,
            "max_attempts": self.max_attempts,
            "defer_delay_seconds": self.defer_delay_seconds,
            "defer_deadline_seconds": self.defer_deadline_seconds,
        }
        values.update(overrides)
        return PublishOptions(**values, transport=self.transport_options())

    def transport_options(self) -> TransportOptions:
        # Pacing to the documented service-protection budget keeps 429s near zero (docs/publish.md).
        return TransportOptions(
            max_concurrency=self.max_concurrency_per_principal, limits=ServiceLimits()
        )


def build_dynamics_resource(local_ca_bundle: str | None) -> DynamicsResource:
    """From the environment; `local_ca_bundle` is the local Dataverse's CA (None in azure)."""
    count = int(os.environ.get(PRINCIPAL_COUNT_ENV, "1"))
    return DynamicsResource(
        environment_url=dg.EnvVar(URL_ENV),
        authority_host=os.environ.get(AUTHORITY_HOST_ENV, ENTRA_AUTHORITY_HOST),
        tenant_id=dg.EnvVar(TENANT_ENV),
        principals=[
            ServicePrincipal(
                client_id=dg.EnvVar(client_id_env(i)), client_secret=dg.EnvVar(client_secret_env(i))
            )
            for i in range(1, count + 1)
        ],
        ca_bundle=os.environ.get(CA_BUNDLE_ENV, local_ca_bundle),
    )
