"""The one environment switch: where state lives and which profile (local or azure) is active.

Everything that needs a path or a profile asks this module, so `C360_ENV` and `C360_HOME` are read
in exactly one place. Nothing here imports Dagster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Environment(StrEnum):
    LOCAL = "local"
    AZURE = "azure"


#: Environment variables read by the azure profile (documented in README "Configuration").
AZURE_STORAGE_ACCOUNT = "AZURE_STORAGE_ACCOUNT_NAME"
AZURE_LAKE_CONTAINER = "C360_AZURE_LAKE_CONTAINER"
AZURE_LANDING_CONTAINER = "C360_AZURE_LANDING_CONTAINER"


@dataclass(frozen=True)
class Settings:
    """Resolved run-time layout. See DESIGN.md "Where things live at run time"."""

    env: Environment
    home: Path

    @property
    def lake_root(self) -> str:
        """Root URI of the Delta lake: a local folder, or `abfss://` in azure mode."""
        return self._root(AZURE_LAKE_CONTAINER, "lake")

    @property
    def landing_root(self) -> str:
        return self._root(AZURE_LANDING_CONTAINER, "landing")

    def _root(self, container_env: str, name: str) -> str:
        """`C360_HOME/<name>`, or in azure mode the container (default `<name>`) of the
        storage account."""
        if self.env is Environment.AZURE:
            account = _require(AZURE_STORAGE_ACCOUNT)
            container = os.environ.get(container_env, name)
            return f"abfss://{container}@{account}.dfs.core.windows.net"
        return str(self.home / name)

    @property
    def dataverse_dir(self) -> Path:
        """The local Dataverse emulator's database, certificates and config."""
        return self.home / "dataverse"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"C360_ENV=azure needs the environment variable {name}")
    return value


def get_settings() -> Settings:
    """Read `C360_ENV` (local|azure, default local) and `C360_HOME` (default ./.c360)."""
    raw_env = os.environ.get("C360_ENV", Environment.LOCAL.value).strip().lower()
    try:
        env = Environment(raw_env)
    except ValueError:
        allowed = ", ".join(e.value for e in Environment)
        raise RuntimeError(f"C360_ENV={raw_env!r} is not one of: {allowed}") from None
    home = Path(os.environ.get("C360_HOME", ".c360")).expanduser().resolve()
    return Settings(env=env, home=home)


# The Dataverse connection: the same variables for a real org and the local Dataverse (the CLI
# sets them for the latter); resources/dynamics.py reads them.
URL_ENV = "C360_DATAVERSE_URL"
AUTHORITY_HOST_ENV = "C360_DATAVERSE_AUTHORITY_HOST"
TENANT_ENV = "C360_DATAVERSE_TENANT_ID"
CA_BUNDLE_ENV = "C360_DATAVERSE_CA_BUNDLE"
PRINCIPAL_COUNT_ENV = "C360_DATAVERSE_PRINCIPALS"


def client_id_env(index: int) -> str:
    return f"C360_DATAVERSE_CLIENT_ID_{index}"


def client_secret_env(index: int) -> str:
    return f"C360_DATAVERSE_CLIENT_SECRET_{index}"


def positive_int_env(env: str, default: int, unit: str = "") -> int:
    """A whole number of at least 1 from `env`, or `default` when it is unset or empty; a clear
    error naming the variable otherwise. `unit` ("seconds") completes the message."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    what = f" of {unit}" if unit else ""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not a whole number{what}") from None
    if value < 1:
        raise ValueError(f"{env}={raw!r} must be at least 1")
    return value
