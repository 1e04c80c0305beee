"""A Microsoft Entra look-alike for the client-credentials flow, and bearer-token checks.

`/{tenant}/v2.0/.well-known/openid-configuration` gives MSAL what its authority validation needs
(https `authorization_endpoint` and `token_endpoint` with a path, an `issuer` on the same host).
`/{tenant}/oauth2/v2.0/token` exchanges client id + secret for a signed JWT (HS256 with the key
in config.json) naming the application user; the Web API accepts it until `exp`. Error bodies
follow Entra's shape (`error`, `error_description` with the AADSTS code, `error_codes`, ...).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

from customer360.emulator.operations import Caller


@dataclass(frozen=True)
class ApplicationUser:
    name: str
    client_id: str
    client_secret: str
    systemuserid: str
    object_id: str


class TokenError(Exception):
    """Why a bearer token was refused (never contains the token itself)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def openid_configuration(base_url: str, tenant_id: str) -> dict:
    root = f"{base_url}/{tenant_id}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{base_url}/{tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def entra_error(error: str, aadsts: int, description: str, tenant_id: str) -> dict:
    """Entra's error body; description is prefixed with the AADSTS code like the real one."""
    now = dt.datetime.now(dt.UTC)
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": (
            f"AADSTS{aadsts}: {description} Trace ID: {trace_id} Correlation ID: "
            f"{correlation_id} Timestamp: {stamp}"
        ),
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }


class TokenService:
    """Issues and checks access tokens for the registered application users."""

    def __init__(
        self,
        tenant_id: str,
        signing_key: str,
        users: list[ApplicationUser],
        lifetime_seconds: float,
    ) -> None:
        self.tenant_id = tenant_id
        self._key = bytes.fromhex(signing_key)
        self.users = {u.client_id: u for u in users}
        self.lifetime_seconds = lifetime_seconds
        self._verified: dict[str, tuple[float, Caller]] = {}

    def token_response(
        self, form: dict[str, str], tenant: str, resource_urls: set[str]
    ) -> tuple[int, dict]:
        """Handle a token request form; return (HTTP status, JSON body)."""
        if tenant != self.tenant_id:
            return 400, entra_error(
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
                tenant,
            )
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return 400, entra_error(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
                tenant,
            )
        client_id = form.get("client_id", "")
        user = self.users.get(client_id)
        if user is None:
            return 400, entra_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may "
                "have sent your authentication request to the wrong tenant.",
                tenant,
            )
        secret = form.get("client_secret")
        if not secret:
            return 401, entra_error(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
                tenant,
            )
        if not hmac.compare_digest(secret.encode(), user.client_secret.encode()):
            return 401, entra_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
                tenant,
            )
        scopes = form.get("scope", "").split()
        resources = [s[: -len("/.default")] for s in scopes if s.endswith("/.default")]
        if len(scopes) != 1 or len(resources) != 1:
            return 400, entra_error(
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope', '')} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI).",
                tenant,
            )
        resource = resources[0].rstrip("/")
        if resource not in resource_urls:
            return 400, entra_error(
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
                tenant,
            )
        lifetime = int(self.lifetime_seconds)
        token = self.issue(user, resource, self.lifetime_seconds)
        return 200, {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def issue(self, user: ApplicationUser, audience: str, lifetime_seconds: float) -> str:
        now = time.time()
        header = {"typ": "JWT", "alg": "HS256", "kid": "c360-emulator"}
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": now + lifetime_seconds,
            "appid": user.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": user.object_id,
            "sub": user.object_id,
            "tid": self.tenant_id,
            "ver": "1.0",
            "uti": uuid.uuid4().hex[:22],
        }
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, authorization: str | None, resource_urls: set[str]) -> Caller:
        """Check an `Authorization: Bearer` header; return the caller or raise TokenError."""
        if not authorization:
            raise TokenError("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError("invalid")
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            if now >= cached[0]:
                raise TokenError("expired")
            return cached[1]
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("invalid")
        expected = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, json.JSONDecodeError):
            raise TokenError("invalid") from None
        if not hmac.compare_digest(signature, expected):
            raise TokenError("invalid")
        if claims.get("aud", "").rstrip("/") not in resource_urls:
            raise TokenError("invalid audience")
        user = self.users.get(claims.get("appid", ""))
        if user is None:
            raise TokenError("unknown application")
        if now >= float(claims["exp"]):
            raise TokenError("expired")
        caller = Caller(user.systemuserid, user.name, user.client_id)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), caller)
        return caller
