"""The Entra look-alike over HTTPS with the real msal library, token errors and expiry (§7)."""

from __future__ import annotations

import json
import time

import msal

from customer360.emulator.launcher import ssl_context


class HttpxForMsal:
    """msal's http_client interface over httpx, trusting only the emulator CA (reference §7:
    REQUESTS_CA_BUNDLE makes requests ignore msal's verify= on these machines)."""

    def __init__(self, handle) -> None:
        self.client = handle.http_client(timeout=30)

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        return self.client.post(url, params=params, data=data, headers=headers)

    def get(self, url, params=None, headers=None, **kwargs):
        return self.client.get(url, params=params, headers=headers)

    def close(self) -> None:
        self.client.close()


def whoami(emulator, token: str):
    with emulator.http_client() as http:
        return http.get(f"{emulator.api_url}WhoAmI", headers={"Authorization": f"Bearer {token}"})


def systemuser_ids(emulator) -> list[str]:
    config = json.loads((emulator.home / "dataverse" / "config.json").read_text())
    return [u["systemuserid"] for u in config["application_users"]]


def test_openid_configuration_satisfies_msal_authority_checks(emulator):
    with emulator.http_client() as http:
        doc = http.get(f"{emulator.authority}/v2.0/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == f"{emulator.authority}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{emulator.authority}/oauth2/v2.0/authorize"
    assert doc["issuer"] == f"{emulator.authority}/v2.0"


def test_msal_client_credentials_over_https_and_cache(emulator):
    http_client = HttpxForMsal(emulator)
    client_id, secret = emulator.principals[1]
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=emulator.authority,
        instance_discovery=False,
        http_client=http_client,
    )
    first = app.acquire_token_for_client(scopes=[emulator.scope])
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == 3599
    assert first["token_source"] == "identity_provider"
    second = app.acquire_token_for_client(scopes=[emulator.scope])
    assert second["token_source"] == "cache"
    response = whoami(emulator, first["access_token"])
    assert response.status_code == 200
    assert response.json()["UserId"] == systemuser_ids(emulator)[1]
    http_client.close()


def test_msal_with_verify_ca_file_as_in_the_issue(emulator, monkeypatch):
    # requests lets these variables override msal's verify= path (reference §7 gotcha).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client_id, secret = emulator.principals[2]
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=emulator.authority,
        instance_discovery=False,
        verify=str(emulator.ca_file),
    )
    result = app.acquire_token_for_client(scopes=[emulator.scope])
    assert "access_token" in result, result
    assert whoami(emulator, result["access_token"]).json()["UserId"] == systemuser_ids(emulator)[2]


def test_wrong_secret_gets_the_entra_invalid_client_error(emulator):
    http_client = HttpxForMsal(emulator)
    client_id, _ = emulator.principals[0]
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential="not-the-secret",
        authority=emulator.authority,
        instance_discovery=False,
        http_client=http_client,
    )
    result = app.acquire_token_for_client(scopes=[emulator.scope])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
        "request is the client secret value, not the client secret ID, for a secret added to app "
        f"'{client_id}'."
    )
    http_client.close()


def token_request(emulator, **form):
    with emulator.http_client() as http:
        return http.post(f"{emulator.authority}/oauth2/v2.0/token", data=form)


def test_token_endpoint_errors(emulator):
    client_id, secret = emulator.principals[0]
    unknown = token_request(
        emulator,
        client_id="00000000-0000-4000-8000-000000000000",
        client_secret="x",
        grant_type="client_credentials",
        scope=emulator.scope,
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unauthorized_client"
    assert unknown.json()["error_codes"] == [700016]
    bad_scope = token_request(
        emulator,
        client_id=client_id,
        client_secret=secret,
        grant_type="client_credentials",
        scope=emulator.base_url,
    )
    assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_scope")
    bad_grant = token_request(
        emulator, client_id=client_id, client_secret=secret, grant_type="password"
    )
    assert (bad_grant.status_code, bad_grant.json()["error"]) == (400, "unsupported_grant_type")
    other_resource = token_request(
        emulator,
        client_id=client_id,
        client_secret=secret,
        grant_type="client_credentials",
        scope="https://contoso.crm.dynamics.com/.default",
    )
    assert other_resource.json()["error_codes"] == [500011]


def test_each_principal_is_its_own_user(emulator):
    users = []
    for client_id, secret in emulator.principals:
        response = token_request(
            emulator,
            client_id=client_id,
            client_secret=secret,
            grant_type="client_credentials",
            scope=emulator.scope,
        )
        users.append(whoami(emulator, response.json()["access_token"]).json()["UserId"])
    assert users == systemuser_ids(emulator)
    assert len(set(users)) == 4


def test_expired_token_is_401(emulator):
    emulator.admin("PATCH", "config", {"token_lifetime_seconds": 1})
    try:
        client_id, secret = emulator.principals[3]
        response = token_request(
            emulator,
            client_id=client_id,
            client_secret=secret,
            grant_type="client_credentials",
            scope=emulator.scope,
        )
        assert response.json()["expires_in"] == 1
        token = response.json()["access_token"]
        assert whoami(emulator, token).status_code == 200
        time.sleep(1.1)
        expired = whoami(emulator, token)
        assert expired.status_code == 401
        assert 'error_description="The token is expired"' in expired.headers["WWW-Authenticate"]
    finally:
        emulator.admin("PATCH", "config", {"token_lifetime_seconds": 3599})


def test_injected_token_endpoint_failure(emulator):
    emulator.admin("PATCH", "config", {"faults": {"token_schedule": [1]}})
    try:
        client_id, secret = emulator.principals[0]
        form = dict(
            client_id=client_id,
            client_secret=secret,
            grant_type="client_credentials",
            scope=emulator.scope,
        )
        failed = token_request(emulator, **form)
        assert failed.status_code == 503
        assert failed.json()["error"] == "temporarily_unavailable"
        assert failed.headers["Retry-After"] == "1"
        assert token_request(emulator, **form).status_code == 200
        stats = emulator.admin("GET", "stats")["token"]
        assert stats["failures"]["injected"] == 1
    finally:
        emulator.admin("PATCH", "config", {"faults": {"token_schedule": []}})


def test_ssl_context_rejects_other_certificates(emulator, tmp_path):
    # The CA file is the only trust anchor: a default context (system CAs) must fail.
    import httpx
    import pytest

    with httpx.Client(verify=True, trust_env=False) as http, pytest.raises(httpx.ConnectError):
        http.get(f"{emulator.base_url}/_emulator/health")
    with httpx.Client(verify=ssl_context(emulator.ca_file), trust_env=False) as http:
        assert http.get(f"{emulator.base_url}/_emulator/health").status_code == 200
