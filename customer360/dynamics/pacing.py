"""Client-side pacing under the service-protection budget of one principal.

Dataverse allows each user, per web server, `max_requests` requests and `max_execution_seconds`
of server time in a sliding `window_seconds` window (6,000 / 1,200 s / 300 s by default,
reference/dataverse.md §6). Bulk messages hit the execution-time budget long before the request
count, and a client that only reacts to 429s oscillates (burst → Retry-After → a 429 for nearly
every request once the window is full).

`BudgetPacer` keeps its own sliding window of the requests it started and what each costs, and
holds a request back while it would push the window over `target_utilisation` of the budget.
Cost = `per_unit × units` (units = records in the request); `per_unit` is learnt from the
`x-ms-ratelimit-time-remaining-xrm-requests` header when the server sends it (the server's own
count of execution time left) and otherwise from request durations. AIMD on 429 stays in place
as the safety net for limits that differ from the configured ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

TIME_REMAINING_HEADER = "x-ms-ratelimit-time-remaining-xrm-requests"


@dataclass(frozen=True)
class ServiceLimits:
    window_seconds: float = 300.0
    max_requests: int = 6000
    max_execution_seconds: float = 1200.0
    web_servers: int = 1  # without affinity requests spread, so the budgets add up
    target_utilisation: float = 0.97
    #: spread each window's budget over this many slices (1 = allow one burst per window)
    smoothing: int = 4
    #: how the time-remaining header counts: "seconds", "milliseconds" or "auto" (a value
    #: 20× above the whole budget in seconds must be milliseconds). The limits must match the
    #: org's (Microsoft's documented defaults here): the header says what is left, not the total.
    time_remaining_unit: str = "auto"

    @property
    def execution_budget(self) -> float:
        return self.max_execution_seconds * self.web_servers * self.target_utilisation

    @property
    def request_budget(self) -> float:
        return self.max_requests * self.web_servers * self.target_utilisation


class _Event:
    __slots__ = ("booked", "done", "start", "units")

    def __init__(self, start: float, units: int) -> None:
        self.start = start  # when it counts from: booking, then completion (conservative)
        self.booked = start  # when it was sent (for smoothing, a client-side device only)
        self.units = units
        self.done = False


class BudgetPacer:
    def __init__(self, limits: ServiceLimits, clock=time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._events: deque[_Event] = deque()
        self.per_unit: float | None = None  # seconds of server time per record
        self.per_request = 0.0  # seconds of server time of a request with no records
        self.learnt_from_server = False
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0

    @property
    def _horizon_pad(self) -> float:
        # a small margin for clock granularity; events are stamped with their completion time,
        # which is never earlier than the server's admission time
        return 0.01 * self.limits.window_seconds

    def _prune(self, now: float) -> None:
        horizon = now - self.limits.window_seconds - self._horizon_pad
        while self._events and self._events[0].start <= horizon:
            self._events.popleft()

    def cost(self, units: int) -> float:
        per_unit = self.per_unit or 0.0
        return self.per_request + per_unit * units

    def delay(self, units: int, now: float | None = None) -> float:
        """Seconds until a request of `units` records fits the budget (0 = now).

        Execution time is counted from when a request was sent (the server ages it from its
        admission); the request count from when it completed (never earlier than admission),
        so neither can run ahead of the server's window.
        """
        now = self._clock() if now is None else now
        self._prune(now)
        if not self._events:
            return 0.0
        window = self.limits.window_seconds
        pad = self._horizon_pad
        budget = self.limits.execution_budget
        per_unit = self.per_unit or 0.0
        live = [e for e in self._events if e.booked > now - window - pad]
        used = sum(self.per_request + per_unit * e.units for e in live)
        need = used + self.cost(units) - budget
        wait = 0.0
        if need > 0:
            freed = 0.0
            for event in sorted(live, key=lambda e: e.booked):
                freed += self.per_request + per_unit * event.units
                wait = event.booked + window + pad - now
                if freed >= need:
                    break
        if len(self._events) + 1 > self.limits.request_budget:
            surplus = len(self._events) + 1 - int(self.limits.request_budget)
            stamps = sorted(e.start for e in self._events)
            wait = max(wait, stamps[min(surplus, len(stamps)) - 1] + window + pad - now)
        if self.limits.smoothing > 1:
            wait = max(wait, self._smoothing_delay(units, now, per_unit, budget))
        return max(wait, 0.0)

    def _smoothing_delay(self, units: int, now: float, per_unit: float, budget: float) -> float:
        """Spread a window's budget over `smoothing` slices instead of one burst per window
        (a burst then silence repeats every window and loads the server in spikes)."""
        span = self.limits.window_seconds / self.limits.smoothing
        share = budget / self.limits.smoothing
        recent = [e for e in self._events if e.booked > now - span]
        used = sum(self.per_request + per_unit * e.units for e in recent)
        if not recent or used + self.cost(units) <= share:
            return 0.0
        return max(min(e.booked for e in recent) + span - now, 0.001)

    async def wait(self, units: int) -> _Event:
        """Wait for room, then book a request of `units` records; pass the result to `record`."""
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                pause = self.delay(units)
                if pause <= 0:
                    break
                self.waited_seconds += min(pause, 0.5)
                await asyncio.sleep(min(pause, 0.5))
            event = _Event(self._clock(), units)
            self._events.append(event)
            return event

    def record(self, event: _Event, duration: float, headers: Any = None) -> None:
        """A booked request finished after `duration` seconds."""
        event.done = True
        event.start = self._clock()  # the server admitted it at some point before now
        remaining = _remaining_seconds(
            headers, self.limits.time_remaining_unit, self.limits.max_execution_seconds
        )
        if remaining is not None:
            self._learn_from_server(remaining)
            return
        if self.learnt_from_server:
            return
        if event.units == 0:
            self.per_request = _ewma(self.per_request, duration)
        else:
            sample = max(duration - self.per_request, 0.0) / event.units
            self.per_unit = sample if self.per_unit is None else _ewma(self.per_unit, sample)

    def _learn_from_server(self, remaining: float) -> None:
        self._prune(self._clock())
        used = max(self.limits.max_execution_seconds - remaining, 0.0)
        horizon = self._clock() - self.limits.window_seconds
        done_units = sum(e.units for e in self._events if e.done and e.booked > horizon)
        if done_units <= 0:
            return
        sample = used / done_units
        self.learnt_from_server = True
        self.per_request = 0.0  # folded into per_unit: reads are negligible next to writes
        self.per_unit = sample if self.per_unit is None else _ewma(self.per_unit, sample, 0.3)

    def cancel(self, event: _Event) -> None:
        """A booked request never reached the server: give its room back."""
        with contextlib.suppress(ValueError):
            self._events.remove(event)


def _ewma(old: float, sample: float, alpha: float = 0.2) -> float:
    return sample if old == 0 else (1 - alpha) * old + alpha * sample


def _remaining_seconds(headers: Any, unit: str, budget: float) -> float | None:
    if headers is None:
        return None
    raw = headers.get(TIME_REMAINING_HEADER)
    if raw is None:
        return None
    try:
        value = float(str(raw).replace(",", "").strip())
    except ValueError:
        return None
    # "auto": a value far above the whole budget in seconds can only be milliseconds
    if unit == "milliseconds" or (unit == "auto" and value > budget * 20):
        return value / 1000.0
    return value


BURST_REMAINING_HEADER = "x-ms-ratelimit-burst-remaining-xrm-requests"


class HeaderGuard:
    """Keeps a principal from sending into a window the server has said is (nearly) full.

    Dataverse reports what is left in the current window on every response
    (`x-ms-ratelimit-burst-remaining-xrm-requests`, `x-ms-ratelimit-time-remaining-xrm-requests`).
    Requests are held while the requests already in flight would use up what is left; with
    nothing in flight one request may always go (it either finds room or earns a precise
    Retry-After). This needs no configured limits and stops the burst of concurrent requests
    that would otherwise all meet a 429 (and, on Dataverse, a growing Retry-After).
    """

    def __init__(self) -> None:
        self.remaining_requests: int | None = None
        self.remaining_time: float | None = None
        self.in_flight = 0
        self._changed: asyncio.Condition | None = None
        self.held = 0

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def allows(self) -> bool:
        if self.in_flight == 0 or self.remaining_requests is None:
            return True
        if self.remaining_requests - self.in_flight <= 0:
            return False
        # execution time is charged when a request completes, by which time older requests
        # may have left the window: only an exhausted budget is a reason to wait
        return self.remaining_time is None or self.remaining_time > 0

    async def wait_allows(self) -> None:
        """Wait (without entering) until a request would be allowed."""
        changed = self._condition()
        async with changed:
            while not self.allows():
                await changed.wait()

    async def enter(self) -> None:
        changed = self._condition()
        async with changed:
            if not self.allows():
                self.held += 1
            while not self.allows():
                await changed.wait()
            self.in_flight += 1

    async def leave(self, headers: Any = None) -> None:
        changed = self._condition()
        async with changed:
            self.in_flight = max(0, self.in_flight - 1)
            if headers is not None:
                self._observe(headers)
            changed.notify_all()

    def _observe(self, headers: Any) -> None:
        burst = headers.get(BURST_REMAINING_HEADER)
        if burst is not None:
            with contextlib.suppress(ValueError):
                self.remaining_requests = int(float(str(burst).replace(",", "")))
        time_left = headers.get(TIME_REMAINING_HEADER)
        if time_left is not None:
            try:
                value = float(str(time_left).replace(",", ""))
            except ValueError:
                return
            self.remaining_time = value
