"""Service principals and their tokens (MSAL confidential client, client-credentials flow).

Each principal has one MSAL app with its own token cache; a token is refreshed before it
expires (5 minutes ahead, or a quarter of its lifetime when that is shorter) and on a 401 the
cached token is dropped and a new one fetched once. MSAL gets its own httpx-based HTTP client
with `trust_env=False`, because `REQUESTS_CA_BUNDLE` would otherwise override the CA file given
for a private authority (reference/dataverse.md §7, "Gotcha"). Secrets and tokens are never
logged nor put in exceptions.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal

from customer360.dynamics.errors import AuthenticationError, PublishConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """An application user: client id + secret (the secret never appears in repr or logs)."""

    client_id: str
    client_secret: str = field(repr=False)

    def __str__(self) -> str:
        return self.client_id


@dataclass(frozen=True)
class DataverseConnection:
    """Where and as whom to publish.

    api_url: service root, e.g. `https://org.crm.dynamics.com/api/data/v9.2/`.
    authority: `https://login.microsoftonline.com/<tenant>` (or the emulator's).
    scope: defaults to `<scheme>://<host>/.default` of `api_url`.
    ca_file: extra CA bundle to trust (the local emulator); None = system trust store.
    """

    api_url: str
    authority: str
    principals: tuple[Principal, ...]
    scope: str | None = None
    ca_file: str | None = None
    timeout_seconds: float = 120.0

    def __post_init__(self) -> None:
        if not self.principals:
            raise ValueError("a Dataverse connection needs at least one principal")
        if not self.api_url.startswith("https://"):
            raise ValueError(f"api_url must be https, got {self.api_url!r}")
        ids = [p.client_id for p in self.principals]
        if len(set(ids)) != len(ids):
            raise ValueError("the same client id is listed twice in principals")

    @property
    def resolved_scope(self) -> str:
        if self.scope:
            return self.scope
        parts = urlsplit(self.api_url)
        return f"{parts.scheme}://{parts.netloc}/.default"

    def ssl_context(self) -> ssl.SSLContext:
        """Verification always on; the CA file is added to (not instead of) the defaults."""
        try:
            return _ssl_context(self.ca_file)
        except (OSError, ssl.SSLError) as exc:  # name the file, not only "[Errno 2]"
            raise PublishConfigError(
                f"CA file {self.ca_file} for {self.api_url} cannot be used: {exc}"
            ) from None


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """One context per CA file: loading the system's trust store costs ~0.3 s of CPU, and a
    context is safe to share between clients and threads once configured."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def tls_failure(exc: BaseException, ca_file: str | None) -> str | None:
    """Host, URL and CA file of a certificate that could not be verified (None: not that)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    try:
        url = str(exc.request.url)  # httpx errors carry their request
    except (AttributeError, RuntimeError):
        url = "?"
    return (
        f"TLS certificate of {urlsplit(url).hostname} not trusted for {url} "
        f"({cause.verify_message}); CA file: {ca_file or 'none (system trust store)'}"
    )


class MsalHttpClient:
    """The `http_client` MSAL accepts: `get`/`post` returning objects with status_code/text."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        self._client = httpx.Client(verify=context, trust_env=False, timeout=timeout)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> httpx.Response:
        return self._client.post(url, params=params, data=data, headers=headers)

    def close(self) -> None:
        self._client.close()


class TokenProvider:
    """Tokens for one principal, refreshed ahead of expiry; thread-safe."""

    def __init__(
        self,
        principal: Principal,
        connection: DataverseConnection,
        *,
        max_attempts: int = 4,
        refresh_margin_seconds: float | None = None,
        clock=time.time,
    ) -> None:
        self.principal = principal
        self._scope = connection.resolved_scope
        self._http = MsalHttpClient(connection.ssl_context(), connection.timeout_seconds)
        self._ca_file = connection.ca_file
        self._clock = clock
        self._max_attempts = max_attempts
        self._margin = refresh_margin_seconds
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self.acquisitions = 0
        try:
            self._app = msal.ConfidentialClientApplication(
                principal.client_id,
                client_credential=principal.client_secret,
                authority=connection.authority,
                instance_discovery=False,
                http_client=self._http,
            )
        except httpx.HTTPError as exc:  # the authority's metadata could not be fetched
            detail = tls_failure(exc, self._ca_file) or f"{type(exc).__name__}: {exc}"[:300]
            raise AuthenticationError(f"principal {principal.client_id}: {detail}") from None
        except ValueError as exc:  # authority discovery failed; the message has no secret
            raise AuthenticationError(
                f"principal {principal.client_id}: cannot use authority "
                f"{connection.authority!r}: {exc}"
            ) from None

    def cached(self) -> str | None:
        """The current token while it is fresh, else None (the caller then calls `token`,
        which may block on the token endpoint). Never blocks: reading two attributes needs no
        lock, and a token swapped mid-read is still a valid one."""
        token = self._token
        if token and self._clock() < self._refresh_at:
            return token
        return None

    def token(self) -> str:
        with self._lock:
            if self._token and self._clock() < self._refresh_at:
                return self._token
            return self._acquire()

    def invalidate(self, token: str) -> None:
        """Forget `token` (after a 401) so the next `token()` fetches a new one."""
        with self._lock:
            if self._token == token:
                self._token = None
            cache = self._app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if item.get("secret") == token:
                    cache.remove_at(item)

    def _acquire(self) -> str:
        last_error = "no response"
        for attempt in range(1, self._max_attempts + 1):
            try:
                result = self._app.acquire_token_for_client(scopes=[self._scope])
            except (httpx.HTTPError, ValueError) as exc:
                last_error = tls_failure(exc, self._ca_file) or type(exc).__name__
                result = None
                if last_error != type(exc).__name__:
                    break  # an untrusted certificate does not get better with retries
            if result and "access_token" in result:
                now = self._clock()
                lifetime = float(result.get("expires_in") or 3600)
                self._token = result["access_token"]
                self._expires_at = now + lifetime
                margin = min(300.0, lifetime / 4) if self._margin is None else self._margin
                self._refresh_at = now + lifetime - margin
                self.acquisitions += 1
                return self._token
            if result:
                # error + description are Entra's words; they never contain the secret
                last_error = f"{result.get('error')}: {result.get('error_description', '')}"[:300]
                if result.get("error") in ("invalid_client", "unauthorized_client"):
                    break
            time.sleep(min(4.0, 0.25 * 2**attempt))
        secret = self.principal.client_secret
        if secret:  # belt and braces: never let a server echo the secret into our errors
            last_error = last_error.replace(secret, "***")
        raise AuthenticationError(
            f"principal {self.principal.client_id}: could not obtain a token ({last_error})"
        )

    def close(self) -> None:
        self._http.close()
