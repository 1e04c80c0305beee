""" "Nothing lost": faults, 429 bursts, token expiry and a killed publisher, then exact results.

Size: C360_PUBLISH_TEST_ROWS rows (default 20,000 in CI; the issue's 100,000 runs the same test,
see docs/publish.md for timings).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from dynamics_emulator import (
    Reader,
    connection,
    customer_row,
    customer_rows,
    customer_spec,
    env_int,
    expected_record,
    options,
    written,
)

from customer360.dynamics import InMemorySink, publish, replay_deferred
from customer360.dynamics.transport import TransportOptions
from customer360.emulator.launcher import run_emulator

ROWS = env_int("C360_PUBLISH_TEST_ROWS", 20_000)
HERE = Path(__file__).parent


def read_target(reader: Reader) -> dict[int, dict]:
    rows = reader.table("crc33_customers", list(expected_record(customer_row(0))))
    counts = Counter(r["crc33_cid"] for r in rows)
    assert [cid for cid, n in counts.items() if n > 1] == [], "duplicate records"
    return {r["crc33_cid"]: {k: v for k, v in r.items() if k != "crc33_customerid"} for r in rows}


def test_nothing_lost_under_faults_throttling_and_token_expiry(tmp_path) -> None:
    config = {
        "token_lifetime_seconds": 2,
        # 4 requests per 2 s: a run of a few batches meets 429s however fast client and server are
        "limits": {"enabled": True, "window_seconds": 2.0, "max_requests": 4, "dop_hint": 16},
        "faults": {
            "seed": 7,
            "error_rate": 0.05,
            "error_statuses": [503, 500],
            "drop_rate": 0.03,
            # and for certain, whatever the size: a drop, a 503 and a 500 among the first writes
            "schedule": [
                {"request": 12, "fault": "drop"},
                {"request": 13, "fault": "503"},
                {"request": 14, "fault": "500"},
            ],
        },
    }
    source = list(customer_rows(ROWS))
    source[11] = {**source[11], "FirstName": "x" * 150}  # invalid: crc33_firstname max 100
    source[12] = {**source[12], "cid": None}  # invalid: no key
    source.insert(500, customer_row(3, version=9))  # duplicate key: reported, not sent
    bad_cids = {source[11]["cid"]}
    with run_emulator(tmp_path / "home", config=config) as emu:
        sink = InMemorySink()
        transport = TransportOptions(token_refresh_margin_seconds=-0.3)
        metrics = publish(
            source,
            customer_spec(),
            connection(emu, 2),
            sink=sink,
            options=options(
                bulk_batch_size=250, max_attempts=4, defer_delay_seconds=0, transport=transport
            ),
        )
        server = emu.admin("GET", "stats")["totals"]
        assert server["throttled"]["total"] >= 1, "the test must see 429 bursts"
        assert {"drop", "503", "500"} <= set(server["faults"]), "the test must see each fault"
        assert metrics.auth_refreshes >= 1, "the test must see tokens expire mid-run"
        assert metrics.throttled_total == server["throttled"]["total"]

        # every source row is reported exactly once
        keys_in = Counter(
            f"crc33_cid={r['cid']}" if r["cid"] is not None else "crc33_cid=None" for r in source
        )
        assert Counter(sink.accounted_keys) == keys_in
        assert metrics.done == len(source) == metrics.rows_read
        codes = Counter(f.error_code for f in sink.failed_rows)
        assert codes == {"0x80044331": 1, "MissingKey": 1, "DuplicateSourceKey": 1}

        deferred = sink.deferred_ops
        rounds = 0
        while deferred and rounds < 5:
            rounds += 1
            again = InMemorySink()
            replay_deferred(
                deferred,
                connection(emu),
                sink=again,
                options=options(),
                now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
            )
            assert not again.failed_rows
            deferred = again.deferred_ops
        assert deferred == []

        # verify with faults, throttling and short tokens switched off (the reader is plain)
        emu.admin(
            "PATCH",
            "config",
            {
                "faults": {"error_rate": 0.0, "drop_rate": 0.0, "schedule": []},
                "limits": {"enabled": False},
                "token_lifetime_seconds": 3599,
            },
        )
        reader = Reader(emu)
        try:
            target = read_target(reader)
        finally:
            reader.close()
    valid = [r for r in source[:500] + source[501:] if r["cid"] is not None]
    valid = [r for r in valid if r["cid"] not in bad_cids]
    assert sorted(target) == sorted(r["cid"] for r in valid)
    for row in valid:
        assert target[row["cid"]] == expected_record(row)


def test_killed_publisher_then_rerun_gives_the_same_result(tmp_path) -> None:
    n = 2000
    # slow requests (100 ms each, little per record) so the kill lands half-way
    config = {
        "cost_model": {
            "simulate_latency": True,
            "per_request_ms": 100.0,
            "per_record_ms": {"create": 0.2, "update": 0.2, "upsert": 0.2},
            "per_column_ms": 0.0,
        },
        "limits": {"enabled": False},
    }
    with run_emulator(tmp_path / "home", config=config) as emu:
        child_config = tmp_path / "child.json"
        child_config.write_text(
            json.dumps(
                {
                    "api_url": emu.api_url,
                    "authority": emu.authority,
                    "ca_file": str(emu.ca_file),
                    "principals": emu.principals[:1],
                    "rows": n,
                    "batch_size": 50,
                }
            )
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
        child = subprocess.Popen(
            [sys.executable, str(HERE / "dynamics_publish_child.py"), str(child_config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while written(emu) < n // 2:
                if child.poll() is not None:
                    pytest.fail(f"the child ended early: {child.stdout.read().decode()[-2000:]}")
                assert time.monotonic() < deadline, "the child made no progress"
                time.sleep(0.02)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        half = written(emu)
        assert n // 2 <= half < n, f"killed at {half} of {n}"

        sink = InMemorySink()
        metrics = publish(
            customer_rows(n), customer_spec(), connection(emu), sink=sink, options=options()
        )
        assert metrics.published + metrics.unchanged == n
        assert metrics.unchanged >= n // 2 - 50  # what landed before the kill is not re-sent
        assert (metrics.failed, metrics.deferred) == (0, 0)
        reader = Reader(emu)
        try:
            target = read_target(reader)
        finally:
            reader.close()
    assert sorted(target) == list(range(n))
    for i in range(n):
        assert target[i] == expected_record(customer_row(i))
