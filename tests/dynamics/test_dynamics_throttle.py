"""AIMD controller, backoff, failure classification and budget pacing (pure, clock injected)."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from customer360.dynamics.errors import FailureKind, classify_exception, classify_status
from customer360.dynamics.pacing import BudgetPacer, ServiceLimits
from customer360.dynamics.throttle import AimdController, PrincipalGate, backoff_delay


def test_aimd_slow_start_then_additive_increase_and_halving() -> None:
    c = AimdController(ceiling=50, limit=4)
    for _ in range(6):
        c.on_success()
    assert c.current == 10  # slow start: +1 per success
    assert c.on_throttle(now=100.0) is True
    assert c.current == 5
    assert c.on_throttle(now=100.5) is False  # same burst: one decrease
    assert c.current == 5
    for _ in range(5):
        c.on_success()  # congestion avoidance: +1/limit per success → +1 per round trip
    assert c.current == 5 and 5.9 < c.limit < 6.0
    c.on_success()
    assert c.current == 6
    assert c.on_throttle(now=102.0) is True
    assert c.current == 3


def test_aimd_caps() -> None:
    c = AimdController(ceiling=500, limit=100)
    assert (c.ceiling, c.current) == (52, 52)  # Dataverse's hard per-user cap
    c.set_ceiling(8)
    assert c.current == 8
    for _ in range(20):
        c.on_success()
    assert c.current == 8
    for t in range(10):
        c.on_throttle(now=float(t * 10))
    assert c.current == 1  # never below the floor


def test_backoff_is_exponential_with_bounded_jitter() -> None:
    rng = random.Random(1)
    for attempt, (lo, hi) in enumerate([(0.125, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 2.0)], 1):
        for _ in range(50):
            assert lo <= backoff_delay(attempt, 0.25, 8.0, rng) <= hi
    assert 4.0 <= backoff_delay(30, 0.25, 8.0, rng) <= 8.0
    samples = {round(backoff_delay(3, 0.25, 8.0, rng), 6) for _ in range(20)}
    assert len(samples) > 10  # jitter spreads workers apart


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (204, None, None),
        (429, "0x80072321", FailureKind.THROTTLED),
        (401, None, FailureKind.AUTH),
        (503, None, FailureKind.TRANSIENT),
        (500, "0x80044150", FailureKind.TRANSIENT),  # SQL deadlock
        (400, "0x80044151", FailureKind.TRANSIENT),  # SQL timeout
        (502, None, FailureKind.TRANSIENT),
        (413, None, FailureKind.TOO_LARGE),
        (400, "0x8004418a", FailureKind.TOO_LARGE),
        (400, "0x80044331", FailureKind.PERMANENT),
        (404, "0x80060891", FailureKind.PERMANENT),
        (412, None, FailureKind.PERMANENT),
        (403, None, FailureKind.PERMANENT),
    ],
)
def test_status_classification(status: int, code: str | None, kind) -> None:
    assert classify_status(status, code) is kind


def test_exception_classification() -> None:
    request = httpx.Request("GET", "https://x")
    assert classify_exception(httpx.ReadTimeout("t", request=request)) is FailureKind.TRANSIENT
    assert (
        classify_exception(httpx.RemoteProtocolError("drop", request=request))
        is FailureKind.TRANSIENT
    )
    assert (
        classify_exception(httpx.ConnectError("refused", request=request)) is FailureKind.TRANSIENT
    )
    assert classify_exception(ValueError("bug")) is FailureKind.PERMANENT


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pacer_holds_requests_once_the_execution_budget_is_spent() -> None:
    clock = FakeClock()
    limits = ServiceLimits(
        window_seconds=100,
        max_requests=1000,
        max_execution_seconds=40,
        target_utilisation=1.0,
        smoothing=1,  # one burst per window allowed (smoothing is tested below)
    )
    pacer = BudgetPacer(limits, clock=clock)

    async def scenario() -> None:
        first = await pacer.wait(1000)
        clock.now += 10
        pacer.record(first, duration=10.0)  # learnt: 10 ms per record
        assert pacer.per_unit == pytest.approx(0.01)
        for _ in range(3):  # 3 more 10 s requests fill the 40 s budget
            event = await pacer.wait(1000)
            pacer.record(event, duration=10.0)
        # a fifth must wait until the first (sent at 1000) leaves the window (+1% pad)
        assert pacer.delay(1000) == pytest.approx(1000 + 100 + 1 - clock.now)
        clock.now = 1000 + 101.001
        assert pacer.delay(1000) == 0.0

    asyncio.run(scenario())


def test_pacer_learns_cost_from_the_server_header() -> None:
    clock = FakeClock()
    limits = ServiceLimits(
        window_seconds=100,
        max_requests=1000,
        max_execution_seconds=40,
        target_utilisation=1.0,
        time_remaining_unit="seconds",
        smoothing=1,
    )
    pacer = BudgetPacer(limits, clock=clock)

    async def scenario() -> None:
        event = await pacer.wait(500)
        pacer.record(
            event, duration=0.01, headers={"x-ms-ratelimit-time-remaining-xrm-requests": "35"}
        )
        assert pacer.per_unit == pytest.approx(5 / 500)  # server says 5 s used, not 0.01 s
        assert pacer.learnt_from_server

    asyncio.run(scenario())


def test_pacer_request_count_budget() -> None:
    clock = FakeClock()
    pacer = BudgetPacer(
        ServiceLimits(
            window_seconds=10, max_requests=3, max_execution_seconds=1e9, target_utilisation=1.0
        ),
        clock=clock,
    )

    async def scenario() -> None:
        for _ in range(3):
            pacer.record(await pacer.wait(1), 0.001)
            clock.now += 1
        assert pacer.delay(1) == pytest.approx(1000 + 10 + 0.1 - clock.now)

    asyncio.run(scenario())


def test_gate_pauses_all_work_of_a_principal() -> None:
    clock = FakeClock()
    gate = PrincipalGate(AimdController(ceiling=10, limit=2), clock=clock)

    async def scenario() -> None:
        await gate.acquire()
        await gate.acquire()
        third = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.01)
        assert not third.done()  # limit 2
        await gate.throttled(retry_after=0.05)
        assert gate.controller.current == 1
        await gate.release(success=True)
        await gate.release(success=True)
        await asyncio.sleep(0.01)
        assert not third.done()  # paused although slots are free
        clock.now += 0.06
        await asyncio.wait_for(third, 1.0)
        assert gate.in_flight == 1

    asyncio.run(scenario())


def test_header_guard_holds_requests_when_the_window_is_spent() -> None:
    from customer360.dynamics.pacing import HeaderGuard

    guard = HeaderGuard()

    async def scenario() -> None:
        await guard.enter()
        await guard.enter()  # nothing known yet: both go
        await guard.leave(
            {
                "x-ms-ratelimit-burst-remaining-xrm-requests": "1",
                "x-ms-ratelimit-time-remaining-xrm-requests": "1,000.00",
            }
        )
        assert (guard.remaining_requests, guard.remaining_time) == (1, 1000.0)
        assert not guard.allows()  # one left, one still in flight
        waiting = asyncio.create_task(guard.enter())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await guard.leave(
            {
                "x-ms-ratelimit-burst-remaining-xrm-requests": "0",
                "x-ms-ratelimit-time-remaining-xrm-requests": "0.00",
            }
        )
        await asyncio.wait_for(waiting, 1.0)  # nothing in flight: one probe may always go
        assert guard.in_flight == 1 and guard.held == 1
        assert not guard.allows()
        await guard.leave(
            {
                "x-ms-ratelimit-burst-remaining-xrm-requests": "50",
                "x-ms-ratelimit-time-remaining-xrm-requests": "0.00",
            }
        )
        await guard.enter()
        assert not guard.allows()  # requests left, but the execution-time budget is spent

    asyncio.run(scenario())


def test_plot_throughput_writes_a_png(tmp_path) -> None:
    from customer360.dynamics import plot_throughput

    path = plot_throughput(
        {"1": [(0, 0), (1, 500), (2, 1000)], "4": [(0, 0), (1, 2000)]}, tmp_path / "plots" / "t.png"
    )
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_pacer_smoothing_spreads_a_window_over_slices() -> None:
    clock = FakeClock()
    limits = ServiceLimits(
        window_seconds=100,
        max_requests=1000,
        max_execution_seconds=40,
        target_utilisation=1.0,
        smoothing=4,
    )  # 10 s of budget per 25 s
    pacer = BudgetPacer(limits, clock=clock)
    pacer.per_unit = 0.005  # 5 s per 1,000-record request

    async def scenario() -> None:
        await pacer.wait(1000)
        await pacer.wait(1000)  # 10 s: this slice's share is used
        assert pacer.delay(1000) == pytest.approx(25.0)
        clock.now += 25.001
        assert pacer.delay(1000) == 0.0  # a new slice; the window (40 s) still has room

    asyncio.run(scenario())
