"""`customer360 dev` as a user starts it, for the browser test: a fresh C360_HOME with small
sample data, free ports, its output in a log file, and the GraphQL API the UI itself uses to
see what the daemon is doing (runs, backfills, sensors, materialisation metadata)."""

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


def stage_sample_data(home: Path, staging: Path, kkbox_members: int) -> tuple[list[Path], int]:
    """Sample data in landing, except the newest export folder, held back for the test to drop
    later; returns the held folders and the live customers expected once they are in.

    The export is generated in `staging` and all but its last folder moved into landing, so the
    test can drop a new folder the way Synapse Link adds one."""
    said = cli(staging, "generate", "customers", "--change-folders", "2", "--no-second-source")
    expected_live = int(re.search(r"expect ([\d,]+) live customers", said)[1].replace(",", ""))
    cli(home, "generate", "kkbox", "--members", str(kkbox_members))
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
            # `dagster dev` reads its options from DAGSTER_CLI_DEV_* (click's auto_envvar_prefix)
            "DAGSTER_CLI_DEV_PORT": str(self.ui_port),
            "DAGSTER_CLI_DEV_HOST": "127.0.0.1",
            "C360_DASHBOARD_PORT": str(self.files_port),
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
        """End the process group this test started (dagster dev, its daemon and code server)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):  # run workers outliving `dagster dev`
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
            "status tags { key value } } } } }",
            f={"statuses": statuses} if statuses else {},
        )
        return data["runsOrError"]["results"]

    def backfills(self) -> list[dict]:
        data = self.graphql(
            "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status } } } }"
        )
        return data["partitionBackfillsOrError"]["results"]

    def busy(self) -> bool:
        requested = [b for b in self.backfills() if b["status"] == "REQUESTED"]
        return bool(self.runs(IN_FLIGHT) or requested)

    def wait_until_settled(self, quiet: float, timeout: float, at_least_runs: int = 1) -> float:
        """Wait until runs exist and nothing was queued, running or backfilling for `quiet`
        seconds (automation ticks every 30 s, so a shorter quiet spell proves nothing)."""
        start = time.monotonic()
        quiet_since = None
        while time.monotonic() - start < timeout:
            if self.busy() or len(self.runs()) < at_least_runs:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                return time.monotonic() - start
            time.sleep(3)
        raise TimeoutError(f"the daemon was still busy after {timeout:.0f} s")

    def sensor_status(self, name: str) -> str:
        data = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { "
            "sensorState { status } } } }",
            s={
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "sensorName": name,
            },
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
