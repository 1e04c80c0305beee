"""Service protection over HTTP with scaled-down windows: 429s, Retry-After, honest vs pushy.

Time-based by nature: bounds are chosen so a loaded 2-core machine still passes, while a broken
limiter (no throttling, or no escalation) fails.
"""

from __future__ import annotations

import threading
import time

import pytest

from customer360.emulator.launcher import run_emulator

CONFIG = {
    "limits": {
        "enabled": True,
        "window_seconds": 2.0,
        "max_requests": 10,
        "max_execution_seconds": 1000.0,
        "max_concurrent": 3,
        "penalty_seconds": 0.25,
        "max_retry_after_seconds": 30.0,
        "dop_hint": 4,
    },
    "cost_model": {"per_request_ms": 1.0},
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with run_emulator(tmp_path_factory.mktemp("limits"), config=CONFIG) as handle:
        yield handle


@pytest.fixture
def clients(limited, api_client_class):
    made = []

    def make(principal: int):
        client = api_client_class(limited, principal)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def run_for(client, seconds: float, honour: bool) -> tuple[int, list[float]]:
    """Send WhoAmI for `seconds`; return (successes, Retry-After values seen)."""
    successes = 0
    waits: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get("WhoAmI")
        if response.status_code == 200:
            successes += 1
            continue
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "0x80072322"
        wait = float(response.headers["Retry-After"])
        waits.append(wait)
        if honour:
            time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        else:
            time.sleep(0.02)
    return successes, waits


def test_honest_client_reaches_the_ceiling_and_pushy_client_is_throttled_harder(limited, clients):
    ceiling = limited.admin("GET", "limits?batch_size=1&operation=retrieve&columns=0")["ceiling"]
    assert ceiling["binding_limit"] == "requests"
    assert ceiling["requests_per_second_per_user_per_server"] == pytest.approx(5.0)
    honest, pushy = clients(0), clients(1)
    results: dict[str, tuple[int, list[float]]] = {}
    threads = [
        threading.Thread(target=lambda: results.__setitem__("honest", run_for(honest, 4.0, True))),
        threading.Thread(target=lambda: results.__setitem__("pushy", run_for(pushy, 4.0, False))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    honest_ok, honest_waits = results["honest"]
    pushy_ok, pushy_waits = results["pushy"]
    # 10 at once, then 5/s for the remaining ~4 s window time: 20 at the ceiling.
    assert 16 <= honest_ok <= 21, results
    assert all(w <= 2.0 for w in honest_waits)
    assert pushy_ok == 10, results
    assert pushy_waits[-1] > 2.0  # beyond the window: escalated
    assert pushy_waits[-1] > pushy_waits[0]
    stats = limited.admin("GET", "stats")["users"]
    assert stats["c360-publisher-2"]["throttled"]["requests"] == len(pushy_waits)
    assert stats["c360-publisher-1"]["throttled"]["requests"] == len(honest_waits)


def test_concurrency_limit_answers_429_immediately(limited, clients):
    limited.admin(
        "PATCH",
        "config",
        {
            "cost_model": {"simulate_latency": True, "per_request_ms": 800.0},
            "limits": {"max_requests": 1000},
        },
    )
    try:
        client = clients(2)
        statuses: list[int] = []
        codes: list[str] = []
        barrier = threading.Barrier(6)

        def call() -> None:
            with limited.http_client(timeout=30) as http:
                barrier.wait()
                response = http.get(f"{limited.api_url}WhoAmI", headers=client.headers())
                statuses.append(response.status_code)
                if response.status_code == 429:
                    codes.append(response.json()["error"]["code"])
                    assert response.headers["x-ms-dop-hint"] == "4"

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 200, 200, 429, 429, 429]
        assert codes == ["0x80072326"] * 3
    finally:
        limited.admin(
            "PATCH",
            "config",
            {
                "cost_model": {"simulate_latency": False, "per_request_ms": 1.0},
                "limits": {"max_requests": 10},
            },
        )


def test_execution_time_limit_binds_for_expensive_requests(limited, clients):
    limited.admin(
        "PATCH",
        "config",
        {
            "limits": {"max_requests": 1000, "max_execution_seconds": 2.5, "window_seconds": 60.0},
            "cost_model": {"per_request_ms": 1000.0},
        },
    )
    try:
        client = clients(3)
        statuses = [client.get("WhoAmI").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        throttled = client.get("WhoAmI")
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "0x80072321"
        assert float(throttled.headers["Retry-After"]) > 55.0
        assert throttled.headers["x-ms-ratelimit-time-remaining-xrm-requests"] == "0.00"
    finally:
        limited.admin(
            "PATCH",
            "config",
            {
                "limits": {
                    "max_requests": 10,
                    "max_execution_seconds": 1000.0,
                    "window_seconds": 2.0,
                },
                "cost_model": {"per_request_ms": 1.0},
            },
        )


def test_affinity_cookie_pins_a_client_to_one_web_server(limited, clients):
    limited.admin("POST", "reset", {})  # forget the budgets used by the tests above
    limited.admin(
        "PATCH", "config", {"limits": {"web_servers": 2, "max_requests": 3, "window_seconds": 60.0}}
    )
    try:
        pinned, spread = clients(0), clients(1)
        pinned_ok = 0
        for _ in range(8):  # httpx keeps the ARRAffinity cookie: every request hits one server
            pinned_ok += pinned.get("WhoAmI").status_code == 200
        assert "ARRAffinity" in pinned.http.cookies
        spread_ok = 0
        for _ in range(8):  # no cookie kept: requests spread over both servers' budgets
            spread.http.cookies.clear()
            spread_ok += spread.get("WhoAmI").status_code == 200
        assert (pinned_ok, spread_ok) == (3, 6)
    finally:
        limited.admin(
            "PATCH",
            "config",
            {"limits": {"web_servers": 1, "max_requests": 10, "window_seconds": 2.0}},
        )
