"""`customer360 dev` as a user starts it, for the browser test: a fresh C360_HOME with small
sample data, free ports, its output in a log file, and the GraphQL API the UI itself uses to
see what the daemon is doing (runs, backfills, sensor ticks, materialisation metadata).

"Settled" is a concrete event, not a quiet spell: nothing queued, running or backfilling, and a
tick of `medallion_automation` that started after the last run and backfill ended and requested
nothing. The test shortens the sensor and automation intervals (documented settings of
`customer360 dev`) so that tick comes within seconds."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from customer360.emulator.config import CONFIG_FILE_NAME
from customer360.emulator.launcher import EmulatorHandle
from customer360.generate import generate_customer_landing, write_second_source
from customer360.generate.customers import SAMPLE_DATA, GeneratedLanding
from tests.dataverse_reader import Reader
from tests.free_ports import free_port
from tests.small_data_jvm import SMALL_DATA_JVM

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "customer360"
REPOSITORY = "__repository__"
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
BACKFILL_IN_FLIGHT = {"REQUESTED", "CANCELING", "FAILING"}
AUTOMATION = "medallion_automation"
#: Seconds between sensor / automation evaluations while the test watches (defaults 60 / 30).
TEST_INTERVAL = "5"
#: Customers of the sample in the export (of 1,400): enough for every asset and plot.
SAMPLE_CUSTOMERS = 300
#: Rows of the second CRM source's export (of 740). The walk stages the source so that its
#: bronze and silver assets are built by the daemon too (without it bronze/crm_residents has
#: no partition and the walk's "every asset materialised" could not hold).
SAMPLE_RESIDENTS = 150


def _sample_subset(staging: Path, customers: int) -> tuple[Path, Path]:
    """The first `customers` rows of the sample customers and their spend (the spend file keeps
    its CR-only line endings, as the sample has them)."""
    with (SAMPLE_DATA / "customer.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[: customers + 1]
    customer_csv = staging / "customer.csv"
    with customer_csv.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)
    cid = kept[0].index("cid")
    cids = {r[cid] for r in kept[1:]}
    lines = (SAMPLE_DATA / "customer_spend.csv").read_bytes().split(b"\r")
    spend = [lines[0]] + [line for line in lines[1:] if line.split(b",")[0].decode() in cids]
    spend_csv = staging / "customer_spend.csv"
    spend_csv.write_bytes(b"\r".join(spend))
    return customer_csv, spend_csv


def _second_source_subset(landing: Path, rows: int) -> None:
    """The second CRM system's export as `generate customers` drops it, cut to its first rows."""
    target = write_second_source(landing)
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(lines[: rows + 1]))


def stage_sample_data(home: Path, staging: Path) -> tuple[list[Path], GeneratedLanding]:
    """What `customer360 generate customers` drops, cut small: a slice of the sample customers
    (initial sync + one change folder), their finance files and the start of the second CRM
    source; the change folder is held back for the test to drop later. Returns the held
    folders and what was generated (live customers expected once every folder is in, deleted
    Ids).

    Small on purpose (SAMPLE_CUSTOMERS, SAMPLE_RESIDENTS): every run the daemon starts stays
    short; the full sample has its own end-to-end tests. No KKBox (the churn assets report that
    nothing landed; tests/graph/test_partial_landing.py and tests/churn_assets cover them), and
    the finance files arrive on one day (one bronze partition, one run, instead of the
    generator's two drop days). The export is generated in `staging` and all but its last
    folder moved into landing, so the test can drop a new folder the way Synapse Link adds
    one."""
    customer_csv, spend_csv = _sample_subset(staging, SAMPLE_CUSTOMERS)
    out = generate_customer_landing(
        staging / "landing", customer_csv=customer_csv, spend_csv=spend_csv, change_folders=1
    )
    _second_source_subset(staging / "landing", SAMPLE_RESIDENTS)
    source = staging / "landing"
    landing = home / "landing"
    for area in ("finance", "crm2", "dataverse"):
        shutil.copytree(source / area, landing / area, dirs_exist_ok=True)
    now = time.time()
    for path in (landing / "finance").iterdir():
        os.utime(path, (now, now))  # one drop day: today
    folders = sorted(p for p in (landing / "dataverse").iterdir() if p.name[:2] == "20")
    held = folders[-1]
    parked = staging / "held" / held.name
    parked.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(held, parked)
    return [parked], out


def drop_folder(parked: Path, landing: Path) -> Path:
    """Move a complete export folder into landing in one rename (same file system), as a
    finished Synapse Link folder appears."""
    tmp = landing.parent / f".incoming-{parked.name}"
    shutil.copytree(parked, tmp)
    target = landing / "dataverse" / parked.name
    tmp.rename(target)
    return target


class _PortTaken(RuntimeError):
    """`customer360 dev` could not bind one of its ports."""


@dataclass
class DevServer:
    home: Path
    log_path: Path
    ui_port: int = field(default_factory=free_port)
    files_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def files_url(self) -> str:
        return f"http://127.0.0.1:{self.files_port}"

    def start(self, timeout: float = 300, attempts: int = 3) -> None:
        """Start `customer360 dev` and wait for its UI. A port taken between `free_port` and
        the server's bind ends the process at once: it is started again on new ports."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if attempt == attempts:
                    raise
                self.ui_port, self.files_port = free_port(), free_port()

    def _start_once(self, timeout: float) -> None:
        env = os.environ | {
            "C360_HOME": str(self.home),
            "C360_ENV": "local",
            "DAGSTER_HOME": str(self.home / "dagster"),
            "C360_UI_PORT": str(self.ui_port),
            "C360_UI_HOST": "127.0.0.1",
            "C360_DASHBOARD_PORT": str(self.files_port),
            # Sensors and automation evaluate every few seconds instead of 60 / 30 s.
            "C360_LANDING_SENSOR_INTERVAL": TEST_INTERVAL,
            "C360_AUTOMATION_INTERVAL": TEST_INTERVAL,
            # Small data: a small driver heap, and small-data JVM settings for every Spark
            # driver the runs start (a standard JVM variable, read by any `java`; README,
            # "make dev"): on ~300 rows the optimising JIT and the parallel GC threads are half
            # of a short run's CPU (a probe of a few small Spark queries).
            "C360_SPARK_DRIVER_MEMORY": "1g",
            "JAVA_TOOL_OPTIONS": SMALL_DATA_JVM,
            # On a loaded 2-core runner the code server can take over the default 60 s to
            # answer a run launch; the run would fail with DagsterUserCodeUnreachableError.
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        }
        log = self.log_path.open("ab")
        written_before = log.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "customer360.cli", "dev"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_interruptible,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with self.log_path.open("rb") as output:
                    output.seek(written_before)  # this attempt's output only
                    if b"Address already in use" in output.read():
                        raise _PortTaken(self.log_path)
                raise RuntimeError(f"customer360 dev exited early; see {self.log_path}")
            try:
                if self.graphql("{ version }").get("version") and self._location_loaded():
                    # The UI's one-time "Join the Dagster community" dialog would cover
                    # whatever the test clicks: mark it seen, as its own Skip button does.
                    self.graphql("mutation { setNuxSeen }")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise TimeoutError(
            f"the Dagster UI did not come up in {timeout:.0f} s; see {self.log_path}"
        )

    def stop(self) -> None:
        """End the process group this test started (dg dev, its webserver, daemon and code
        server, and run workers)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # `customer360 dev` ends within seconds of a Ctrl-C; if not, note what is still
            # running, then end it.
            still = subprocess.run(
                ["ps", "-o", "pid,stat,etime,args", "-g", str(self.process.pid)],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            with self.log_path.open("a") as log:
                log.write(f"\nstill running 15 s after SIGINT:\n{still}\n")
        with contextlib.suppress(ProcessLookupError):  # run workers outliving `dg dev`
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(
            f"{self.ui_url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def dataverse(self) -> Reader:
        """A reader of the local Dataverse `customer360 dev` started (its address from the
        log line the command prints; tenant and application users from its stored config)."""
        # the log is appended to across walks (a kept artifacts folder): this walk's is the last
        found = re.findall(r"local Dataverse on (https://\S+) ", self.log_path.read_text())
        if not found:
            raise AssertionError(f"no 'local Dataverse on …' line in {self.log_path}")
        base_url, folder = found[-1], self.home / "dataverse"
        stored = json.loads((folder / CONFIG_FILE_NAME).read_text("utf-8"))
        handle = EmulatorHandle(
            base_url=base_url,
            api_url=f"{base_url}/api/data/v9.2/",
            tenant_id=stored["tenant_id"],
            authority=f"{base_url}/{stored['tenant_id']}",
            ca_file=folder / "ca.pem",
            principals=[(u["client_id"], u["client_secret"]) for u in stored["application_users"]],
            home=self.home,
        )
        return Reader(handle)

    def _location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename } } } } }"
        )
        entries = data["workspaceOrError"]["locationEntries"]
        return any(
            e["name"] == LOCATION
            and e["loadStatus"] == "LOADED"
            and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    # --- what the daemon did -------------------------------------------------------------
    def runs(self, statuses: list[str] | None = None) -> list[dict]:
        data = self.graphql(
            "query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId "
            "status endTime tags { key value } } } } }",
            f={"statuses": statuses} if statuses else {},
        )
        return data["runsOrError"]["results"]

    def run_report(self) -> str:
        """One line per run, oldest first: what launched it, seconds queued (created → its
        process started), seconds from process start to the first step (start-up: process,
        code import), seconds of steps, and its steps with their seconds — where the time of
        the walk went."""
        data = self.graphql(
            "{ runsOrError { ... on Runs { results { runId status creationTime startTime "
            "endTime tags { key value } stepStats { stepKey startTime endTime status } } } } }"
        )
        runs = sorted(data["runsOrError"]["results"], key=lambda r: r["creationTime"])
        return "\n".join(_run_line(run) for run in runs)

    def backfills(self) -> list[dict]:
        """Every backfill: id, status, end time, and whether it was launched from the UI."""
        data = self.graphql(
            "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status "
            "endTimestamp tags { key value } } } } }"
        )
        found = data["partitionBackfillsOrError"]["results"]
        for b in found:
            b["fromUi"] = any(t["key"] == "dagster/from_ui" for t in b.pop("tags"))
        return found

    def ticks(self, sensor: str, limit: int = 5) -> list[dict]:
        """The sensor's latest ticks, newest first (status, start and end time, runs)."""
        data = self.graphql(
            "query($s: SensorSelector!, $n: Int) { sensorOrError(sensorSelector: $s) { "
            "... on Sensor { sensorState { ticks(limit: $n) { status timestamp endTimestamp "
            "runIds } } } } }",
            s=self._sensor_selector(sensor),
            n=limit,
        )
        return data["sensorOrError"]["sensorState"]["ticks"]

    def settled(self, at_least_runs: int = 1) -> bool:
        """Nothing in flight, and automation has looked at the result and asked for nothing."""
        runs = self.runs()
        if len(runs) < at_least_runs or any(r["status"] in IN_FLIGHT for r in runs):
            return False
        backfills = self.backfills()
        if any(b["status"] in BACKFILL_IN_FLIGHT for b in backfills):
            return False
        ended = [r["endTime"] or 0 for r in runs] + [b["endTimestamp"] or 0 for b in backfills]
        last_end = max(ended, default=0)
        return any(
            t["timestamp"] > last_end and t["status"] in ("SKIPPED", "SUCCESS") and not t["runIds"]
            for t in self.ticks(AUTOMATION)
        )

    def wait_until_settled(self, timeout: float, at_least_runs: int = 1) -> float:
        """Seconds until `settled()`; polls every 2 s."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.settled(at_least_runs):
                return time.monotonic() - start
            time.sleep(2)
        raise TimeoutError(f"the daemon was still busy after {timeout:.0f} s")

    def _sensor_selector(self, name: str) -> dict:
        return {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": name,
        }

    def sensor_status(self, name: str) -> str:
        data = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { "
            "sensorState { status } } } }",
            s=self._sensor_selector(name),
        )
        return data["sensorOrError"]["sensorState"]["status"]

    def asset_states(self) -> dict[str, dict]:
        """Every asset: its group, whether it has a materialisation, and the checks whose
        latest execution (for its latest materialisation) failed, with their severity."""
        data = self.graphql(
            "{ assetNodes { assetKey { path } groupName assetMaterializations(limit: 1) { runId } "
            "assetChecksOrError { ... on AssetChecks { checks { name "
            "executionForLatestMaterialization { status evaluation { severity } } } } } } }"
        )
        states = {}
        for node in data["assetNodes"]:
            failed = []
            for check in (node["assetChecksOrError"] or {}).get("checks", []):
                run = check["executionForLatestMaterialization"] or {}
                if run.get("status") in ("FAILED", "EXECUTION_FAILED"):
                    severity = (run.get("evaluation") or {}).get("severity", "ERROR")
                    failed.append(f"{check['name']} ({severity})")
            states["/".join(node["assetKey"]["path"])] = {
                "group": node["groupName"],
                "materialized": bool(node["assetMaterializations"]),
                "failed_checks": failed,
            }
        return states

    def latest_metadata(self, path: list[str]) -> dict:
        """Label → value of the asset's latest materialisation (ints, floats, text, md)."""
        found = self.metadata_history(path, limit=1)
        return found[0] if found else {}

    def metadata_history(self, path: list[str], limit: int = 20) -> list[dict]:
        """Label → value of each of the asset's latest `limit` materialisations, newest first."""
        data = self.graphql(
            "query($k: AssetKeyInput!, $n: Int) { assetOrError(assetKey: $k) { ... on Asset { "
            "assetMaterializations(limit: $n) { runId metadataEntries { label __typename "
            "... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } "
            "... on TextMetadataEntry { text } ... on MarkdownMetadataEntry { mdStr } "
            "... on UrlMetadataEntry { url } } } } } }",
            k={"path": path},
            n=limit,
        )
        history = []
        for found in data["assetOrError"].get("assetMaterializations") or []:
            values = {}
            for e in found["metadataEntries"]:
                for attr in ("intValue", "floatValue", "text", "mdStr", "url"):
                    if attr in e:
                        values[e["label"]] = e[attr]
            history.append(values)
        return history


def _interruptible() -> None:
    """SIGINT as in a terminal: a suite started in the background (`make test &`, a CI
    runner) has it ignored, which every child inherits, and `stop`'s Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _span(start: float | None, end: float | None) -> str:
    return f"{end - start:6.1f}" if start and end else "     -"


def _run_line(run: dict) -> str:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    backfill = tags.get("dagster/backfill")
    by = tags.get("dagster/sensor_name") or (f"backfill {backfill}" if backfill else "ui")
    steps = [s for s in run["stepStats"] if s["startTime"]]
    first = min((s["startTime"] for s in steps), default=None)
    last = max((s["endTime"] or 0 for s in steps), default=None)
    detail = ", ".join(f"{s['stepKey']} {_span(s['startTime'], s['endTime']).strip()}"
                       for s in steps)  # fmt: skip
    return (
        f"{run['runId'][:8]} {run['status']:<9} by {by:<28} queued "
        f"{_span(run['creationTime'], run['startTime'])} start-up {_span(run['startTime'], first)} "
        f"steps {_span(first, last)} total {_span(run['creationTime'], run['endTime'])}  [{detail}]"
    )
