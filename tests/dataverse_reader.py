"""Reads Dataverse tables back over HTTPS with its own msal + httpx code (independent of the
publish engine), so a bug in the engine's reading cannot hide a bug in its writing."""

from __future__ import annotations

from typing import Any

import httpx
import msal


class _MsalHttp:
    """msal's http_client protocol over httpx (verifies TLS with the emulator's CA)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def get(self, url, params=None, headers=None, **_):
        return self._client.get(url, params=params, headers=headers)

    def post(self, url, params=None, data=None, headers=None, **_):
        return self._client.post(url, params=params, data=data, headers=headers)


class Reader:
    """Reads tables of a running local Dataverse (an `EmulatorHandle`) with its own token."""

    def __init__(self, emu) -> None:
        client_id, secret = emu.principals[-1]
        self._http = emu.http_client(timeout=120.0)
        app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=emu.authority,
            instance_discovery=False,
            http_client=_MsalHttp(self._http),
        )
        result = app.acquire_token_for_client(scopes=[emu.scope])
        assert "access_token" in result, result.get("error_description")
        self._headers = {
            "Authorization": f"Bearer {result['access_token']}",
            "Accept": "application/json",
            "Prefer": "odata.maxpagesize=5000",
        }
        self._api = emu.api_url

    def table(self, entity_set: str, select: list[str]) -> list[dict[str, Any]]:
        url: str | None = f"{self._api}{entity_set}?$select={','.join(select)}"
        rows: list[dict[str, Any]] = []
        while url:
            response = self._http.get(url, headers=self._headers)
            assert response.status_code == 200, response.text
            page = response.json()
            rows.extend(
                {k: v for k, v in r.items() if not k.startswith("@")} for r in page["value"]
            )
            url = page.get("@odata.nextLink")
        return rows

    def close(self) -> None:
        self._http.close()
