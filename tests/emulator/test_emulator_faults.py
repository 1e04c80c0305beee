"""Fault injection: scheduled and seeded 500/503, dropped connections, slow answers, deadlocks."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from customer360.emulator.config import DEFAULTS
from customer360.emulator.faults import FaultInjector


def injector(**faults) -> FaultInjector:
    return FaultInjector({**DEFAULTS["faults"], **faults})


def test_seeded_faults_are_deterministic():
    def sequence(seed: int) -> list[str | None]:
        faults = injector(seed=seed, error_rate=0.2, drop_rate=0.1, slow_rate=0.1)
        return [getattr(faults.next_api_fault(), "kind", None) for _ in range(200)]

    first, again, other = sequence(7), sequence(7), sequence(8)
    assert first == again
    assert first != other
    counts = {kind: first.count(kind) for kind in ("500", "503", "drop", "slow", None)}
    assert counts["500"] + counts["503"] == pytest.approx(40, abs=15)
    assert counts["drop"] == pytest.approx(20, abs=12)
    assert counts[None] == pytest.approx(120, abs=20)


def test_schedule_overrides_the_draw_without_shifting_it():
    plain = injector(seed=3, error_rate=0.5)
    scheduled = injector(seed=3, error_rate=0.5, schedule=[{"request": 2, "fault": "drop"}])
    a = [getattr(plain.next_api_fault(), "kind", None) for _ in range(10)]
    b = [getattr(scheduled.next_api_fault(), "kind", None) for _ in range(10)]
    assert b[1] == "drop"
    assert a[:1] + a[2:] == b[:1] + b[2:]
    with pytest.raises(ValueError, match="unknown fault 'boom'"):
        injector(schedule=[{"request": 1, "fault": "boom"}])


def test_scheduled_faults_over_http(emulator, api):
    emulator.admin(
        "PATCH",
        "config",
        {
            "faults": {
                "schedule": [
                    {"request": 1, "fault": "503"},
                    {"request": 2, "fault": "500"},
                    {"request": 3, "fault": "drop"},
                    {"request": 4, "fault": "slow"},
                ],
                "slow_seconds": 1.5,
            }
        },
    )
    try:
        unavailable = api.get("WhoAmI")
        assert unavailable.status_code == 503
        assert unavailable.json()["error"]["code"] == "0x80040216"
        error = api.get("WhoAmI")
        assert error.status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            api.get("WhoAmI")
        with pytest.raises(httpx.ReadTimeout):
            api.post(
                "crc33_customers",
                json={"crc33_cid": 6001},
                timeout=httpx.Timeout(30, read=0.4),
            )
        time.sleep(1.5)
        # The slow request was still carried out: the client cannot know, as in production.
        assert api.get("crc33_customers(crc33_cid=6001)").status_code == 200
        assert api.get("WhoAmI").status_code == 200
        faults = emulator.admin("GET", "stats")["users"]["c360-publisher-1"]["faults"]
        assert faults == {"503": 1, "500": 1, "drop": 1, "slow": 1}
    finally:
        emulator.admin("PATCH", "config", {"faults": {"schedule": [], "slow_seconds": 5.0}})


def test_concurrent_requests_on_one_record_meet_the_deadlock_error(emulator, api):
    api.post("crc33_customers", json={"crc33_cid": 6010, "crc33_name": "start"})
    api.post("crc33_customers", json={"crc33_cid": 6011, "crc33_name": "start"})
    emulator.admin(
        "PATCH", "config", {"cost_model": {"simulate_latency": True, "per_request_ms": 700.0}}
    )
    try:
        results: dict[str, httpx.Response] = {}

        def patch(name: str, cid: int, delay: float) -> None:
            time.sleep(delay)
            with emulator.http_client(timeout=30) as http:
                results[name] = http.patch(
                    f"{emulator.api_url}crc33_customers(crc33_cid={cid})",
                    json={"crc33_name": name},
                    headers=api.headers(),
                )

        threads = [
            threading.Thread(target=patch, args=("first", 6010, 0.0)),
            threading.Thread(target=patch, args=("second", 6010, 0.3)),
            threading.Thread(target=patch, args=("other", 6011, 0.3)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["first"].status_code == 204
        assert results["other"].status_code == 204
        assert results["second"].status_code == 500
        error = results["second"].json()["error"]
        assert error["code"] == "0x80044150"
        assert "CRM ErrorCode: -2147204784" in error["message"]
    finally:
        emulator.admin(
            "PATCH", "config", {"cost_model": {"simulate_latency": False, "per_request_ms": 20.0}}
        )
    names = {
        row["crc33_cid"]: row["crc33_name"]
        for row in api.get(
            "crc33_customers?$select=crc33_cid,crc33_name"
            "&$filter=crc33_cid ge 6010 and crc33_cid le 6011"
        ).json()["value"]
    }
    assert names == {6010: "first", 6011: "other"}
