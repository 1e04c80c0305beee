"""Service protection limits as Dataverse enforces them (api-limits.md), plus the cost model.

Per application user and per simulated web server: a sliding window of request count and of
combined execution time, and a concurrency gate. Requests over a limit get 429 with Retry-After
(the time until the window has room again); a client that sends again before Retry-After has
passed is refused with a longer Retry-After each time ("if the client keeps pushing, Retry-After
grows"). Execution time is modelled, not measured: per request + per record (+ per column per
record), upsert dearer than create, so bulk messages hit the execution-time limit as they do in
production. `time_scale` speeds the clock up: every duration (window, budget, costs, penalties)
is multiplied by it while counts stay, so a "5-minute" window can pass in seconds.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from customer360.emulator import errors

REASON_REQUESTS = "requests"
REASON_EXECUTION = "execution_time"
REASON_CONCURRENCY = "concurrency"


@dataclass(frozen=True)
class Limits:
    """Effective (already scaled) limits."""

    enabled: bool
    window_seconds: float
    max_requests: int
    max_execution_seconds: float
    max_concurrent: int
    web_servers: int
    penalty_seconds: float
    max_retry_after_seconds: float
    concurrency_retry_after_seconds: float
    fractional_retry_after: bool
    dop_hint: int
    time_scale: float

    @classmethod
    def from_config(cls, raw: dict) -> Limits:
        scale = float(raw["time_scale"])
        if scale <= 0:
            raise ValueError("limits.time_scale must be > 0")
        window = float(raw["window_seconds"]) * scale
        fractional = raw.get("fractional_retry_after")
        return cls(
            enabled=bool(raw["enabled"]),
            window_seconds=window,
            max_requests=int(raw["max_requests"]),
            max_execution_seconds=float(raw["max_execution_seconds"]) * scale,
            max_concurrent=int(raw["max_concurrent"]),
            web_servers=max(1, int(raw["web_servers"])),
            penalty_seconds=float(raw["penalty_seconds"]) * scale,
            max_retry_after_seconds=float(raw["max_retry_after_seconds"]) * scale,
            concurrency_retry_after_seconds=float(raw["concurrency_retry_after_seconds"]) * scale,
            # Dataverse sends whole seconds (clients such as Microsoft's SDK read a fraction as
            # no Retry-After at all); fractions only when a test asks for them explicitly.
            fractional_retry_after=bool(fractional),
            dop_hint=int(raw["dop_hint"]),
            time_scale=scale,
        )

    def format_retry_after(self, seconds: float) -> str:
        if self.fractional_retry_after:
            # Rounded up: a client that waits exactly this long must not arrive early.
            return f"{max(math.ceil(seconds * 1000 - 1e-6), 1) / 1000:.3f}"
        return str(max(1, math.ceil(seconds)))


class CostModel:
    """Modelled server execution time of one request, in (scaled) seconds."""

    def __init__(self, raw: dict, time_scale: float) -> None:
        self.simulate_latency = bool(raw["simulate_latency"])
        self.per_request_ms = float(raw["per_request_ms"])
        self.per_record_ms = {k: float(v) for k, v in raw["per_record_ms"].items()}
        self.per_column_ms = float(raw["per_column_ms"])
        self.timeout_ms = float(raw.get("request_timeout_seconds", 120.0)) * 1000.0
        self.time_scale = time_scale

    def record_ms(self, operation: str, records: int, columns: int) -> float:
        """Cost of writing/reading `records` rows with `columns` columns each (unscaled ms)."""
        per_record = self.per_record_ms.get(operation, self.per_record_ms.get("update", 5.0))
        if operation == "retrieve":
            return records * per_record
        return records * (per_record + columns * self.per_column_ms)

    def seconds(self, cost_ms: float) -> float:
        return cost_ms / 1000.0 * self.time_scale

    def request_seconds(self, operation: str, records: int, columns: int) -> float:
        return self.seconds(self.per_request_ms + self.record_ms(operation, records, columns))


class _Event:
    __slots__ = ("cost", "live", "ts")

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.cost = 0.0
        self.live = True


@dataclass
class Bucket:
    """One user's state on one web server."""

    events: deque = field(default_factory=deque)
    count: int = 0
    execution: float = 0.0
    inflight: int = 0
    blocked_until: float = 0.0
    blocked_reason: str = ""
    strikes: int = 0

    def prune(self, now: float, window: float) -> None:
        events = self.events
        while events and events[0].ts + window <= now:
            event = events.popleft()
            event.live = False
            self.count -= 1
            self.execution -= event.cost
        if not events:
            self.execution = 0.0


@dataclass
class Throttle:
    reason: str
    retry_after: float

    def error(self, limits: Limits) -> errors.DataverseError:
        header = {"Retry-After": limits.format_retry_after(self.retry_after)}
        window = round(limits.window_seconds, 3)
        window_text = int(window) if window == int(window) else window
        if self.reason == REASON_REQUESTS:
            return errors.DataverseError(
                429,
                errors.LIMIT_REQUESTS,
                f"Number of requests exceeded the limit of {limits.max_requests} over time "
                f"window of {window_text} seconds.",
                header,
            )
        if self.reason == REASON_EXECUTION:
            budget_ms = round(limits.max_execution_seconds * 1000)
            return errors.DataverseError(
                429,
                errors.LIMIT_EXECUTION_TIME,
                "Combined execution time of incoming requests exceeded limit of "
                f"{budget_ms:,} milliseconds over time window of {window_text} seconds. "
                "Decrease number of concurrent requests or reduce the duration of requests and "
                "try again later.",
                header,
            )
        return errors.DataverseError(
            429,
            errors.LIMIT_CONCURRENCY,
            f"Number of concurrent requests exceeded the limit of {limits.max_concurrent}.",
            header,
        )


@dataclass
class Admission:
    bucket: Bucket
    event: _Event | None


class ServiceProtection:
    """Admission control for the Web API; one instance per emulator."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.buckets: dict[tuple[str, int], Bucket] = {}
        self._round_robin = 0

    def choose_server(self, affinity: str | None) -> tuple[int, bool]:
        """Web server for a request: the affinity cookie's, else round-robin. (index, is_new)."""
        servers = self.limits.web_servers
        if affinity is not None and affinity.startswith("ws") and affinity[2:].isdigit():
            index = int(affinity[2:])
            if index < servers:
                return index, False
        self._round_robin = (self._round_robin + 1) % servers
        return self._round_robin, True

    def admit(self, user: str, server: int) -> Admission | Throttle:
        bucket = self.buckets.get((user, server))
        if bucket is None:
            bucket = self.buckets[(user, server)] = Bucket()
        limits = self.limits
        if not limits.enabled:
            bucket.inflight += 1
            return Admission(bucket, None)
        now = self.clock()
        bucket.prune(now, limits.window_seconds)
        if bucket.inflight >= limits.max_concurrent:
            return Throttle(REASON_CONCURRENCY, limits.concurrency_retry_after_seconds)
        if now < bucket.blocked_until:
            # Sent before Retry-After elapsed: the block grows with every such request.
            bucket.strikes += 1
            penalty = limits.penalty_seconds * (2 ** min(bucket.strikes - 1, 16))
            bucket.blocked_until = min(
                bucket.blocked_until + penalty, now + limits.max_retry_after_seconds
            )
            return Throttle(bucket.blocked_reason, bucket.blocked_until - now)
        bucket.strikes = 0
        wait, reason = self._wait_for_room(bucket, now)
        if wait > 0:
            bucket.blocked_until = now + wait
            bucket.blocked_reason = reason
            return Throttle(reason, wait)
        event = _Event(now)
        bucket.events.append(event)
        bucket.count += 1
        bucket.inflight += 1
        return Admission(bucket, event)

    def _wait_for_room(self, bucket: Bucket, now: float) -> tuple[float, str]:
        limits = self.limits
        window = limits.window_seconds
        if bucket.count >= limits.max_requests:
            oldest_needed = bucket.events[bucket.count - limits.max_requests]
            return oldest_needed.ts + window - now, REASON_REQUESTS
        if bucket.execution >= limits.max_execution_seconds:
            remaining = bucket.execution
            for event in bucket.events:
                remaining -= event.cost
                if remaining < limits.max_execution_seconds:
                    return event.ts + window - now, REASON_EXECUTION
        return 0.0, ""

    def complete(self, admission: Admission, cost_seconds: float) -> None:
        bucket = admission.bucket
        bucket.inflight -= 1
        event = admission.event
        if event is not None and event.live:
            event.cost = cost_seconds
            bucket.execution += cost_seconds

    def remaining(self, admission: Admission) -> tuple[int, float]:
        """(requests, execution seconds) left in the window, for the x-ms-ratelimit headers."""
        return self.remaining_for(admission.bucket)

    def remaining_of(self, user: str, server: int) -> tuple[int, float]:
        return self.remaining_for(self.buckets.get((user, server)) or Bucket())

    def remaining_for(self, bucket: Bucket) -> tuple[int, float]:
        return (
            max(0, self.limits.max_requests - bucket.count),
            max(0.0, self.limits.max_execution_seconds - bucket.execution),
        )


def theoretical_ceiling(
    limits: Limits,
    cost: CostModel,
    batch_size: int,
    operation: str,
    columns: int,
    application_users: int,
) -> dict:
    """Best sustainable throughput one user can get from the limits (records per second)."""
    request_seconds = cost.request_seconds(operation, batch_size, columns)
    by_requests = limits.max_requests / limits.window_seconds
    by_execution = (
        limits.max_execution_seconds / limits.window_seconds / request_seconds
        if request_seconds > 0
        else math.inf
    )
    bounds = {"requests": by_requests, "execution_time": by_execution}
    if cost.simulate_latency and request_seconds > 0:
        bounds["concurrency"] = limits.max_concurrent / request_seconds
    binding = min(bounds, key=bounds.__getitem__)
    per_server = bounds[binding]
    return {
        "batch_size": batch_size,
        "operation": operation,
        "columns": columns,
        "request_execution_seconds": request_seconds,
        "requests_per_second_per_user_per_server": per_server,
        "records_per_second_per_user_per_server": per_server * batch_size,
        "records_per_second_per_user": per_server * batch_size * limits.web_servers,
        "records_per_second_all_users": per_server
        * batch_size
        * limits.web_servers
        * application_users,
        "binding_limit": binding,
        "bounds_requests_per_second": bounds,
    }
