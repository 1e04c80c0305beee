"""Emulator configuration: the persistent config file plus run-time overrides.

`C360_HOME/dataverse/config.json` (mode 0600) is created on first start with generated identities:
tenant, organization, business unit, a token-signing key and the registered application users
(client id + random secret). Everything else has a default here and can be overridden per run
(`run_emulator(config=...)`, `--config-json`) or changed at run time (`PATCH /_emulator/config`).
Every key is documented in docs/emulator.md.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

CONFIG_FILE_NAME = "config.json"
DEFAULT_APPLICATION_USERS = 4

# Defaults for everything that is not an identity. Nested dicts merge key by key.
DEFAULTS: dict[str, Any] = {
    "schema_file": None,
    "token_lifetime_seconds": 3599,
    "max_body_bytes": 128 * 1024 * 1024,
    "max_url_length": 32768,
    "max_batch_url_length": 65536,
    "batch_max_requests": 1000,
    "max_page_size": 5000,
    "change_tracking_token_days": 7,
    "enforce_application_required": False,
    "bulk_messages": {},
    "limits": {
        "enabled": True,
        "window_seconds": 300.0,
        "max_requests": 6000,
        "max_execution_seconds": 1200.0,
        "max_concurrent": 52,
        "web_servers": 1,
        "time_scale": 1.0,
        "penalty_seconds": 1.0,
        "max_retry_after_seconds": 300.0,
        "concurrency_retry_after_seconds": 1.0,
        "fractional_retry_after": None,
        "dop_hint": 50,
    },
    "cost_model": {
        "simulate_latency": False,
        "per_request_ms": 20.0,
        "per_record_ms": {
            "create": 4.0,
            "update": 5.0,
            "upsert": 6.0,
            "delete": 3.0,
            "retrieve": 0.05,
        },
        "per_column_ms": 0.2,
        # Dataverse ends a request after 2 minutes of server time; modelled here (0 = never).
        "request_timeout_seconds": 120.0,
    },
    "faults": {
        "seed": 0,
        "error_rate": 0.0,
        "error_statuses": [503, 500],
        "drop_rate": 0.0,
        "slow_rate": 0.0,
        "slow_seconds": 5.0,
        "token_error_rate": 0.0,
        "schedule": [],
        "token_schedule": [],
        "deadlock_on_conflict": True,
    },
    "export": {
        "interval_seconds": 0.0,
        "tables": ["crc33_customer", "contact", "account"],
        "landing_dir": None,
    },
}

IDENTITY_KEYS = (
    "tenant_id",
    "organization_id",
    "business_unit_id",
    "signing_key",
    "application_users",
)


def deep_merge(base: dict, override: dict, path: str = "") -> dict:
    """Return base updated with override; nested dicts merge, unknown keys are an error."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if key not in merged and key not in IDENTITY_KEYS and path != "bulk_messages.":
            raise KeyError(f"unknown emulator config key {where!r}")
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "per_record_ms":
            merged[key] = deep_merge(merged[key], value, f"{where}.")
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _new_identities() -> dict[str, Any]:
    users = []
    for index in range(1, DEFAULT_APPLICATION_USERS + 1):
        users.append(
            {
                "name": f"c360-publisher-{index}",
                "client_id": str(uuid.uuid4()),
                "client_secret": secrets.token_urlsafe(30),
                "systemuserid": str(uuid.uuid4()),
                "object_id": str(uuid.uuid4()),
            }
        )
    return {
        "tenant_id": str(uuid.uuid4()),
        "organization_id": str(uuid.uuid4()),
        "business_unit_id": str(uuid.uuid4()),
        "signing_key": secrets.token_hex(32),
        "application_users": users,
    }


def _write_private_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_config_file(directory: Path) -> dict[str, Any]:
    """Read config.json, creating it with identities and defaults on first start."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE_NAME
    if not path.exists():
        _write_private_json(path, {**_new_identities(), **copy.deepcopy(DEFAULTS)})
    try:
        stored = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    missing = [key for key in IDENTITY_KEYS if key not in stored]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; delete the file to regenerate it")
    for index, user in enumerate(stored["application_users"]):
        for key in ("name", "client_id", "client_secret", "systemuserid"):
            if not user.get(key):
                raise ValueError(f"{path}: application_users[{index}] has no {key!r}")
        user.setdefault("object_id", str(uuid.uuid5(uuid.NAMESPACE_URL, user["client_id"])))
    return stored


def resolve_config(directory: Path, overrides: dict | None = None) -> dict[str, Any]:
    """Defaults ← config file ← overrides (overrides are not written back)."""
    stored = load_config_file(directory)
    config = deep_merge(DEFAULTS, {k: v for k, v in stored.items() if k not in IDENTITY_KEYS})
    for key in IDENTITY_KEYS:
        config[key] = stored[key]
    if overrides:
        config = deep_merge(config, overrides)
    return config


def public_view(config: dict[str, Any]) -> dict[str, Any]:
    """The config without secrets (for GET /_emulator/config and logs)."""
    view = {k: copy.deepcopy(v) for k, v in config.items() if k != "signing_key"}
    view["application_users"] = [
        {k: v for k, v in user.items() if k != "client_secret"}
        for user in config["application_users"]
    ]
    return view
