"""Benchmark the Dynamics publish engine against the local Dataverse emulator.

    .venv/bin/python bench/publish.py                       # everything, default sizes
    .venv/bin/python bench/publish.py --only throughput --rows 50000
    .venv/bin/python bench/publish.py --only memory --memory-sizes 100000,1000000

Throughput: service-protection limits are scaled down in time (window 20 s instead of 300 s,
request and execution-time budgets divided by the same factor, so the sustainable rate — the
ceiling — is the production one while a run spans many windows), server execution time is
simulated (the emulator sleeps for the modelled cost). Batches of 100 keep one request's
duration small next to the window (0.8 s : 20 s ≈ production's 8 s : 300 s), because the server
charges execution time when a request ends but ages it from when it started. Reported:
records/s with 1 and 4 principals, the theoretical ceiling from `/_emulator/limits`, the ratio,
and 429s after ramp-up.
Memory: peak RSS of a publish process as the row count grows (streaming generator source,
limits off). Baseline: one request per record, no batching, no parallelism.
Peer (`--only peer`): the same upsert of `--peer-rows` records through Microsoft's SDK
(PowerPlatform-Dataverse-Client, one `records.upsert` call per `--peer-batch` records, i.e. one
UpsertMultiple each) and through the engine (same batch size, one principal), back to back on
one emulator, in three set-ups: production limits with modelled server time, the limits this
bench uses without modelled time, and no limits. Prints both ratios and the records each lost;
`--peer-repeat N` runs each set-up N times and prints the spread of the ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from customer360.dynamics import (
    DataverseConnection,
    NullSink,
    Principal,
    PublishOptions,
    ServiceLimits,
    load_spec,
    plot_throughput,
    publish,
)
from customer360.dynamics.odata import record_path
from customer360.dynamics.transport import TransportOptions
from customer360.emulator.launcher import run_emulator

SCALE = 15  # 300 s window → 20 s
BATCH = 100
WINDOW = 300.0 / SCALE
MAX_REQUESTS = 6000 // SCALE
MAX_EXECUTION = 1200.0 / SCALE
COLUMNS = {
    "crc33_name": "Name",
    "crc33_firstname": "FirstName",
    "crc33_lastname": "LastName",
    "crc33_email": "Email",
    "crc33_city": "City",
    "crc33_country": "Country",
    "crc33_dateofbirth": "DateOfBirth",
    "crc33_totalspend": "Spend",
    "crc33_churnprobability": "Churn",
}
SPEC = {
    "table": "crc33_customer",
    "entity_set": "crc33_customers",
    "mode": "upsert",
    "key": {"columns": {"crc33_cid": "cid"}},
    "columns": COLUMNS,
    "change_detection": False,  # every row is an UpsertMultiple item: what the ceiling assumes
}


def rows(n: int, start: int = 0):
    """A streaming source: nothing is materialised."""
    for i in range(start, start + n):
        yield {
            "cid": i,
            "Name": f"Customer {i}",
            "FirstName": f"First{i}",
            "LastName": f"Last{i % 997}",
            "Email": f"c{i}@contoso.com",
            "City": "Seattle",
            "Country": "United States",
            "DateOfBirth": f"19{70 + i % 30}-0{1 + i % 9}-1{i % 10}",
            "Spend": 1000 + (i % 4000) * 1.25,
            "Churn": (i % 100) / 100,
        }


def limited_config() -> dict[str, Any]:
    return {
        "limits": {
            "enabled": True,
            "window_seconds": WINDOW,
            "max_requests": MAX_REQUESTS,
            "max_execution_seconds": MAX_EXECUTION,
            "time_scale": 1.0,
            # Retry-After penalties and caps shrink with the window
            "penalty_seconds": 1.0 / SCALE,
            "max_retry_after_seconds": 300.0 / SCALE,
            "concurrency_retry_after_seconds": 1.0 / SCALE,
        },
        "cost_model": {"simulate_latency": True},
    }


def connection(emu, principals: int) -> DataverseConnection:
    return DataverseConnection(
        api_url=emu.api_url,
        authority=emu.authority,
        principals=tuple(Principal(c, s) for c, s in emu.principals[:principals]),
        ca_file=str(emu.ca_file),
    )


def throughput(emu, principals: int, n: int, paced: bool) -> dict[str, Any]:
    emu.admin("POST", "reset")
    limits = ServiceLimits(
        window_seconds=WINDOW, max_requests=MAX_REQUESTS, max_execution_seconds=MAX_EXECUTION
    )
    options = PublishOptions(
        transport=TransportOptions(limits=limits if paced else None),
        bulk_batch_size=BATCH,
        progress_interval_seconds=0.5,
    )
    metrics = publish(
        rows(n), load_spec(SPEC), connection(emu, principals), sink=NullSink(), options=options
    )
    series = metrics.throughput
    # steady state: from the end of the first window (ramp-up and the initial burst the empty
    # window allows) to the last sample
    after = [p for p in series if p[0] >= WINDOW]
    steady = (after[-1][1] - after[0][1]) / (after[-1][0] - after[0][0]) if len(after) > 2 else 0
    stats = emu.admin("GET", "stats")["totals"]
    return {
        "principals": principals,
        "rows": n,
        "paced": paced,
        "seconds": round(metrics.duration_seconds, 1),
        "records_per_second": round(metrics.records_per_second, 1),
        "steady_records_per_second": round(steady, 1),
        "write_requests": metrics.requests,
        "throttled": metrics.throttled_total,
        "throttled_pct_of_requests": round(
            100 * metrics.throttled_total / max(stats["requests"], 1), 2
        ),
        "server_429": stats["throttled"]["total"],
        "published": metrics.published,
        "series": series,
    }


def naive(emu, n: int) -> dict[str, Any]:
    """One PATCH (upsert) per record, one at a time: what a simple script does."""
    emu.admin("POST", "reset")
    client_id, secret = emu.principals[0]
    http = emu.http_client(timeout=120.0)
    token = client_token(emu, http, client_id, secret)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.monotonic()
    done = throttled = 0
    for row in rows(n):
        body = {target: row[source] for target, source in COLUMNS.items()}
        url = emu.api_url + record_path("crc33_customers", {"crc33_cid": row["cid"]})
        while True:
            response = http.patch(url, json=body, headers=headers)
            if response.status_code != 429:
                break
            throttled += 1
            time.sleep(float(response.headers.get("Retry-After", "1")))
        assert response.status_code < 300, response.text
        done += 1
    elapsed = time.monotonic() - started
    http.close()
    return {
        "rows": done,
        "seconds": round(elapsed, 1),
        "records_per_second": round(done / elapsed, 1),
        "throttled": throttled,
    }


# ---- peer run: Microsoft's SDK ------------------------------------------------------------------
PEER_SETUPS = {
    # name: (emulator config, the engine's pacing limits)
    "production": (  # production limits, modelled server time
        {"limits": {"enabled": True}, "cost_model": {"simulate_latency": True}},
        None,
    ),
    "bench-limits": (  # the limits this bench scales, no modelled time
        {**limited_config(), "cost_model": {"simulate_latency": False}},
        ServiceLimits(
            window_seconds=WINDOW, max_requests=MAX_REQUESTS, max_execution_seconds=MAX_EXECUTION
        ),
    ),
    "unthrottled": ({"limits": {"enabled": False}}, None),
}


def client_token(emu, http, client_id: str, secret: str) -> str:
    """A client-credentials token from the local Dataverse's token endpoint."""
    data = {"grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret, "scope": emu.scope}  # fmt: skip
    return http.post(f"{emu.authority}/oauth2/v2.0/token", data=data).json()["access_token"]


def stored(emu) -> int:
    """Records in crc33_customer, counted page by page ($count stops at 5,000)."""
    http = emu.http_client(timeout=120.0)
    client_id, secret = emu.principals[0]
    token = client_token(emu, http, client_id, secret)
    headers = {"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=5000"}
    url: str | None = emu.api_url + "crc33_customers?$select=crc33_cid"
    total = 0
    while url:
        response = http.get(url, headers=headers)
        if response.status_code == 429:  # the limits also apply to counting
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        body = response.json()
        total += len(body["value"])
        url = body.get("@odata.nextLink")
    http.close()
    return total


def cpu_seconds(pid: int | None = None) -> float:
    """utime + stime of a process (this one by default): CPU does not depend on how busy the
    shared machine is, wall-clock rates do."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_cpu_seconds(emu) -> float:
    """CPU time of the emulator's SQLite writer thread (from its stats): the part of the
    server's CPU that can run beside its request thread (SQLite releases the GIL)."""
    return float(emu.admin("GET", "stats")["writer_cpu_seconds"])


def _cpu_now(emu) -> tuple[float, float, float]:
    writer = writer_cpu_seconds(emu)  # before the process's figure: the admin call not counted
    return time.process_time(), cpu_seconds(emu.pid), writer


def _cpu(emu, started: tuple[float, float, float], n: int) -> dict[str, float]:
    client = time.process_time() - started[0]
    server = cpu_seconds(emu.pid) - started[1]
    writer = writer_cpu_seconds(emu) - started[2]
    return {
        "client_cpu_us_per_record": round(client / n * 1e6, 1),
        "server_cpu_us_per_record": round(server / n * 1e6, 1),
        "server_writer_cpu_us_per_record": round(writer / n * 1e6, 1),
    }


def sdk_upsert(emu, n: int, batch: int) -> dict[str, Any]:
    """Microsoft's SDK, as its documentation shows it: one upsert call per batch, no retry
    of a failed call (the SDK itself does not retry a 429).

    Timed from a standing start, as `publish()` is: credential and client made, token and
    table metadata fetched (the SDK needs the entity set), then the upsert calls. The rate of
    the upsert calls alone is reported too (`loop_records_per_second`)."""
    from azure.identity import ClientSecretCredential
    from PowerPlatform.Dataverse.client import DataverseClient
    from PowerPlatform.Dataverse.models.upsert import UpsertItem

    emu.admin("POST", "reset")
    os.environ["REQUESTS_CA_BUNDLE"] = str(emu.ca_file)
    client_id, secret = emu.principals[0]
    failed_calls: list[str] = []
    cpu = _cpu_now(emu)
    started = time.monotonic()
    credential = ClientSecretCredential(
        emu.tenant_id,
        client_id,
        secret,
        authority=emu.base_url.removeprefix("https://"),
        disable_instance_discovery=True,
        connection_verify=str(emu.ca_file),
    )
    with DataverseClient(emu.base_url, credential) as client:
        client.tables.get("crc33_customer")  # the metadata the SDK looks up before a write
        loop_started = time.monotonic()
        source = rows(n)
        for _ in range(0, n, batch):
            items = [
                UpsertItem(
                    alternate_key={"crc33_cid": row["cid"]},
                    record={target: row[src] for target, src in COLUMNS.items()},
                )
                for row in itertools.islice(source, batch)
            ]
            try:
                client.records.upsert("crc33_customer", items)
            except Exception as exc:  # what a user of the SDK sees: the call failed
                failed_calls.append(type(exc).__name__ + ": " + str(exc)[:80])
        ended = time.monotonic()
        used = _cpu(emu, cpu, n)
    credential.close()
    kept = stored(emu)
    return {
        **used,
        "seconds": round(ended - started, 2),
        "records_per_second": round(kept / (ended - started), 1),
        "loop_records_per_second": round(kept / (ended - loop_started), 1),
        "failed_calls": len(failed_calls),
        "first_failure": failed_calls[0] if failed_calls else None,
        "lost": n - kept,
    }


def engine_upsert(emu, n: int, batch: int, limits: ServiceLimits | None) -> dict[str, Any]:
    emu.admin("POST", "reset")
    cpu = _cpu_now(emu)
    options = PublishOptions(transport=TransportOptions(limits=limits), bulk_batch_size=batch)
    metrics = publish(
        rows(n), load_spec(SPEC), connection(emu, 1), sink=NullSink(), options=options
    )
    used = _cpu(emu, cpu, n)
    kept = stored(emu)
    return {
        **used,
        "seconds": round(metrics.duration_seconds, 2),
        "records_per_second": round(kept / metrics.duration_seconds, 1),
        "throttled": metrics.throttled_total,
        "lost": n - kept,
    }


def peer(n: int, batch: int, setups: list[str], repeat: int = 1) -> list[dict[str, Any]]:
    results = []
    for name in [s for s in setups for _ in range(repeat)]:
        config, limits = PEER_SETUPS[name]
        with (
            tempfile.TemporaryDirectory(prefix="c360-bench-peer-") as home,
            run_emulator(home, config=config) as emu,
        ):
            # Untimed warm-up of both clients and of this server process (imports, first
            # connections, caches), so that neither timed run pays one-time costs.
            sdk_upsert(emu, min(n, 2 * batch), batch)
            engine_upsert(emu, min(n, 2 * batch), batch, limits)
            sdk = sdk_upsert(emu, n, batch)
            engine = engine_upsert(emu, n, batch, limits)
        ratio = engine["records_per_second"] / max(sdk["records_per_second"], 1e-9)
        loop_ratio = engine["records_per_second"] / max(sdk["loop_records_per_second"], 1e-9)
        results.append(
            {
                "setup": name,
                "rows": n,
                "batch": batch,
                "sdk": sdk,
                "engine": engine,
                "ratio": round(ratio, 2),
                "ratio_to_sdk_loop": round(loop_ratio, 2),
                "load_average": round(os.getloadavg()[0], 1),
            }
        )
        print(
            f"  {name}: engine {engine['records_per_second']:,.0f} rec/s (lost "
            f"{engine['lost']:,}) vs SDK {sdk['records_per_second']:,.0f} rec/s (lost "
            f"{sdk['lost']:,}, {sdk['failed_calls']} failed calls) → {ratio:.2f}× the SDK "
            f"({loop_ratio:.2f}× its upsert calls alone, {sdk['loop_records_per_second']:,.0f} "
            f"rec/s); client CPU µs/record engine {engine['client_cpu_us_per_record']} vs SDK "
            f"{sdk['client_cpu_us_per_record']}, server {engine['server_cpu_us_per_record']} vs "
            f"{sdk['server_cpu_us_per_record']} (of which its SQLite writer "
            f"{engine['server_writer_cpu_us_per_record']} vs "
            f"{sdk['server_writer_cpu_us_per_record']}); load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    if repeat > 1:  # the shared machine is noisy: the spread of the ratios says how much
        for name in setups:
            ratios = [r["ratio"] for r in results if r["setup"] == name]
            loops = [r["ratio_to_sdk_loop"] for r in results if r["setup"] == name]
            cpu = [r["engine"]["client_cpu_us_per_record"] for r in results if r["setup"] == name]
            sdk = [r["sdk"]["client_cpu_us_per_record"] for r in results if r["setup"] == name]
            print(
                f"  {name} × {repeat}: engine ÷ SDK {min(ratios):.2f}–{max(ratios):.2f}× "
                f"(median {sorted(ratios)[len(ratios) // 2]:.2f}; against its upsert calls "
                f"alone {min(loops):.2f}–{max(loops):.2f}×); client CPU µs/record engine "
                f"{min(cpu)}–{max(cpu)}, SDK {min(sdk)}–{max(sdk)}; load average "
                f"{os.getloadavg()[0]:.0f}",
                flush=True,
            )
    return results


def memory_child(n: int, home: str) -> None:
    """Runs in its own process so that its peak RSS belongs to one publish only."""
    with run_emulator(home, config={"limits": {"enabled": False}}) as emu:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        metrics = publish(
            rows(n),
            load_spec({**SPEC, "change_detection": True}),
            connection(emu, 2),
            sink=NullSink(),
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            json.dumps(
                {
                    "rows": n,
                    "published": metrics.published,
                    "seconds": round(time.monotonic() - started, 1),
                    "rss_before_mib": round(before / 1024, 1),
                    "peak_rss_mib": round(peak / 1024, 1),
                }
            )
        )


def memory(sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="c360-bench-mem-") as home:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(n), "--home", home],
                capture_output=True,
                text=True,
                check=True,
                env=dict(os.environ),
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  memory {n:>9,} rows: {results[-1]}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["throughput", "memory", "naive", "peer"], default=None)
    parser.add_argument("--peer-rows", type=int, default=20_000)
    parser.add_argument("--peer-batch", type=int, default=1000)
    parser.add_argument("--peer-repeat", type=int, default=1, help="runs of each set-up")
    parser.add_argument(
        "--peer-setups",
        default=",".join(PEER_SETUPS),
        help="comma-separated, of: " + ", ".join(PEER_SETUPS),
    )
    parser.add_argument("--rows", type=int, default=50_000, help="rows per throughput run")
    parser.add_argument("--memory-sizes", default="100000,300000,1000000")
    parser.add_argument("--naive-rows", type=int, default=400)
    parser.add_argument(
        "--runs",
        default="1p,4p,1u",
        help="throughput runs: <principals>p (paced with the known limits) or <n>u (unpaced)",
    )
    parser.add_argument("--out", default=".c360/bench", help="where the PNG and JSON go")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--home", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.runs = [(int(r[:-1]), r.endswith("p")) for r in args.runs.split(",")]
    if args.memory_child is not None:
        memory_child(args.memory_child, args.home)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"}
    if args.only in (None, "throughput", "naive"):
        with (
            tempfile.TemporaryDirectory(prefix="c360-bench-") as home,
            run_emulator(home, config=limited_config()) as emu,
        ):
            ceiling = emu.admin(
                "GET", f"limits?batch_size={BATCH}&operation=upsert&columns={len(COLUMNS)}"
            )["ceiling"]
            per_user = ceiling["records_per_second_per_user"]
            report["ceiling"] = ceiling
            print(
                f"limits: window {WINDOW:g} s, {MAX_REQUESTS} requests, "
                f"{MAX_EXECUTION:g} s execution per user; ceiling {per_user:,.1f} records/s "
                f"per principal ({ceiling['binding_limit']} binds)",
                flush=True,
            )
            if args.only in (None, "throughput"):
                runs = []
                for principals, paced in args.runs:
                    result = throughput(emu, principals, args.rows * principals, paced)
                    result["ceiling_records_per_second"] = round(per_user * principals, 1)
                    result["ratio_to_ceiling"] = round(
                        result["steady_records_per_second"] / (per_user * principals), 3
                    )
                    runs.append(result)
                    shown = {k: v for k, v in result.items() if k != "series"}
                    print(f"  {shown}", flush=True)
                report["throughput"] = [{k: v for k, v in r.items() if k != "series"} for r in runs]
                plot_throughput(
                    {
                        f"{r['principals']} principal(s){'' if r['paced'] else ', unpaced'}": r[
                            "series"
                        ]
                        for r in runs
                    },
                    out / "publish_throughput.png",
                )
            if args.only in (None, "naive"):
                report["naive"] = naive(emu, args.naive_rows)
                print(f"  naive: {report['naive']}", flush=True)
    if args.only in (None, "peer"):
        setups = [name.strip() for name in args.peer_setups.split(",") if name.strip()]
        report["peer"] = peer(args.peer_rows, args.peer_batch, setups, args.peer_repeat)
    if args.only in (None, "memory"):
        report["memory"] = memory([int(s) for s in args.memory_sizes.split(",")])
    (out / "publish_bench.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "ceiling"}, indent=2))


if __name__ == "__main__":
    main()
