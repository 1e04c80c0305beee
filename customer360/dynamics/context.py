"""What every stage of one run shares: connection, options, metrics and the principals."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

from customer360.dynamics.auth import DataverseConnection
from customer360.dynamics.metrics import PublishMetrics
from customer360.dynamics.options import PublishOptions
from customer360.dynamics.transport import PrincipalClient


class RunContext:
    """One publish (or replay) run: its id, knobs, metrics and one client per principal."""

    def __init__(
        self, connection: DataverseConnection, options: PublishOptions, run_id: str | None
    ) -> None:
        self.connection = connection
        self.options = options
        self.run_id = run_id or uuid.uuid4().hex
        self.metrics = PublishMetrics(run_id=self.run_id, target="", mode="")
        self.clients: list[PrincipalClient] = []
        self._round_robin = itertools.cycle([0])
        self.started = time.monotonic()

    async def start_clients(self) -> None:
        self.clients = [
            PrincipalClient(p, self.connection, self.options.transport)
            for p in self.connection.principals
        ]
        self.metrics.principals = len(self.clients)
        await asyncio.gather(*(c.start() for c in self.clients))
        self._round_robin = itertools.cycle(range(len(self.clients)))

    async def close_clients(self) -> None:
        for client in self.clients:
            self.metrics.auth_refreshes += client.auth_refreshes
            self.metrics.throttled.update(client.throttled)
            await client.aclose()

    def pick(self) -> PrincipalClient:
        """The next principal, round robin (reads spread over every principal's budget)."""
        return self.clients[next(self._round_robin)]

    def read_kw(self) -> dict[str, Any]:
        """Keyword arguments for the GETs of `reads.py`: attempts and request counters."""

        def count_request() -> None:
            self.metrics.read_requests += 1

        def count_retry() -> None:
            self.metrics.retries += 1

        return {
            # Reads are idempotent and cannot be deferred (a failed read fails its chunk), so
            # they get at least five tries even when writes are set to defer sooner.
            "max_attempts": max(self.options.max_attempts, 5),
            "on_request": count_request,
            "on_retry": count_retry,
        }

    def query_kw(self) -> dict[str, Any]:
        """`read_kw` plus what sizes `In(...)` chunks to stay under the URL limit."""
        return {
            **self.read_kw(),
            "api_url_length": len(self.connection.api_url),
            "max_url_length": self.options.max_url_length,
        }

    def stage(self, name: str, since: float, until: float | None = None) -> None:
        """Add the time from `since` to `until` (default: now) to a stage's total."""
        until = time.monotonic() if until is None else until
        seconds = self.metrics.stage_seconds
        seconds[name] = seconds.get(name, 0.0) + until - since
