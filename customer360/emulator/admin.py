"""Admin endpoints under /_emulator/ (not part of the Dataverse surface; no auth, loopback only).

health, reset, load (CSV), stats, limits (+ theoretical ceiling), config (GET/PATCH), export.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from customer360.emulator.config import deep_merge, public_view
from customer360.emulator.loader import LoadError, load_csv
from customer360.emulator.operations import Caller, RequestContext
from customer360.emulator.principals import principal_ids, seed_principals
from customer360.emulator.protection import Limits, theoretical_ceiling
from customer360.emulator.stats import Stats
from customer360.emulator.values import utc_now_text

if TYPE_CHECKING:
    from customer360.emulator.app import Emulator

RUNTIME_KEYS = {
    "limits",
    "cost_model",
    "faults",
    "bulk_messages",
    "token_lifetime_seconds",
    "export",
    "enforce_application_required",
    "max_body_bytes",
    "max_url_length",
}


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    import json

    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the request body must be a JSON object")
    return value


class AdminHandlers:
    """The admin endpoints of one emulator, one method each."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "base_url": self.emulator.base_url,
                "tenant_id": self.emulator.config["tenant_id"],
                "principals": principal_ids(self.emulator.config["tenant_id"]),
                "application_users": [
                    {"name": u.name, "client_id": u.client_id, "systemuserid": u.systemuserid}
                    for u in self.emulator.users
                ],
            }
        )

    async def reset(self, request: Request) -> JSONResponse:
        body = await _json(request)
        tables = body.get("tables") or list(self.emulator.schema.tables)
        unknown = [t for t in tables if t not in self.emulator.schema.tables]
        if unknown:
            return _problem(400, f"unknown tables {unknown}")
        self.emulator.generation += 1
        self.emulator.store.clear(tables)
        seed_principals(
            self.emulator.service, self.emulator.config["tenant_id"], self.emulator.users
        )
        if body.get("stats", True):
            self.emulator.stats = Stats()
            self.emulator.protection.buckets.clear()
            self.emulator.faults.configure(self.emulator.config["faults"])
        # Answer once the rows are gone from SQLite too: the writer thread's delete then does
        # not overlap (and is not counted in) whatever the caller measures next.
        await asyncio.to_thread(self.emulator.store.flush)
        return JSONResponse({"reset": tables})

    async def load(self, request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            table_name = body.get("table", "crc33_customer")
            table = self.emulator.schema.tables.get(table_name)
            if table is None:
                return _problem(400, f"unknown table {table_name!r}")
            if "path" not in body:
                return _problem(400, "'path' (a CSV file on this machine) is required")
            # CSV loads run as the seeded person Alex Admin (as the sample's import by a maker).
            caller_id = principal_ids(self.emulator.config["tenant_id"])["user:alex.admin"]
            ctx = RequestContext(Caller(caller_id, "Alex Admin", ""), utc_now_text())
            result = load_csv(
                self.emulator.service, ctx, table, Path(body["path"]), body.get("mapping")
            )
        except (LoadError, ValueError) as exc:
            return _problem(400, str(exc))
        return JSONResponse(result)

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                **self.emulator.stats.as_dict(),
                "writer_cpu_seconds": self.emulator.store.writer_cpu_seconds,
            }
        )

    async def limits(self, request: Request) -> JSONResponse:
        params = request.query_params
        try:
            batch_size = int(params.get("batch_size", "1"))
            columns = int(params.get("columns", "10"))
        except ValueError:
            return _problem(400, "batch_size and columns must be integers")
        operation = params.get("operation", "upsert")
        if operation not in self.emulator.cost.per_record_ms:
            return _problem(
                400, f"operation must be one of {sorted(self.emulator.cost.per_record_ms)}"
            )
        if batch_size < 1 or columns < 0:
            return _problem(400, "batch_size must be >= 1 and columns >= 0")
        effective = self.emulator.protection.limits
        return JSONResponse(
            {
                "configured": self.emulator.config["limits"],
                "cost_model": self.emulator.config["cost_model"],
                "effective": {
                    "enabled": effective.enabled,
                    "window_seconds": effective.window_seconds,
                    "max_requests": effective.max_requests,
                    "max_execution_seconds": effective.max_execution_seconds,
                    "max_concurrent": effective.max_concurrent,
                    "web_servers": effective.web_servers,
                    "dop_hint": effective.dop_hint,
                    "time_scale": effective.time_scale,
                },
                "application_users": len(self.emulator.users),
                "ceiling": theoretical_ceiling(
                    effective,
                    self.emulator.cost,
                    batch_size,
                    operation,
                    columns,
                    len(self.emulator.users),
                ),
            }
        )

    async def get_config(self, request: Request) -> JSONResponse:
        return JSONResponse(public_view(self.emulator.config))

    async def patch_config(self, request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            unknown = set(body) - RUNTIME_KEYS
            if unknown:
                return _problem(
                    400,
                    f"cannot change {sorted(unknown)} at run time "
                    f"(allowed: {sorted(RUNTIME_KEYS)})",
                )
            merged = deep_merge(self.emulator.config, body)
            Limits.from_config(merged["limits"])  # validate before applying
            old = self.emulator.config
            self.emulator.config = merged
            try:
                self.emulator.apply_config()
                if "faults" in body:
                    self.emulator.faults.configure(merged["faults"])
            except Exception:
                self.emulator.config = old
                self.emulator.apply_config()
                raise
        except (KeyError, ValueError, TypeError) as exc:
            return _problem(400, str(exc))
        return JSONResponse(public_view(self.emulator.config))

    async def export(self, request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            tables = body.get("tables") or list(self.emulator.config["export"]["tables"])
            result = await self.emulator.exporter.export(list(tables))
        except ValueError as exc:
            return _problem(400, str(exc))
        payload = result.as_dict()
        payload["landing_dir"] = str(self.emulator.landing_dir)
        return JSONResponse(payload)


def admin_routes(emulator: Emulator) -> list[Route]:
    handlers = AdminHandlers(emulator)
    return [
        Route("/health", handlers.health, methods=["GET"]),
        Route("/reset", handlers.reset, methods=["POST"]),
        Route("/load", handlers.load, methods=["POST"]),
        Route("/stats", handlers.stats, methods=["GET"]),
        Route("/limits", handlers.limits, methods=["GET"]),
        Route("/config", handlers.get_config, methods=["GET"]),
        Route("/config", handlers.patch_config, methods=["PATCH"]),
        Route("/export", handlers.export, methods=["POST"]),
    ]
