"""Throughput of the local Dataverse emulator with service-protection limits off.

Runs the emulator as a subprocess (its own CPU, as in production) and drives it from this
process with httpx over HTTPS (HTTP/1.1 keep-alive, several concurrent connections):

1. UpsertMultiple in batches of 1,000 crc33_customer records (keyed by the alternate key);
2. single-record upserts (`PATCH crc33_customers(crc33_cid=N)`).

    .venv/bin/python bench/emulator.py [--records 100000] [--singles 5000] [--concurrency 4]

Prints records/s for each; figures are recorded in docs/emulator.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import httpx

from customer360.emulator.launcher import run_emulator


def customer(cid: int, run: int) -> dict:
    return {
        "crc33_cid": cid,
        "crc33_firstname": f"First{cid}",
        "crc33_lastname": f"Last{cid}",
        "crc33_name": f"First{cid} Last{cid}",
        "crc33_gender": "Female" if cid % 2 else "Male",
        "crc33_email": f"first{cid}.last{cid}@contoso.com",
        "crc33_telephone": "801-555-0100",
        "crc33_country": "United States",
        "crc33_city": "Washington",
        "crc33_state": "DC",
        "crc33_postcode": "20020",
        "crc33_streetaddress": f"{cid} Main Street",
        "crc33_dateofbirth": "1980-05-09",
        "crc33_source": f"bench{run}",
        "crc33_totalspend": 1000 + cid % 4000,
    }


def token(handle, client: httpx.Client) -> str:
    client_id, secret = handle.principals[0]
    response = client.post(
        f"{handle.authority}/oauth2/v2.0/token",
        data={
            "client_id": client_id,
            "client_secret": secret,
            "grant_type": "client_credentials",
            "scope": handle.scope,
        },
    )
    response.raise_for_status()
    return response.json()["access_token"]


def _headers(access: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {access}",
        "Content-Type": "application/json; charset=utf-8",
        "OData-MaxVersion": "4.0",
        "OData-Version": "4.0",
        "If-None-Match": "null",
    }


def _run_workers(handle, work, chunks: list, connections: int) -> float:
    """Run `work(client, chunk)` over the chunks on `connections` keep-alive clients; seconds."""
    pending = list(reversed(chunks))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        with handle.http_client(timeout=300) as client:
            while True:
                with lock:
                    if not pending or failures:
                        return
                    chunk = pending.pop()
                try:
                    work(client, chunk)
                except BaseException as exc:  # stop every worker, report after join
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return time.perf_counter() - start


def upsert_multiple(handle, access: str, records: int, batch: int, connections: int, run: int):
    url = f"{handle.api_url}crc33_customers/Microsoft.Dynamics.CRM.UpsertMultiple"
    headers = _headers(access)

    def work(client: httpx.Client, cids: range) -> None:
        targets = []
        for cid in cids:
            item = customer(cid, run)
            item["@odata.type"] = "Microsoft.Dynamics.CRM.crc33_customer"
            targets.append(item)
        response = client.post(url, content=json.dumps({"Targets": targets}), headers=headers)
        if response.status_code != 204:
            raise RuntimeError(f"{response.status_code} {response.text[:300]}")

    chunks = [range(s, min(s + batch, records)) for s in range(0, records, batch)]
    return records / _run_workers(handle, work, chunks, connections)


def single_upserts(handle, access: str, count: int, connections: int) -> float:
    headers = _headers(access)

    def work(client: httpx.Client, cids: range) -> None:
        for cid in cids:
            body = customer(cid, 3)
            body.pop("crc33_cid")
            response = client.patch(
                f"{handle.api_url}crc33_customers(crc33_cid={cid})",
                content=json.dumps(body),
                headers=headers,
            )
            if response.status_code != 204:
                raise RuntimeError(f"{response.status_code} {response.text[:300]}")

    chunks = [range(s, min(s + 100, count)) for s in range(0, count, 100)]
    return count / _run_workers(handle, work, chunks, connections)


def server_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of the server process (Linux), to show CPU cost per record."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with (
        tempfile.TemporaryDirectory(prefix="c360-bench-") as home,
        run_emulator(home, config={"limits": {"enabled": False}}) as handle,
    ):
        with handle.http_client() as client:
            access = token(handle, client)
        for run, label in ((1, "create"), (2, "update")):
            cpu = server_cpu_seconds(handle.pid)
            rate = upsert_multiple(handle, access, args.records, args.batch, args.connections, run)
            used = server_cpu_seconds(handle.pid)
            per_record = (
                f", server CPU {(used - cpu) / args.records * 1e6:.0f} µs/record"
                if cpu is not None and used is not None
                else ""
            )
            print(
                f"UpsertMultiple ({label}), {args.records:,} records in batches of {args.batch}, "
                f"{args.connections} connections: {rate:,.0f} records/s{per_record}"
            )
        cpu = server_cpu_seconds(handle.pid)
        rate = single_upserts(handle, access, args.singles, args.connections)
        used = server_cpu_seconds(handle.pid)
        per_request = (
            f", server CPU {(used - cpu) / args.singles * 1e3:.2f} ms/request"
            if cpu is not None and used is not None
            else ""
        )
        print(
            f"single-record upserts (PATCH by alternate key, update), {args.singles:,} requests, "
            f"{args.connections} connections: {rate:,.0f} requests/s{per_request}"
        )


if __name__ == "__main__":
    main()
