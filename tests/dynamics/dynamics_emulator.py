"""Helpers for the tests that publish to the local Dataverse emulator (a real HTTPS server).

`read_table` reads the target back with its own httpx + MSAL code, not the engine's, so a bug
in the engine's reading cannot hide a bug in its writing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from dataverse_reader import Reader  # noqa: F401 - re-exported for the dynamics tests

from customer360.dynamics import DataverseConnection, Principal, PublishOptions, load_spec
from customer360.dynamics.transport import TransportOptions

CUSTOMER_COLUMNS = {
    "crc33_name": "Name",
    "crc33_firstname": "FirstName",
    "crc33_lastname": "LastName",
    "crc33_email": "Email",
    "crc33_city": "City",
    "crc33_dateofbirth": "DateOfBirth",
    "crc33_totalspend": "Spend",
    "crc33_churnprobability": "Churn",
}


def customer_spec(**over: Any):
    data = {
        "table": "crc33_customer",
        "entity_set": "crc33_customers",
        "mode": "upsert",
        "key": {"strategy": "business_key", "columns": {"crc33_cid": "cid"}},
        "columns": dict(CUSTOMER_COLUMNS),
        **over,
    }
    return load_spec(data)


def customer_row(i: int, version: int = 0) -> dict[str, Any]:
    return {
        "cid": i,
        "Name": f"Customer {i} O'Neil",
        "FirstName": f"First{i}",
        "LastName": f"Last {i % 97}",
        "Email": f"c{i}@contoso.com",
        "City": ["Seattle", "Redmond", "Zürich & Co/2", None][i % 4],
        "DateOfBirth": f"19{70 + i % 30}-0{1 + i % 9}-1{i % 10}",
        "Spend": round(1000 + i * 1.25 + version, 2),
        "Churn": round((i % 100) / 100, 2),
    }


def customer_rows(n: int, start: int = 0, version: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield customer_row(i, version)


def expected_record(row: dict[str, Any]) -> dict[str, Any]:
    """What the target should hold for `row` after a publish with CUSTOMER_COLUMNS."""
    return {
        "crc33_cid": row["cid"],
        "crc33_name": row["Name"],
        "crc33_firstname": row["FirstName"],
        "crc33_lastname": row["LastName"],
        "crc33_email": row["Email"],
        "crc33_city": row["City"],
        "crc33_dateofbirth": row["DateOfBirth"],
        "crc33_totalspend": float(row["Spend"]),
        "crc33_churnprobability": float(row["Churn"]),
    }


def connection(emu, principals: int = 1, **over: Any) -> DataverseConnection:
    return DataverseConnection(
        api_url=emu.api_url,
        authority=emu.authority,
        principals=tuple(Principal(c, s) for c, s in emu.principals[:principals]),
        ca_file=str(emu.ca_file),
        **over,
    )


def options(**over: Any) -> PublishOptions:
    transport = over.pop("transport", None) or TransportOptions()
    base = {
        "backoff_base_seconds": 0.05,
        "backoff_cap_seconds": 0.5,
        "progress_interval_seconds": 0.2,
    }
    return PublishOptions(transport=transport, **{**base, **over})


def written(emu) -> int:
    return emu.admin("GET", "stats")["totals"]["records_written"]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
