"""The project as people use it: `customer360 dev` (UI + daemon, sensors and automation on) on a
fresh C360_HOME, driven in headless Chromium. One test, in the order a user works:

1. the daemon's first wave (landing sensors → bronze runs → automation) settles;
2. "Materialize all" on the global lineage launches a backfill of the whole graph;
3. a partition-range backfill (two export folders) is launched from bronze's launch dialog;
4. the UI shows plots inline, table previews, column descriptions and a served dashboard;
5. a stand-alone asset check is executed from the asset's Checks tab;
6. a sensor is toggled off and on again, a new export folder is dropped into landing, and the
   sensor's run for it succeeds;
7. the Delta tables agree: one current history row per Id, live customers as generated, and
   every publish row accounted for with none failed.

Screenshots of each step go to the artifacts folder (C360_UI_ARTIFACTS), and of the page when
something fails. Nothing is mocked: real `dagster dev`, real Spark, the local Dataverse over
HTTPS, real Delta tables.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import pytest
from deltalake import DeltaTable

from tests.ui.dev_server import DevServer, drop_folder

pytestmark = [pytest.mark.ui, pytest.mark.timeout(3600)]

QUIET = 45  # seconds without queued/running runs: longer than one automation tick (30 s)
SETTLE = 1800  # upper bound for one wave on a loaded 2-core machine
PUBLISH_TARGETS = ("crc33_customer", "crc33_customer_deactivation", "contact")


def _shot(page, artifacts, name: str, focus=None) -> None:
    """A screenshot; the UI scrolls inside its own panes, so scroll `focus` into view first."""
    if focus is not None:
        focus.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def _open_plot(page, artifacts, label: str, name: str) -> None:
    """A plot's metadata row → "[Show Markdown]" → the PNG drawn in the dialog (data: URI)."""
    row = page.get_by_role("row").filter(has=page.get_by_text(label, exact=True)).first
    row.wait_for()
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    image = dialog.locator('img[src^="data:image/png;base64,"]').first
    image.wait_for()
    assert image.evaluate("img => img.naturalWidth") > 100  # decoded, not a broken image
    assert dialog.get_by_role("link", name="open full size").count() == 1
    _shot(page, artifacts, name)
    dialog.get_by_role("button", name="Close").click()


def _runs_page(page, ui: str) -> None:
    """The run list, once it has rendered its rows (the page polls, so never goes idle)."""
    page.goto(f"{ui}/runs")
    page.get_by_text(re.compile(r"^(Success|Failure)$")).first.wait_for()


def _new_backfill(dev: DevServer, before: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = {b["id"] for b in dev.backfills()} - before
        if new:
            return new.pop()
        time.sleep(2)
    raise AssertionError("the dialog launched no backfill")


def _backfill(dev: DevServer, backfill_id: str) -> dict:
    data = dev.graphql(
        "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on "
        "PartitionBackfill { id status numPartitions partitionNames } } }",
        id=backfill_id,
    )
    return data["partitionBackfillOrError"]


def _failed_runs(dev: DevServer) -> list[str]:
    return [r["runId"] for r in dev.runs(["FAILURE"])]


@dataclass
class Walk:
    """What every step needs: the server, the browser page, where screenshots go, and what
    went wrong in the graph so far (the walk goes on to show the rest, then fails)."""

    server: DevServer
    page: object
    artifacts: Path
    held: list[Path]
    expected_live: int
    problems: list[str] = field(default_factory=list)

    @property
    def ui(self) -> str:
        return self.server.ui_url


def test_dev_ui_end_to_end(dev, page, artifacts):
    server, held, expected_live = dev
    walk = Walk(server, page, artifacts, held, expected_live)
    for step in STEPS:
        step(walk)
    assert walk.problems == []


def step_1_first_wave(walk: Walk) -> None:
    """The daemon's first wave: sensors request bronze runs, automation follows."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    took = server.wait_until_settled(quiet=QUIET, timeout=SETTLE)
    print(f"first wave settled after {took:.0f} s ({len(server.runs())} runs)")
    _runs_page(page, ui)
    _shot(page, artifacts, "01-first-wave-runs")


def step_2_materialize_all(walk: Walk) -> None:
    """'Materialize all' → the launch dialog → one backfill of every asset."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    before = {b["id"] for b in server.backfills()}
    page.goto(f"{ui}/asset-groups")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Launch runs to materialize").wait_for()
    _shot(page, artifacts, "02-materialize-all-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    everything = _new_backfill(server, before)
    took = server.wait_until_settled(quiet=QUIET, timeout=SETTLE)
    print(f"materialize-all backfill settled after {took:.0f} s")
    if (status := _backfill(server, everything)["status"]) != "COMPLETED_SUCCESS":
        walk.problems.append(
            f"materialize-all backfill {status}; failed runs {_failed_runs(server)}"
        )


def step_3_partition_range_backfill(walk: Walk) -> None:
    """A partition-range backfill from the launch dialog of the partitioned root asset."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    before = {b["id"] for b in server.backfills()}
    page.goto(f"{ui}/assets/bronze/crc33_customer")
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Custom").click()
    dialog.get_by_text("Select a partition or create one").click()
    choices = page.get_by_role("menuitem").filter(
        has_not_text=re.compile("Add partition|Select all")
    )
    choices.nth(0).click()
    choices.nth(1).click()
    page.keyboard.press("Escape")  # close the partition menu, keep the dialog
    dialog.get_by_text("2 partitions").wait_for()
    _shot(page, artifacts, "03-partition-range-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    ranged = _new_backfill(server, before)
    server.wait_until_settled(quiet=QUIET, timeout=SETTLE)
    done = _backfill(server, ranged)
    assert done["numPartitions"] == 2 and len(done["partitionNames"]) == 2, done
    if done["status"] != "COMPLETED_SUCCESS":
        walk.problems.append(f"partition-range backfill {done['status']}")


def step_4_what_the_ui_shows(walk: Walk) -> None:
    """What the UI shows: plots inline, previews, column descriptions, the served dashboard."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    page.goto(f"{ui}/assets/gold/customer_profile")
    _open_plot(page, artifacts, "segments_plot", "04-gold-profile-segments-plot")
    description = page.get_by_text("the person's stable id").first  # a column description
    description.wait_for()
    _shot(page, artifacts, "05-gold-profile-columns", description)
    preview = page.get_by_text("preview", exact=True).first
    preview.wait_for()
    _shot(page, artifacts, "06-gold-profile-preview", preview)
    page.goto(f"{ui}/assets/gold/customer_source_link")
    _open_plot(page, artifacts, "quality_plot", "07-unify-quality-plot")
    page.goto(f"{ui}/assets/silver/customer")
    preview = page.get_by_text("preview", exact=True).first
    preview.wait_for()
    _shot(page, artifacts, "08-silver-preview", preview)
    dashboard = server.latest_metadata(["churn", "dashboard"])["dashboard_url"]
    assert dashboard.startswith(f"{server.files_url}/files/churn/dashboard/"), dashboard
    page.goto(f"{ui}/assets/churn/dashboard")
    link = page.locator(f'a[href="{dashboard}"]').first  # an http:// link, not a file:// one
    link.wait_for()
    _shot(page, artifacts, "09-dashboard-link", link)
    page.goto(dashboard)  # the UI opens it in a new tab; the same page is simpler to check
    assert "churn" in page.content().lower()
    _shot(page, artifacts, "10-served-dashboard")
    assert httpx.get(f"{server.files_url}/").status_code == 200


def step_5_execute_a_check(walk: Walk) -> None:
    """A stand-alone asset check executed on its own from the Checks tab."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    page.goto(f"{ui}/assets/silver/customer_history?view=checks")
    page.get_by_text("one_current_row_per_id").first.click()
    runs_before = {r["runId"] for r in server.runs()}
    # the check's own button (its icon spoils an exact role name), not "Execute all"
    page.locator("button", has_text=re.compile(r"^\s*Execute\s*$")).first.click()
    server.wait_until_settled(quiet=5, timeout=600)
    check_runs = [r for r in server.runs() if r["runId"] not in runs_before]
    assert check_runs and all(r["status"] == "SUCCESS" for r in check_runs), check_runs
    _shot(page, artifacts, "11-check-executed")


def step_6_sensor_toggle_and_drop(walk: Walk) -> None:
    """Toggle a sensor off and on, drop a new export folder, see the sensor's run."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    sensor = "dataverse_landing_sensor"
    page.goto(f"{ui}/locations/customer360/sensors/{sensor}")
    toggle = page.locator("input[type=checkbox]").first
    assert server.sensor_status(sensor) == "RUNNING"
    toggle.dispatch_event("click")  # the input is visually hidden under its switch
    _wait_for(lambda: server.sensor_status(sensor) == "STOPPED", "sensor stopped")
    toggle.dispatch_event("click")  # the input is visually hidden under its switch
    _wait_for(lambda: server.sensor_status(sensor) == "RUNNING", "sensor running again")
    _shot(page, artifacts, "12-sensor-toggled")
    dropped = drop_folder(walk.held[0], server.home / "landing")
    _wait_for(lambda: _sensor_runs(server, sensor, dropped.name), "the sensor's run", 600)
    server.wait_until_settled(quiet=QUIET, timeout=SETTLE)
    runs = _sensor_runs(server, sensor, dropped.name)
    assert runs, f"no run of {sensor} for {dropped.name}"
    if not all(r["status"] == "SUCCESS" for r in runs):
        walk.problems.append(f"the sensor's runs for {dropped.name}: {runs}")
    _runs_page(page, ui)
    _shot(page, artifacts, "13-runs-after-drop")


def step_7_tables_and_publish_counts(walk: Walk) -> None:
    """The tables a single sequential run would produce, and the publish counts."""
    server = walk.server
    _assert_lake(server, walk.expected_live)
    for target in PUBLISH_TARGETS:
        meta = server.latest_metadata(["dynamics", target])
        outcomes = sum(meta[k] for k in ("published", "unchanged", "failed", "deferred"))
        assert meta["rows_read"] > 0 and outcomes == meta["rows_read"], (target, meta)
        if meta["failed"]:
            walk.problems.append(f"dynamics/{target}: {meta['failed']} rows failed to publish")


STEPS = [
    step_1_first_wave,
    step_2_materialize_all,
    step_3_partition_range_backfill,
    step_4_what_the_ui_shows,
    step_5_execute_a_check,
    step_6_sensor_toggle_and_drop,
    step_7_tables_and_publish_counts,
]


def _sensor_runs(server: DevServer, sensor: str, partition: str) -> list[dict]:
    found = []
    for run in server.runs():
        tags = {t["key"]: t["value"] for t in run["tags"]}
        if tags.get("dagster/sensor_name") == sensor and tags.get("dagster/partition") == partition:
            found.append(run)
    return found


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_lake(server: DevServer, expected_live: int) -> None:
    lake = server.home / "lake"
    history = DeltaTable(str(lake / "silver" / "customer_history")).to_pyarrow_table(
        columns=["Id", "is_current", "is_deleted"]
    )
    current = DeltaTable(str(lake / "silver" / "customer")).to_pyarrow_table(columns=["Id"])
    quarantine = DeltaTable(str(lake / "silver" / "customer_quarantine")).to_pyarrow_table(
        columns=["Id"]
    )
    db = duckdb.connect()
    db.register("h", history)
    several = db.sql("SELECT count(*) FROM (SELECT Id FROM h WHERE is_current "
                     "GROUP BY Id HAVING count(*) > 1)").fetchone()[0]  # fmt: skip
    live = db.sql("SELECT count(*) FROM h WHERE is_current AND NOT is_deleted").fetchone()[0]
    assert several == 0, f"{several} Ids with more than one current history row"
    assert live == expected_live
    assert current.num_rows + quarantine.num_rows == expected_live
