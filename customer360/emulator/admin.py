"""Admin endpoints under /_emulator/ (not part of the Dataverse surface; no auth, loopback only).

health, reset, load (CSV), stats, limits (+ theoretical ceiling), config (GET/PATCH), export.
"""

from __future__ import annotations

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


def admin_routes(emulator: Emulator) -> list[Route]:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "base_url": emulator.base_url,
                "tenant_id": emulator.config["tenant_id"],
                "principals": principal_ids(emulator.config["tenant_id"]),
                "application_users": [
                    {"name": u.name, "client_id": u.client_id, "systemuserid": u.systemuserid}
                    for u in emulator.users
                ],
            }
        )

    async def reset(request: Request) -> JSONResponse:
        body = await _json(request)
        tables = body.get("tables") or list(emulator.schema.tables)
        unknown = [t for t in tables if t not in emulator.schema.tables]
        if unknown:
            return _problem(400, f"unknown tables {unknown}")
        emulator.generation += 1
        emulator.store.clear(tables)
        seed_principals(emulator.service, emulator.config["tenant_id"], emulator.users)
        if body.get("stats", True):
            emulator.stats = Stats()
            emulator.protection.buckets.clear()
            emulator.faults.configure(emulator.config["faults"])
        return JSONResponse({"reset": tables})

    async def load(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            table_name = body.get("table", "crc33_customer")
            table = emulator.schema.tables.get(table_name)
            if table is None:
                return _problem(400, f"unknown table {table_name!r}")
            if "path" not in body:
                return _problem(400, "'path' (a CSV file on this machine) is required")
            # CSV loads run as the seeded person Alex Admin (as the sample's import by a maker).
            caller_id = principal_ids(emulator.config["tenant_id"])["user:alex.admin"]
            ctx = RequestContext(Caller(caller_id, "Alex Admin", ""), utc_now_text())
            result = load_csv(emulator.service, ctx, table, Path(body["path"]), body.get("mapping"))
        except (LoadError, ValueError) as exc:
            return _problem(400, str(exc))
        return JSONResponse(result)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(emulator.stats.as_dict())

    async def limits(request: Request) -> JSONResponse:
        params = request.query_params
        try:
            batch_size = int(params.get("batch_size", "1"))
            columns = int(params.get("columns", "10"))
        except ValueError:
            return _problem(400, "batch_size and columns must be integers")
        operation = params.get("operation", "upsert")
        if operation not in emulator.cost.per_record_ms:
            return _problem(400, f"operation must be one of {sorted(emulator.cost.per_record_ms)}")
        if batch_size < 1 or columns < 0:
            return _problem(400, "batch_size must be >= 1 and columns >= 0")
        effective = emulator.protection.limits
        return JSONResponse(
            {
                "configured": emulator.config["limits"],
                "cost_model": emulator.config["cost_model"],
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
                "application_users": len(emulator.users),
                "ceiling": theoretical_ceiling(
                    effective, emulator.cost, batch_size, operation, columns, len(emulator.users)
                ),
            }
        )

    async def get_config(request: Request) -> JSONResponse:
        return JSONResponse(public_view(emulator.config))

    async def patch_config(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            unknown = set(body) - RUNTIME_KEYS
            if unknown:
                return _problem(
                    400,
                    f"cannot change {sorted(unknown)} at run time "
                    f"(allowed: {sorted(RUNTIME_KEYS)})",
                )
            merged = deep_merge(emulator.config, body)
            Limits.from_config(merged["limits"])  # validate before applying
            old = emulator.config
            emulator.config = merged
            try:
                emulator.apply_config()
                if "faults" in body:
                    emulator.faults.configure(merged["faults"])
            except Exception:
                emulator.config = old
                emulator.apply_config()
                raise
        except (KeyError, ValueError, TypeError) as exc:
            return _problem(400, str(exc))
        return JSONResponse(public_view(emulator.config))

    async def export(request: Request) -> JSONResponse:
        try:
            body = await _json(request)
            tables = body.get("tables") or list(emulator.config["export"]["tables"])
            result = await emulator.exporter.export(list(tables))
        except ValueError as exc:
            return _problem(400, str(exc))
        payload = result.as_dict()
        payload["landing_dir"] = str(emulator.landing_dir)
        return JSONResponse(payload)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/load", load, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/limits", limits, methods=["GET"]),
        Route("/config", get_config, methods=["GET"]),
        Route("/config", patch_config, methods=["PATCH"]),
        Route("/export", export, methods=["POST"]),
    ]
