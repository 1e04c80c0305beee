"""The emulator as one ASGI application: Entra endpoints, the Web API pipeline and admin.

Web API pipeline per request: URL length → bearer token (401) → injected fault → web server
choice (affinity cookie) → service protection (429) → body size (413) → the operation → modelled
execution time (optionally slept, holding the touched records, which is when two concurrent
requests on one record meet the deadlock error) → response headers (`x-ms-dop-hint`,
`x-ms-ratelimit-*`, `REQ_ID`). The hot path is raw ASGI; Starlette serves the rest.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from customer360.emulator import errors
from customer360.emulator.actions import Actions
from customer360.emulator.auth import (
    ApplicationUser,
    TokenError,
    TokenService,
    entra_error,
    openid_configuration,
)
from customer360.emulator.batch import BatchExecutor
from customer360.emulator.certs import ensure_certificates
from customer360.emulator.config import resolve_config
from customer360.emulator.faults import FaultInjector
from customer360.emulator.files import FileColumns
from customer360.emulator.messages import ApiRequest, ApiResponse, error_response
from customer360.emulator.metadata_write import MetadataWriter, apply_saved_changes
from customer360.emulator.operations import DataService, RequestContext, new_guid
from customer360.emulator.principals import seed_principals
from customer360.emulator.protection import (
    Admission,
    CostModel,
    Limits,
    ServiceProtection,
    Throttle,
)
from customer360.emulator.query import QueryRunner
from customer360.emulator.schema import load_schema
from customer360.emulator.stats import Stats
from customer360.emulator.store import Store
from customer360.emulator.values import utc_now_text
from customer360.emulator.webapi import WebApi

LOG = logging.getLogger("customer360.emulator")
API_PREFIX = "/api/data/v9.2"
AFFINITY_COOKIE = "ARRAffinity"


class Emulator:
    """State and components of one running emulator (one C360_HOME)."""

    def __init__(self, home: str | Path, overrides: dict | None = None) -> None:
        self.home = Path(home).expanduser().resolve()
        self.directory = self.home / "dataverse"
        self.config = resolve_config(self.directory, overrides)
        self.certs = ensure_certificates(self.directory)
        self.schema = load_schema(self.config["schema_file"])
        apply_saved_changes(self.schema, self.directory)
        self.store = Store(self.directory / "dataverse.db", self.schema)
        self.users = [
            ApplicationUser(
                u["name"], u["client_id"], u["client_secret"], u["systemuserid"], u["object_id"]
            )
            for u in self.config["application_users"]
        ]
        self.tokens = TokenService(
            self.config["tenant_id"],
            self.config["signing_key"],
            self.users,
            float(self.config["token_lifetime_seconds"]),
        )
        self.service = DataService(
            self.schema,
            self.store,
            self.config["business_unit_id"],
            bool(self.config["enforce_application_required"]),
        )
        self.stats = Stats()
        self.faults = FaultInjector(self.config["faults"])
        self.apply_config()
        self.inflight_records: dict[tuple[str, str], int] = {}
        # Bumped by admin reset: slow requests started before it are dropped, not applied.
        self.generation = 0
        seed_principals(self.service, self.config["tenant_id"], self.users)
        landing = self.config["export"]["landing_dir"]
        self.landing_dir = Path(landing) if landing else self.home / "landing" / "dataverse"
        self._exporter = None
        self.base_url = ""
        self.api_url = ""
        self.resource_urls: set[str] = set()
        self.webapi: WebApi | None = None

    # ---- configuration ------------------------------------------------------------------------
    def apply_config(self) -> None:
        """(Re)build everything derived from the config (limits, costs, tokens, flags)."""
        limits = Limits.from_config(self.config["limits"])
        if getattr(self, "protection", None) is None:
            self.protection = ServiceProtection(limits)
        else:
            self.protection.limits = limits
        self.cost = CostModel(self.config["cost_model"], limits.time_scale)
        self.tokens.lifetime_seconds = float(self.config["token_lifetime_seconds"])
        self.service.enforce_application_required = bool(
            self.config["enforce_application_required"]
        )

    @property
    def exporter(self):
        """The Synapse Link exporter, built on first use (the writer's package imports pandas)."""
        if self._exporter is None:
            from customer360.emulator.exporter import SynapseLinkExporter

            self._exporter = SynapseLinkExporter(self.store, self.landing_dir)
        return self._exporter

    def bulk_supported(self, table: str) -> bool:
        override = self.config["bulk_messages"].get(table)
        return self.schema.tables[table].bulk_messages if override is None else bool(override)

    def bind(self, port: int) -> None:
        """Called once the listening port is known: URLs, the Web API and `$batch`."""
        self.base_url = f"https://127.0.0.1:{port}"
        self.api_url = f"{self.base_url}{API_PREFIX}/"
        self.resource_urls = {self.base_url, f"https://localhost:{port}"}
        queries = QueryRunner(
            self.store,
            self.api_url,
            float(self.config["change_tracking_token_days"]),
            int(self.config["max_page_size"]),
        )
        identity = {
            "business_unit_id": self.config["business_unit_id"],
            "organization_id": self.config["organization_id"],
        }
        self.webapi = WebApi(
            self.schema,
            self.service,
            queries,
            lambda: self.cost,
            self.bulk_supported,
            self.api_url,
            identity,
        )
        self.webapi.batch_handler = BatchExecutor(
            self.webapi.handle,
            self.store.transaction,
            self.base_url,
            int(self.config["batch_max_requests"]),
            int(self.config["max_batch_url_length"]),
            lambda: self.cost.per_request_ms,
            {t.entity_set: t.primary_id for t in self.schema.tables.values()},
        )
        self.webapi.metadata_writer = MetadataWriter(
            self.schema, self.store, self.directory, self._schema_changed
        )
        self.webapi.actions = Actions(self.service, self.api_url)
        self.webapi.files = FileColumns(self.service, self.directory, self.api_url)

    def _schema_changed(self) -> None:
        """A table was created, changed or deleted through the metadata API."""
        self.service.forget_tables()
        if self.webapi is not None and self.webapi.batch_handler is not None:
            ids = {t.entity_set: t.primary_id for t in self.schema.tables.values()}
            self.webapi.batch_handler.primary_ids = ids

    def check_conflict(self, table: str, record_id: str) -> None:
        if (table, record_id) in self.inflight_records:
            raise errors.DataverseError(
                500,
                errors.SQL_DEADLOCK,
                "Sql error: Generic SQL error. CRM ErrorCode: -2147204784 Sql ErrorCode: "
                "-2146232060 Sql Number: 1205 (transaction was deadlocked on lock resources with "
                "another process and has been chosen as the deadlock victim; the same record is "
                f"being changed by another request: {table} {record_id}).",
            )

    def close(self) -> None:
        self.store.close()


# ---- raw ASGI helpers ---------------------------------------------------------------------------
async def _send(
    send, response: ApiResponse, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _read_body(receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit` bytes."""
    chunks = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _drop_connection(send) -> bool:
    """Close the TCP connection without a response (uvicorn's protocol owns the transport)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.abort() if hasattr(transport, "abort") else transport.close()
    return True


class WebApiEndpoint:
    """Raw ASGI handler for everything under /api/data/v9.2."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope, receive, send) -> None:
        em = self.emulator
        config = em.config
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path_text = raw_path.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        if len(path_text) + len(query) + (1 if query else 0) > int(config["max_url_length"]):
            await _send(send, error_response(_url_too_long(int(config["max_url_length"]))))
            return
        headers = _header_map(scope["headers"])
        try:
            caller = em.tokens.verify(headers.get("authorization"), em.resource_urls)
        except TokenError as exc:
            await self._unauthorized(send, str(exc))
            return
        user_stats = em.stats.user(caller.name)
        user_stats.requests += 1
        try:
            # Read the body first: a request the client gave up on (slow fault) still runs.
            body = await _read_body(receive, int(config["max_body_bytes"]))
        except ConnectionError:
            return
        if body is None:
            user_stats.statuses[413] += 1
            too_large = errors.DataverseError(
                413, errors.REQUEST_LENGTH_TOO_LARGE, "Request message length is too large."
            )
            await _send(send, error_response(too_large))
            return
        if em.faults.active and await self._fault(send, user_stats):
            return
        extra: list[tuple[bytes, bytes]] = []
        admitted = await self._admit(send, caller, headers, user_stats, extra)
        if admitted is None:
            return
        await self._process(scope, body, send, admitted, caller, path_text, query, headers, extra)

    async def _fault(self, send, user_stats) -> bool:
        """Apply the next injected fault, if any; True when the request ends here."""
        em = self.emulator
        fault = em.faults.next_api_fault()
        if fault is None:
            return False
        user_stats.faults[fault.kind] += 1
        if fault.kind == "drop":
            if _drop_connection(send):
                return True
            # No transport to abort: start a response and break it off mid-body.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            raise ConnectionAbortedError("injected connection drop")
        if fault.kind == "slow":
            generation = em.generation
            await asyncio.sleep(em.faults.slow_seconds)
            if generation != em.generation:
                _drop_connection(send)  # an admin reset happened meanwhile: forget it
                return True
            return False
        await _send(send, _fault_response(int(fault.kind)))
        user_stats.statuses[int(fault.kind)] += 1
        return True

    async def _admit(self, send, caller, headers, user_stats, extra) -> Admission | None:
        """Web server choice and service protection; None when answered with a 429."""
        em = self.emulator
        cookie = _cookie(headers.get("cookie"), AFFINITY_COOKIE)
        server, new_server = em.protection.choose_server(cookie)
        admitted = em.protection.admit(caller.client_id, server)
        limits = em.protection.limits
        extra.append((b"x-ms-dop-hint", str(limits.dop_hint).encode()))
        if limits.web_servers > 1 and new_server:
            extra.append(
                (b"set-cookie", f"{AFFINITY_COOKIE}=ws{server}; Path=/; Secure; HttpOnly".encode())
            )
        if isinstance(admitted, Throttle):
            user_stats.throttled[admitted.reason] += 1
            user_stats.statuses[429] += 1
            response = error_response(admitted.error(limits))
            extra.extend(_ratelimit_headers(*em.protection.remaining_of(caller.client_id, server)))
            await _send(send, response, extra)
            return None
        return admitted

    async def _process(
        self,
        scope,
        body: bytes,
        send,
        admission: Admission,
        caller,
        path_text: str,
        query: str,
        headers: dict[str, str],
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        em = self.emulator
        cost_model = em.cost
        cost_seconds = 0.0
        ctx = RequestContext(
            caller,
            utc_now_text(),
            em.check_conflict if em.faults.deadlock_on_conflict else None,
        )
        held: list[tuple[str, str]] = []
        try:
            relative = unquote(path_text[len(API_PREFIX) :].lstrip("/"))
            request = ApiRequest(scope["method"], relative, query, headers, body)
            try:
                assert em.webapi is not None
                response = em.webapi.handle(request, ctx)
            except errors.DataverseError as exc:
                response = error_response(exc)
            except Exception:  # a bug must still answer like Dataverse does
                LOG.exception("unexpected error handling %s %s", scope["method"], path_text)
                response = error_response(
                    errors.DataverseError(500, errors.UNEXPECTED, "An unexpected error occurred.")
                )
            cost_seconds = cost_model.seconds(cost_model.per_request_ms + ctx.cost_ms)
            if cost_model.simulate_latency and cost_seconds > 0:
                held = list(ctx.touched)
                for key in held:
                    em.inflight_records[key] = em.inflight_records.get(key, 0) + 1
                await asyncio.sleep(cost_seconds)
        finally:
            for key in held:
                remaining = em.inflight_records.get(key, 1) - 1
                if remaining:
                    em.inflight_records[key] = remaining
                else:
                    em.inflight_records.pop(key, None)
            em.protection.complete(admission, cost_seconds)
        request_id = new_guid().encode()
        extra.append((b"req_id", request_id))
        extra.append((b"x-ms-service-request-id", request_id))
        extra.extend(_ratelimit_headers(*em.protection.remaining(admission)))
        stats = em.stats.user(caller.name)
        stats.records_written += ctx.records_written
        stats.records_read += ctx.records_read
        stats.execution_seconds += cost_seconds
        stats.statuses[response.status] += 1
        await _send(send, response, extra)

    async def _unauthorized(self, send, reason: str) -> None:
        em = self.emulator
        challenge = (
            f"Bearer authorization_uri={em.base_url}/{em.config['tenant_id']}/oauth2/authorize, "
            f"resource_id={em.base_url}/"
        )
        if reason != "missing":
            challenge += f', error="invalid_token", error_description="The token is {reason}"'
        await _send(
            send, ApiResponse(401, {"WWW-Authenticate": challenge, "OData-Version": "4.0"}, b"")
        )


def _url_too_long(limit: int) -> errors.DataverseError:
    return errors.DataverseError(
        414, errors.REQUEST_LENGTH_TOO_LARGE, f"The request URL is longer than {limit} characters."
    )


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", " as HTTP allows."""
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


def _ratelimit_headers(requests_left: int, time_left: float) -> list[tuple[bytes, bytes]]:
    """The debugging headers Dataverse sends (api-limits.md): requests and seconds left."""
    return [
        (b"x-ms-ratelimit-burst-remaining-xrm-requests", str(requests_left).encode()),
        (b"x-ms-ratelimit-time-remaining-xrm-requests", f"{time_left:,.2f}".encode()),
    ]


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _fault_response(status: int) -> ApiResponse:
    if status == 503:
        error = errors.DataverseError(
            503,
            errors.UNEXPECTED,
            "The service is temporarily unavailable (injected fault). Retry later.",
        )
    else:
        error = errors.DataverseError(
            status, errors.UNEXPECTED, "An unexpected error occurred. (injected fault)"
        )
    return error_response(error)


# ---- Entra endpoints ----------------------------------------------------------------------------
def _entra_routes(emulator: Emulator) -> list[Route]:
    async def openid(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        if tenant != emulator.config["tenant_id"]:
            body = entra_error(
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
                tenant,
            )
            return JSONResponse(body, status_code=400)
        return JSONResponse(openid_configuration(emulator.base_url, tenant))

    async def token(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        emulator.stats.token_requests += 1
        if emulator.faults.next_token_fault():
            emulator.stats.token_failures["injected"] += 1
            body = entra_error(
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again. (injected fault)",
                tenant,
            )
            return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        raw = (await request.body()).decode("utf-8", "replace")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode("utf-8", "replace")
            client_id, _, secret = decoded.partition(":")
            form.setdefault("client_id", unquote(client_id))
            form.setdefault("client_secret", unquote(secret))
        status, body = emulator.tokens.token_response(form, tenant, emulator.resource_urls)
        if status != 200:
            emulator.stats.token_failures[body["error"]] += 1
        return JSONResponse(
            body, status_code=status, headers={"Cache-Control": "no-store, no-cache"}
        )

    async def keys(request: Request) -> JSONResponse:
        return JSONResponse({"keys": []})

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/discovery/v2.0/keys", keys, methods=["GET"]),
    ]


def build_app(emulator: Emulator):
    """The root ASGI app: Web API fast path, everything else through Starlette."""
    from customer360.emulator.admin import admin_routes

    export_task: dict[str, asyncio.Task] = {}

    async def periodic_export() -> None:
        while True:
            interval = float(emulator.config["export"]["interval_seconds"])
            await asyncio.sleep(interval if interval > 0 else 1.0)
            if interval > 0:
                try:
                    await emulator.exporter.export(list(emulator.config["export"]["tables"]))
                except Exception:  # keep exporting on the next tick; the error is logged
                    LOG.exception("periodic Synapse Link export failed")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        export_task["task"] = asyncio.create_task(periodic_export())
        try:
            yield
        finally:
            export_task["task"].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await export_task["task"]

    starlette = Starlette(
        routes=[*_entra_routes(emulator), Mount("/_emulator", routes=admin_routes(emulator))],
        lifespan=lifespan,
    )
    api = WebApiEndpoint(emulator)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            rest = scope["path"][len(API_PREFIX) :]
            if rest == "" or rest.startswith("/"):
                await api(scope, receive, send)
                return
        await starlette(scope, receive, send)

    return app
