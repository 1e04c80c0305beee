"""`customer360 dev` as a user starts it, for the browser test: a fresh C360_HOME with small
sample data, free ports, its output in a log file, and the GraphQL API the UI itself uses to
see what the daemon is doing (runs, backfills, sensor ticks, materialisation metadata).

"Settled" is a concrete event, not a quiet spell: nothing queued, running or backfilling, and a
tick of `medallion_automation` that started after the last run and backfill ended and requested
nothing. The test shortens the sensor and automation intervals (documented settings of
`customer360 dev`) so that tick comes within seconds."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "customer360"
REPOSITORY = "__repository__"
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
BACKFILL_IN_FLIGHT = {"REQUESTED", "CANCELING", "FAILING"}
AUTOMATION = "medallion_automation"
#: Seconds between sensor / automation evaluations while the test watches (defaults 60 / 30).
TEST_INTERVAL = "5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(home: Path, *args: str) -> str:
    env = os.environ | {"C360_HOME": str(home), "C360_ENV": "local"}
    done = subprocess.run(
        [sys.executable, "-m", "customer360.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"customer360 {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stage_sample_data(home: Path, staging: Path) -> tuple[list[Path], int]:
    """The sample customers (initial sync + one change folder) and the finance files; the
    change folder is held back for the test to drop later. Returns the held folders and the
    live customers expected once they are in.

    No KKBox and no second CRM source: the churn and second-source assets then skip with their
    reason (they have their own tests), and every run the daemon starts stays short. The export
    is generated in `staging` and all but its last folder moved into landing, so the test can
    drop a new folder the way Synapse Link adds one."""
    said = cli(staging, "generate", "customers", "--change-folders", "1", "--no-second-source")
    expected_live = int(re.search(r"expect ([\d,]+) live customers", said)[1].replace(",", ""))
    source = staging / "landing"
    landing = home / "landing"
    for area in ("finance", "dataverse"):
        shutil.copytree(source / area, landing / area, dirs_exist_ok=True)
    folders = sorted(p for p in (landing / "dataverse").iterdir() if p.name[:2] == "20")
    held = folders[-1]
    parked = staging / "held" / held.name
    parked.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(held, parked)
    return [parked], expected_live


def drop_folder(parked: Path, landing: Path) -> Path:
    """Move a complete export folder into landing in one rename (same file system), as a
    finished Synapse Link folder appears."""
    tmp = landing.parent / f".incoming-{parked.name}"
    shutil.copytree(parked, tmp)
    target = landing / "dataverse" / parked.name
    tmp.rename(target)
    return target


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

    def start(self, timeout: float = 300) -> None:
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
            # On a loaded 2-core runner the code server can take over the default 60 s to
            # answer a run launch; the run would fail with DagsterUserCodeUnreachableError.
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "customer360.cli", "dev"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"customer360 dev exited early; see {self.log_path}")
            try:
                if self.graphql("{ version }").get("version") and self._location_loaded():
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
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
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

    def latest_metadata(self, path: list[str]) -> dict:
        """Label → value of the asset's latest materialisation (ints, floats, text, md)."""
        data = self.graphql(
            "query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset { "
            "assetMaterializations(limit: 1) { runId metadataEntries { label __typename "
            "... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } "
            "... on TextMetadataEntry { text } ... on MarkdownMetadataEntry { mdStr } "
            "... on UrlMetadataEntry { url } } } } } }",
            k={"path": path},
        )
        found = data["assetOrError"].get("assetMaterializations") or []
        if not found:
            return {}
        values = {}
        for e in found[0]["metadataEntries"]:
            for attr in ("intValue", "floatValue", "text", "mdStr", "url"):
                if attr in e:
                    values[e["label"]] = e[attr]
        return values
