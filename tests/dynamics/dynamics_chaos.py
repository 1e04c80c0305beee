"""The chaos scenario of issue 14, shared by the test and its child process.

A publish of `rows` rows to the local Dataverse while it answers 10 % of requests with 503,
drops 5 % of connections, throttles bursts (429) and issues tokens that expire every second (the
client keeps using them past expiry, so it meets 401s); the outcomes go to the real Delta ops
tables through the asset's `DeltaOutcomeSink`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dynamics_emulator import customer_row, customer_rows, options

from customer360.dynamics import DataverseConnection, OutcomeSink, PublishOptions
from customer360.dynamics.transport import TransportOptions

TARGET_NAME = "chaos_customer"

EMULATOR_CONFIG: dict[str, Any] = {
    "token_lifetime_seconds": 1,
    # Retry-After grows for a client that keeps pushing (1, 2, 4, … s). The killed run pushes
    # until the kill, and the strikes it left made the re-run wait 4 to 135 s depending on the
    # moment it died; capped, the re-run still meets the growth without that lottery.
    "limits": {
        "enabled": True,
        "window_seconds": 2.0,
        "max_requests": 12,
        "dop_hint": 16,
        "max_retry_after_seconds": 4.0,
    },
    "faults": {"seed": 14, "error_rate": 0.10, "error_statuses": [503], "drop_rate": 0.05},
    # Server time as Dataverse charges it (~1 s per bulk request of 250 rows): the runs last
    # longer than a token, on a fast machine too, so the tokens do expire mid-run.
    "cost_model": {"simulate_latency": True},
}
QUIET = {
    "faults": {"error_rate": 0.0, "drop_rate": 0.0, "schedule": []},
    "limits": {"enabled": False},
    "token_lifetime_seconds": 3599,
}
#: row positions of the planted bad rows: too long a first name, no key, a duplicate key
TOO_LONG, NO_KEY, DUPLICATE_AT = 11, 12, 500


def chaos_rows(n: int) -> list[dict[str, Any]]:
    rows = list(customer_rows(n))
    rows[TOO_LONG] = {**rows[TOO_LONG], "FirstName": "x" * 150}  # crc33_firstname max 100
    rows[NO_KEY] = {**rows[NO_KEY], "cid": None}
    rows.insert(DUPLICATE_AT, customer_row(3, version=9))
    return rows


def valid_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Dataverse must hold in the end: every row but the planted bad ones."""
    return [r for i, r in enumerate(rows) if i not in (TOO_LONG, NO_KEY, DUPLICATE_AT)]


def chaos_options() -> PublishOptions:
    return options(
        bulk_batch_size=250,
        max_attempts=4,
        defer_delay_seconds=0,
        # no header guard: the client runs into the window and meets 429 bursts
        transport=TransportOptions(token_refresh_margin_seconds=-0.3, header_guard=False),
    )


def delta_sink(lake: Path) -> OutcomeSink:
    from assets.dynamics import DeltaOutcomeSink
    from resources.lakehouse import LakehouseResource

    return DeltaOutcomeSink(LakehouseResource(root_uri=str(lake)), TARGET_NAME)


class TeeSink:
    """Forwards every outcome to several sinks (in-memory accounting + the Delta tables)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def published(self, keys):
        for s in self.sinks:
            s.published(keys)

    def unchanged(self, keys):
        for s in self.sinks:
            s.unchanged(keys)

    def failed(self, rows):
        for s in self.sinks:
            s.failed(rows)

    def deferred(self, ops):
        for s in self.sinks:
            s.deferred(ops)

    def batch_logged(self, entry):
        for s in self.sinks:
            s.batch_logged(entry)


def connection_from(config: dict[str, Any]) -> DataverseConnection:
    from customer360.dynamics import Principal

    return DataverseConnection(
        api_url=config["api_url"],
        authority=config["authority"],
        principals=tuple(Principal(c, s) for c, s in config["principals"]),
        ca_file=config["ca_file"],
    )
