"""Service-protection arithmetic with a fake clock: exact Retry-After values (reference §6)."""

from __future__ import annotations

import pytest

from customer360.emulator.config import DEFAULTS
from customer360.emulator.protection import (
    Admission,
    CostModel,
    Limits,
    ServiceProtection,
    Throttle,
    theoretical_ceiling,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limits(**overrides) -> Limits:
    raw = {
        **DEFAULTS["limits"],
        "window_seconds": 10.0,
        "max_requests": 5,
        "max_execution_seconds": 4.0,
        "max_concurrent": 2,
        "penalty_seconds": 1.0,
        "max_retry_after_seconds": 10.0,
        "concurrency_retry_after_seconds": 1.0,
    }
    raw.update(overrides)
    return Limits.from_config(raw)


def admit_at(protection: ServiceProtection, clock: Clock, when: float, cost: float = 0.0):
    clock.now = when
    result = protection.admit("user", 0)
    if isinstance(result, Admission):
        protection.complete(result, cost)
    return result


def test_request_count_window_and_honest_retry():
    clock = Clock()
    protection = ServiceProtection(limits(), clock)
    for second in range(5):
        assert isinstance(admit_at(protection, clock, float(second)), Admission)
    throttled = admit_at(protection, clock, 4.5)
    assert throttled == Throttle("requests", 5.5)
    # Honouring Retry-After: at 10.0 the request from t=0 has left the window.
    assert isinstance(admit_at(protection, clock, 10.0), Admission)


def test_retry_after_grows_when_the_client_keeps_pushing():
    clock = Clock()
    protection = ServiceProtection(limits(), clock)
    for second in range(5):
        admit_at(protection, clock, float(second))
    waits = [admit_at(protection, clock, t).retry_after for t in (4.5, 5.0, 5.5, 6.0)]
    assert waits == [5.5, 6.0, 7.5, 10.0]  # +1, +2, +4 (capped at max_retry_after 10)
    # Still refused at 10.0, where an honest client would have got through.
    assert isinstance(admit_at(protection, clock, 10.0), Throttle)


def test_execution_time_window():
    clock = Clock()
    protection = ServiceProtection(limits(max_requests=100), clock)
    assert isinstance(admit_at(protection, clock, 0.0, cost=3.0), Admission)
    assert isinstance(admit_at(protection, clock, 1.0, cost=2.0), Admission)
    throttled = admit_at(protection, clock, 2.0)
    assert throttled == Throttle("execution_time", 8.0)  # t=0's 3 s leave the window at 10
    assert isinstance(admit_at(protection, clock, 10.0), Admission)


def test_concurrency_gate_rejects_immediately_without_a_block():
    clock = Clock()
    protection = ServiceProtection(limits(max_requests=100), clock)
    first = protection.admit("user", 0)
    second = protection.admit("user", 0)
    assert isinstance(first, Admission) and isinstance(second, Admission)
    assert protection.admit("user", 0) == Throttle("concurrency", 1.0)
    protection.complete(first, 0.0)
    assert isinstance(protection.admit("user", 0), Admission)


def test_users_and_web_servers_have_separate_budgets():
    clock = Clock()
    protection = ServiceProtection(limits(max_requests=1, web_servers=2), clock)
    assert isinstance(protection.admit("a", 0), Admission)
    assert isinstance(protection.admit("a", 0), Throttle)
    assert isinstance(protection.admit("a", 1), Admission)
    assert isinstance(protection.admit("b", 0), Admission)
    assert protection.choose_server("ws1") == (1, False)
    assert protection.choose_server("ws7")[1] is True  # unknown server: a new choice


def test_error_bodies_and_retry_after_format():
    scaled = limits()
    error = Throttle("requests", 5.5).error(scaled)
    assert (error.status, error.code) == (429, "0x80072322")
    assert (
        error.message
        == "Number of requests exceeded the limit of 5 over time window of 10 seconds."
    )
    assert error.headers == {"Retry-After": "6"}  # whole seconds, rounded up, even when scaled
    fractional = Throttle("requests", 5.5).error(limits(fractional_retry_after=True))
    assert fractional.headers == {"Retry-After": "5.500"}  # only when asked for
    error = Throttle("execution_time", 1.2).error(Limits.from_config(DEFAULTS["limits"]))
    assert error.code == "0x80072321"
    assert error.message == (
        "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds "
        "over time window of 300 seconds. Decrease number of concurrent requests or reduce the "
        "duration of requests and try again later."
    )
    assert error.headers == {"Retry-After": "2"}  # real windows: whole seconds, rounded up
    error = Throttle("concurrency", 1.0).error(Limits.from_config(DEFAULTS["limits"]))
    assert (error.code, error.message) == (
        "0x80072326",
        "Number of concurrent requests exceeded the limit of 52.",
    )


def test_time_scale_speeds_up_every_duration_and_keeps_counts():
    scaled = Limits.from_config({**DEFAULTS["limits"], "time_scale": 0.01})
    assert scaled.window_seconds == pytest.approx(3.0)
    assert scaled.max_execution_seconds == pytest.approx(12.0)
    assert scaled.max_requests == 6000
    assert scaled.max_concurrent == 52
    cost = CostModel(DEFAULTS["cost_model"], 0.01)
    assert cost.request_seconds("upsert", 1000, 20) == pytest.approx(0.1002)


def test_theoretical_ceiling_for_bulk_and_single_requests():
    default_limits = Limits.from_config(DEFAULTS["limits"])
    cost = CostModel(DEFAULTS["cost_model"], 1.0)
    bulk = theoretical_ceiling(default_limits, cost, 1000, "upsert", 20, 4)
    assert bulk["request_execution_seconds"] == pytest.approx(10.02)
    assert bulk["binding_limit"] == "execution_time"
    assert bulk["records_per_second_per_user"] == pytest.approx(4.0 / 10.02 * 1000)
    assert bulk["records_per_second_all_users"] == pytest.approx(4 * 4.0 / 10.02 * 1000)
    single = theoretical_ceiling(default_limits, cost, 1, "create", 20, 4)
    assert single["binding_limit"] == "requests"
    assert single["records_per_second_per_user"] == pytest.approx(20.0)
    # Upsert is dearer than create for the same batch.
    create = theoretical_ceiling(default_limits, cost, 1000, "create", 20, 1)
    assert create["records_per_second_per_user"] > bulk["records_per_second_per_user"]
