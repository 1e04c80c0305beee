"""401 refresh, 429 handling, every fault type, deferral and replay — against the emulator."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from dynamics_emulator import (
    Reader,
    connection,
    customer_rows,
    customer_spec,
    expected_record,
    options,
)

from customer360.dynamics import (
    InMemorySink,
    PublishConfigError,
    ServiceLimits,
    publish,
    replay_deferred,
)
from customer360.dynamics.transport import TransportOptions
from customer360.emulator.launcher import run_emulator

NO_FAULTS = {"error_rate": 0.0, "drop_rate": 0.0, "slow_rate": 0.0, "schedule": []}
NO_LIMITS = {"enabled": False, "window_seconds": 300.0, "max_requests": 6000}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with run_emulator(
        tmp_path_factory.mktemp("dv-resilience"), config={"limits": {"enabled": False}}
    ) as handle:
        yield handle


@pytest.fixture
def fresh(emu):
    emu.admin("POST", "reset")
    reader = Reader(emu)
    yield emu, reader
    reader.close()
    emu.admin(
        "PATCH",
        "config",
        {
            "faults": NO_FAULTS,
            "limits": NO_LIMITS,
            "token_lifetime_seconds": 3599,
            "cost_model": {"simulate_latency": False},
        },
    )


def target_by_cid(reader: Reader) -> dict[int, dict]:
    rows = reader.table(
        "crc33_customers", ["crc33_customerid", *expected_record(next(customer_rows(1)))]
    )
    by_cid = {r["crc33_cid"]: r for r in rows}
    assert len(by_cid) == len(rows)
    return by_cid


def assert_exact(reader: Reader, rows: list[dict]) -> None:
    target = target_by_cid(reader)
    assert sorted(target) == sorted(r["cid"] for r in rows)
    for row in rows:
        got = {k: v for k, v in target[row["cid"]].items() if k != "crc33_customerid"}
        assert got == expected_record(row)


def user_stats(emu, index: int = 0) -> dict:
    stats = emu.admin("GET", "stats")["users"]
    return stats[f"c360-publisher-{index + 1}"]


def test_expired_token_gets_one_refresh_and_the_request_is_resent(fresh) -> None:
    emu, reader = fresh
    emu.admin(
        "PATCH",
        "config",
        {
            "token_lifetime_seconds": 1,
            "cost_model": {"simulate_latency": True, "per_request_ms": 150.0},
        },
    )
    rows = list(customer_rows(300))
    # a negative margin keeps using a token 0.5 s past its expiry (as clock skew or an early
    # revocation would), so the server's 401 path is exercised for certain
    transport = TransportOptions(max_concurrency=1, token_refresh_margin_seconds=-0.5)
    tokens_before = emu.admin("GET", "stats")["token"]["requests"]
    metrics = publish(
        rows,
        customer_spec(),
        connection(emu),
        options=options(bulk_batch_size=20, transport=transport),
    )
    assert (metrics.published, metrics.failed, metrics.deferred) == (300, 0, 0)
    assert metrics.auth_refreshes >= 2  # the run lasts several token lifetimes
    # one token at the start, then one per 401 (none proactively: the margin is negative)
    tokens = emu.admin("GET", "stats")["token"]["requests"] - tokens_before
    assert tokens == 1 + metrics.auth_refreshes
    assert_exact(reader, rows)


def test_429_pauses_the_principal_then_everything_lands(fresh) -> None:
    emu, reader = fresh
    emu.admin(
        "PATCH",
        "config",
        {"limits": {"enabled": True, "window_seconds": 1.0, "max_requests": 4, "dop_hint": 8}},
    )
    rows = list(customer_rows(120))
    sink = InMemorySink()
    metrics = publish(
        rows,
        customer_spec(mode="append"),
        connection(emu),
        sink=sink,
        options=options(bulk_batch_size=20),
    )
    server = user_stats(emu)["throttled"]
    assert (metrics.published, metrics.deferred) == (120, 0)
    assert metrics.throttled["requests"] == server["requests"] >= 1
    assert sum(sum(b.throttled.values()) for b in sink.batches) >= 1
    assert_exact(reader, rows)


def test_pacing_with_known_limits_avoids_429s(fresh) -> None:
    emu, reader = fresh
    emu.admin(
        "PATCH",
        "config",
        {"limits": {"enabled": True, "window_seconds": 1.0, "max_requests": 6, "dop_hint": 8}},
    )
    rows = list(customer_rows(200))
    transport = TransportOptions(
        limits=ServiceLimits(window_seconds=1.0, max_requests=6, target_utilisation=1.0)
    )
    started = time.monotonic()
    metrics = publish(
        rows,
        customer_spec(mode="append"),
        connection(emu),
        options=options(bulk_batch_size=20, transport=transport),
    )
    assert (metrics.published, metrics.throttled_total) == (200, 0)
    assert user_stats(emu)["throttled"]["total"] == 0
    assert time.monotonic() - started >= 1.0  # 10 writes + 5 reads at 6 per second
    assert_exact(reader, rows)


def test_each_fault_type_is_retried_without_duplicates(fresh) -> None:
    emu, reader = fresh
    # requests 1-5: WhoAmI, EntityDefinitions, 3 sdkmessagefilters; 6: the target read;
    # 8-11: the first four CreateMultiple requests (initial concurrency 4)
    schedule = [
        {"request": 6, "fault": "503"},  # the target read (#7 is its retry)
        {"request": 8, "fault": "500"},
        {"request": 9, "fault": "503"},
        {"request": 10, "fault": "drop"},
        {"request": 11, "fault": "slow"},
    ]
    emu.admin("PATCH", "config", {"faults": {"schedule": schedule, "slow_seconds": 1.5}})
    rows = list(customer_rows(400))
    sink = InMemorySink()
    metrics = publish(
        rows,
        customer_spec(),
        connection(emu, timeout_seconds=0.75),
        sink=sink,
        options=options(bulk_batch_size=100),
    )
    assert user_stats(emu)["faults"] == {"503": 2, "500": 1, "drop": 1, "slow": 1}
    assert (metrics.published, metrics.failed, metrics.deferred) == (400, 0, 0)
    assert metrics.retries == 5
    # a create that failed ambiguously is resent as an upsert by its deterministic id
    assert dict(metrics.by_operation) == {"upsert": 400}
    assert_exact(reader, rows)  # the slow request also landed: still one record per key


def test_persistent_failure_is_deferred_then_replayed(fresh) -> None:
    emu, reader = fresh
    schedule = [{"request": n, "fault": "503"} for n in range(6, 40)]
    emu.admin("PATCH", "config", {"faults": {"schedule": schedule}})
    rows = list(customer_rows(200))
    sink = InMemorySink()
    before = dt.datetime.now(dt.UTC)
    metrics = publish(
        rows,
        customer_spec(mode="append"),
        connection(emu),
        sink=sink,
        options=options(
            bulk_batch_size=100, max_attempts=3, defer_delay_seconds=60, defer_deadline_seconds=3600
        ),
    )
    assert (metrics.published, metrics.deferred, metrics.retries) == (0, 200, 4)
    ops = sink.deferred_ops
    assert sorted(d.key for d in ops) == sorted(f"crc33_cid={i}" for i in range(200))
    assert {d.attempts for d in ops} == {3}
    assert {d.last_error for d in ops} == {
        "transient: HTTP 503 0x80040216 Service Unavailable"
    } or all("HTTP 503" in d.last_error for d in ops)
    for d in ops:
        assert 59 <= (d.next_attempt_at - before).total_seconds() <= 70
        assert 3599 <= (d.deadline - before).total_seconds() <= 3610
    record = ops[0].to_record()
    assert set(record) >= {"operation_json", "next_attempt_at", "attempts", "deadline"}

    emu.admin("PATCH", "config", {"faults": NO_FAULTS})
    not_due = InMemorySink()
    early = replay_deferred(ops, connection(emu), sink=not_due, options=options())
    assert (early.deferred, early.published) == (200, 0)
    assert not_due.deferred_ops == ops  # re-reported unchanged

    late = InMemorySink()
    expired = replay_deferred(
        ops[:10], connection(emu), sink=late, options=options(), now=before + dt.timedelta(hours=2)
    )
    assert (expired.failed, expired.published) == (10, 0)
    assert {f.error_code for f in late.failed_rows} == {"DeferredExpired"}

    replayed = InMemorySink()
    result = replay_deferred(
        ops, connection(emu), sink=replayed, options=options(), now=before + dt.timedelta(minutes=5)
    )
    assert (result.published, result.failed, result.deferred) == (200, 0, 0)
    assert dict(result.by_operation) == {"upsert": 200}  # creates replay as upserts by id
    assert_exact(reader, rows)


@pytest.mark.parametrize("status", [503, 401], ids=["503", "401-after-refresh"])
def test_failing_reads_defer_their_rows_and_a_replay_publishes_them(fresh, status) -> None:
    """Issue 14: a chunk whose reads keep failing (5xx, or 401 again after the token was
    refreshed) was failed whole (TargetReadFailed), so the deferred sensor never retried it.
    Its rows are now deferred unclassified."""
    emu, reader = fresh
    rows = list(customer_rows(200))
    failing = {"faults": {**NO_FAULTS, "error_rate": 1.0, "error_statuses": [status]}}

    def source():
        # the engine reads the metadata before the first chunk: break Dataverse only for the
        # first chunk's reads, mend it when the second chunk is asked for
        for row in rows:
            if row["cid"] == 0:
                emu.admin("PATCH", "config", failing)
            if row["cid"] == 100:
                emu.admin("PATCH", "config", {"faults": NO_FAULTS})
            yield row

    sink = InMemorySink()
    spec = customer_spec()
    metrics = publish(source(), spec, connection(emu), sink=sink, options=options(chunk_rows=100))
    assert (metrics.published, metrics.deferred, metrics.failed) == (100, 100, 0)
    assert metrics.read_deferrals == 100
    if status == 401:
        assert metrics.auth_refreshes >= 1  # each read refreshed its token once, in vain
    ops = sink.deferred_ops
    assert {op.operation.kind.value for op in ops} == {"republish"}
    assert sorted(op.operation.row_number for op in ops) == list(range(100))
    assert len(target_by_cid(reader)) == 100

    with pytest.raises(PublishConfigError, match="needs the publish spec"):
        replay_deferred(ops, connection(emu), options=options(), only_due=False)
    again = InMemorySink()
    replayed = replay_deferred(
        ops, connection(emu), sink=again, options=options(), only_due=False, spec=spec
    )
    assert (replayed.published, replayed.failed, replayed.deferred) == (100, 0, 0)
    assert sorted(again.published_keys) == sorted(op.key for op in ops)
    assert_exact(reader, rows)
