"""Start the project's local Dataverse for the CLI (`demo`, `run`, `dev`) and hand its
connection details to the Dynamics resource through environment variables — the same EnvVars a
production deployment sets for a real org, so the resource has one code path."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from customer360.emulator.launcher import EmulatorHandle, run_emulator
from customer360.settings import (
    AUTHORITY_HOST_ENV,
    CA_BUNDLE_ENV,
    PRINCIPAL_COUNT_ENV,
    TENANT_ENV,
    URL_ENV,
    client_id_env,
    client_secret_env,
)


def connection_env(handle: EmulatorHandle) -> dict[str, str]:
    """The environment variables `resources.dynamics` reads, for this emulator."""
    env = {
        URL_ENV: handle.base_url,
        AUTHORITY_HOST_ENV: handle.base_url,
        TENANT_ENV: handle.tenant_id,
        CA_BUNDLE_ENV: str(handle.ca_file),
        PRINCIPAL_COUNT_ENV: str(len(handle.principals)),
    }
    for index, (client_id, secret) in enumerate(handle.principals, start=1):
        env[client_id_env(index)] = client_id
        env[client_secret_env(index)] = secret
    return env


@contextlib.contextmanager
def local_dataverse(home: str | Path, config: dict | None = None) -> Iterator[EmulatorHandle]:
    """Run the local Dataverse for the duration of the block with its connection exported to
    this process's environment (restored afterwards)."""
    with run_emulator(Path(home), config=config) as handle:
        env = connection_env(handle)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield handle
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
