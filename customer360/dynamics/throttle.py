"""Cooperative throttling: AIMD concurrency, whole-principal pauses, backoff with jitter.

`AimdController` is pure (time is passed in) so its behaviour is unit-tested exactly;
`PrincipalGate` wraps it for asyncio: every request of a principal goes through one gate, so a
429 pauses all of that principal's work, not just the request that hit it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass

#: Dataverse rejects more than 52 concurrent requests per user (reference/dataverse.md §6).
HARD_CONCURRENCY_CAP = 52


@dataclass
class AimdController:
    """Additive-increase / multiplicative-decrease concurrency limit.

    Slow start (+1 per success, i.e. doubling per round trip) until the first throttle, then +1
    per `limit` successes (one step per round trip). A throttle multiplies the limit by
    `decrease_factor`; throttles within `cooldown` seconds of the last decrease count once,
    because a burst of 429s is one signal, not many.
    """

    ceiling: int
    limit: float = 1.0
    floor: int = 1
    decrease_factor: float = 0.5
    cooldown: float = 1.0
    slow_start: bool = True
    _last_decrease: float = float("-inf")

    def __post_init__(self) -> None:
        self.ceiling = max(self.floor, min(self.ceiling, HARD_CONCURRENCY_CAP))
        self.limit = float(max(self.floor, min(self.limit, self.ceiling)))

    @property
    def current(self) -> int:
        return max(self.floor, int(self.limit))

    def set_ceiling(self, ceiling: int) -> None:
        self.ceiling = max(self.floor, min(ceiling, HARD_CONCURRENCY_CAP))
        self.limit = min(self.limit, float(self.ceiling))

    def on_success(self) -> None:
        step = 1.0 if self.slow_start else 1.0 / max(self.limit, 1.0)
        self.limit = min(float(self.ceiling), self.limit + step)

    def on_throttle(self, now: float) -> bool:
        """Record a throttle at `now`; returns True when the limit was actually decreased."""
        self.slow_start = False
        if now - self._last_decrease < self.cooldown:
            return False
        self._last_decrease = now
        self.limit = max(float(self.floor), self.limit * self.decrease_factor)
        return True


def backoff_delay(
    attempt: int, base: float = 0.25, cap: float = 8.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, never above `cap`.

    attempt 1 → [base/2, base], attempt 2 → [base, 2·base], … (the fixed half keeps retries
    from bunching at zero; the random half spreads many workers apart).
    """
    rng = rng or random
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class PrincipalGate:
    """Admission for one principal's requests: AIMD limit + pause on Retry-After."""

    def __init__(self, controller: AimdController, clock=time.monotonic) -> None:
        self.controller = controller
        self._clock = clock
        self._in_flight = 0
        self._paused_until = 0.0
        self._changed = asyncio.Condition()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def paused_until(self) -> float:
        return self._paused_until

    async def acquire(self) -> None:
        async with self._changed:
            while True:
                wait = self._paused_until - self._clock()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=wait)
                    continue
                if self._in_flight < self.controller.current:
                    self._in_flight += 1
                    return
                await self._changed.wait()

    async def wait_ready(self) -> None:
        """Wait until a request could be admitted now (not paused, below the limit), without
        taking a slot: workers call it before they take a job off the shared queue so that a
        paused principal never sits on work another principal could do."""
        async with self._changed:
            while True:
                wait = self._paused_until - self._clock()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=wait)
                    continue
                if self._in_flight < self.controller.current:
                    return
                await self._changed.wait()

    async def release(self, *, success: bool) -> None:
        async with self._changed:
            self._in_flight -= 1
            if success:
                self.controller.on_success()
            self._changed.notify_all()

    async def throttled(self, retry_after: float) -> None:
        """Pause every request of this principal for `retry_after` seconds and back off."""
        async with self._changed:
            self._paused_until = max(self._paused_until, self._clock() + max(retry_after, 0.0))
            self.controller.on_throttle(self._clock())
            self._changed.notify_all()
