"""Fixtures for the emulator tests: a running emulator per module and an authenticated client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from customer360.emulator.launcher import EmulatorHandle, run_emulator

NO_LIMITS = {"limits": {"enabled": False}}


class ApiClient:
    """A Web API client for one application user: bearer token + verified TLS to the CA."""

    def __init__(self, handle: EmulatorHandle, principal: int = 0) -> None:
        self.handle = handle
        self.http = handle.http_client(timeout=60)
        client_id, secret = handle.principals[principal]
        self.client_id = client_id
        response = self.http.post(
            f"{handle.authority}/oauth2/v2.0/token",
            data={
                "client_id": client_id,
                "client_secret": secret,
                "grant_type": "client_credentials",
                "scope": handle.scope,
            },
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]

    def headers(self, extra: dict | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        }
        headers.update(extra or {})
        return headers

    def request(
        self, method: str, path: str, *, headers: dict | None = None, **kw
    ) -> httpx.Response:
        url = path if path.startswith("https://") else f"{self.handle.api_url}{path}"
        return self.http.request(method, url, headers=self.headers(headers), **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def put(self, path: str, **kw) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Iterator[EmulatorHandle]:
    """One emulator (subprocess) per test module, limits off, faults off."""
    home = tmp_path_factory.mktemp("c360")
    with run_emulator(home, config=NO_LIMITS) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(emulator) -> Iterator[ApiClient]:
    client = ApiClient(emulator)
    yield client
    client.close()


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """(status, code, message) of a Dataverse error response."""
    body = response.json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


@pytest.fixture
def dataverse_error():
    return error_of


@pytest.fixture(scope="session")
def api_client_class() -> type[ApiClient]:
    """The ApiClient class, for tests that start their own emulator (never `import conftest`:
    several conftest modules share that name)."""
    return ApiClient


@pytest.fixture(scope="module")
def sdk(emulator):
    """Microsoft's PowerPlatform-Dataverse-Client, unmodified, signed in with azure-identity.

    The emulator's CA reaches the SDK's `requests` through REQUESTS_CA_BUNDLE and
    azure-identity through `connection_verify`, as docs/emulator.md tells users to do."""
    from azure.identity import ClientSecretCredential
    from PowerPlatform.Dataverse.client import DataverseClient

    client_id, secret = emulator.principals[0]
    credential = ClientSecretCredential(
        emulator.tenant_id,
        client_id,
        secret,
        authority=emulator.base_url.removeprefix("https://"),
        disable_instance_discovery=True,
        connection_verify=str(emulator.ca_file),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))
        client = DataverseClient(emulator.base_url, credential)
        yield client
        client.close()
    credential.close()
