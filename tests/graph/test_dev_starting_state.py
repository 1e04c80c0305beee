"""`customer360 dev` starts the local Dataverse in the same state as `demo`: the sample customers
loaded, so the publish targets (e.g. deactivation by primary id) find them on a fresh home.

The real command runs (real local Dataverse over HTTPS); only the `dagster dev` child process it
would start next is replaced by a function that reads the Dataverse the UI would publish to —
the UI itself is exercised by the browser test."""

from __future__ import annotations

import csv
import os
import subprocess
from types import SimpleNamespace

import httpx
from click.testing import CliRunner
from dataverse_reader import Reader

from customer360.cli.commands import main
from customer360.generate.customers import SAMPLE_DATA
from customer360.settings import (
    CA_BUNDLE_ENV,
    TENANT_ENV,
    URL_ENV,
    client_id_env,
    client_secret_env,
)


def _handle_from_env() -> SimpleNamespace:
    """What Reader needs, from the connection `dev` exported for the UI's Dynamics resource."""
    base, ca = os.environ[URL_ENV], os.environ[CA_BUNDLE_ENV]
    tenant = os.environ[TENANT_ENV]
    return SimpleNamespace(
        principals=[(os.environ[client_id_env(1)], os.environ[client_secret_env(1)])],
        http_client=lambda **kw: httpx.Client(verify=ca, trust_env=False, **kw),
        authority=f"{base}/{tenant}",
        scope=f"{base}/.default",
        api_url=f"{base}/api/data/v9.2/",
    )


def test_dev_loads_the_sample_customers_like_demo(c360_home, monkeypatch):
    seen = {}

    def ui_instead_of_dagster_dev(command, *args, **kwargs) -> int:
        assert command[-3:] == ["dev", "-w", "workspace.yaml"]
        reader = Reader(_handle_from_env())
        try:
            seen["customers"] = reader.table("crc33_customers", ["crc33_cid", "statecode"])
        finally:
            reader.close()
        return 0

    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.setattr(subprocess, "call", ui_instead_of_dagster_dev)
    result = CliRunner().invoke(main, ["dev"])
    assert result.exit_code == 0, result.output
    assert "loaded the sample customers into Dataverse" in result.output
    with open(SAMPLE_DATA / "customer.csv", encoding="utf-8-sig", newline="") as handle:
        sample = {int(row["cid"]) for row in csv.DictReader(handle)}
    assert {int(c["crc33_cid"]) for c in seen["customers"]} == sample
    assert all(c["statecode"] == 0 for c in seen["customers"])
