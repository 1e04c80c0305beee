"""The project as people use it: `customer360 dev` (UI + daemon, sensors and automation on) on a
fresh C360_HOME, driven in headless Chromium. One test, in the order a user works:

1. the daemon's first wave (landing sensors → bronze runs → automation) settles, having built
   the graph down to the publish;
2. "Materialize all" on the global lineage launches a backfill of the whole graph (not
   awaited: the next steps overlap it);
3. a sensor is toggled off and on again and a new export folder is dropped into landing: the
   sensor registers it and requests its run;
4. a partition-range backfill (both export folders) is launched from bronze's launch dialog;
5. everything settles: both backfills, the sensor's run and what automation started succeed;
6. the UI shows plots inline (and serves them), table previews and column descriptions;
7. a stand-alone asset check is executed from the asset's Checks tab;
8. the Delta tables agree: one current history row per Id, live customers as generated, and
   every publish row accounted for with none failed; and Dataverse, read back with its own
   client, holds every live customer active with its segment, every deleted one deactivated,
   and a contact per person with a last name.

The range backfill, the sensor's run and automation overlap on purpose: that is how the UI is
used, and the table results must not depend on it. Waits are on concrete events (runs, backfills,
sensor ticks through the UI's GraphQL API), never on quiet periods. Screenshots of each step go
to the artifacts folder (C360_UI_ARTIFACTS), and of the page when something fails, with the
seconds each step took (`timings.txt`). Nothing is mocked: real `dg dev`, real Spark, the local
Dataverse over HTTPS, real Delta tables.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from customer360.generate.customers import GeneratedLanding
from tests.ui.dev_server import DevServer, drop_folder

pytestmark = [pytest.mark.ui, pytest.mark.timeout(3600)]

SETTLE = 1500  # upper bound for the daemon to settle on a loaded 2-core machine (load 15-25)
PUBLISH_TARGETS = ("crc33_customer", "crc33_customer_deactivation", "contact")
SENSOR = "dataverse_landing_sensor"
FIRST_WAVE_BUILDS = ("silver/customer", "gold/customer_source_link", "gold/customer_profile",
                     "lakedb/gold", *(f"dynamics/{t}" for t in PUBLISH_TARGETS))  # fmt: skip


def _shot(page, artifacts, name: str, focus=None) -> None:
    """A screenshot; the UI scrolls inside its own panes, so scroll `focus` into view first."""
    if focus is not None:
        focus.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def _open_plot(page, artifacts, label: str, name: str) -> str:
    """A plot's metadata row → "[Show Markdown]" → the PNG drawn in the dialog (data: URI);
    returns the address of its "open full size" link."""
    row = page.get_by_role("row").filter(has=page.get_by_text(label, exact=True)).first
    row.wait_for()
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    image = dialog.locator('img[src^="data:image/png;base64,"]').first
    image.wait_for()
    assert image.evaluate("img => img.naturalWidth") > 100  # decoded, not a broken image
    link = dialog.get_by_role("link", name="open full size")
    assert link.count() == 1
    served = link.get_attribute("href")
    _shot(page, artifacts, name)
    dialog.get_by_role("button", name="Close").click()
    return served


def _park(page) -> None:
    """A blank page while the test only waits on the daemon: the UI's pages poll the server
    every few seconds, CPU the runs need on a 2-core machine."""
    page.goto("about:blank")


def _runs_page(page, ui: str) -> None:
    """The run list, once it has rendered its rows (the page polls, so never goes idle)."""
    page.goto(f"{ui}/runs")
    page.get_by_text(re.compile(r"^(Success|Failure)$")).first.wait_for()


def _new_backfill(dev: DevServer, before: set[str], timeout: float = 120) -> str:
    """The backfill the dialog just launched (tagged from_ui; automation launches its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = {b["id"] for b in dev.backfills() if b["fromUi"]} - before
        if new:
            assert len(new) == 1, new
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


@dataclass
class Walk:
    """What every step needs: the server, the browser page, where screenshots go, what was
    launched, and what went wrong in the graph so far (the walk goes on, then fails)."""

    server: DevServer
    page: object
    artifacts: Path
    held: list[Path]
    generated: GeneratedLanding
    backfills: dict[str, str] = field(default_factory=dict)
    dropped: str = ""
    seen: set[str] = field(default_factory=set)  # failed runs already reported
    problems: list[str] = field(default_factory=list)

    @property
    def ui(self) -> str:
        return self.server.ui_url

    @property
    def expected_live(self) -> int:
        return self.generated.live_customers


def test_dev_ui_end_to_end(dev, page, artifacts):
    server, held, generated = dev
    walk = Walk(server, page, artifacts, held, generated)
    timings = artifacts / "timings.txt"
    began = time.monotonic()
    for step in STEPS:
        start = time.monotonic()
        step(walk)
        line = f"{step.__name__}: {time.monotonic() - start:.0f} s"
        print(line)
        with timings.open("a") as out:
            out.write(line + "\n")
    print(f"walk: {time.monotonic() - began:.0f} s")
    assert walk.problems == []


def step_1_first_wave(walk: Walk) -> None:
    """The daemon's first wave: sensors request bronze runs, automation follows."""
    server, page = walk.server, walk.page
    took = server.wait_until_settled(timeout=SETTLE)
    print(f"first wave settled after {took:.0f} s ({len(server.runs())} runs)")
    _note_failed_runs(walk, "first wave")
    # automation alone built the graph down to the publish (the optional domains that never
    # landed — churn, the second source — hold nothing back)
    unbuilt = [k for k in FIRST_WAVE_BUILDS if not server.latest_metadata(k.split("/"))]
    if unbuilt:
        walk.problems.append(f"the first wave did not build {unbuilt}")
    _runs_page(page, walk.ui)
    _shot(page, walk.artifacts, "01-first-wave-runs")


def step_2_materialize_all(walk: Walk) -> None:
    """'Materialize all' → the launch dialog → one backfill of every asset, seen running.

    Not awaited: the next steps overlap it (as a user goes on working while it runs), and
    everything settles once in step 5."""
    server, page, artifacts = walk.server, walk.page, walk.artifacts
    before = {b["id"] for b in server.backfills()}
    page.goto(f"{walk.ui}/asset-groups")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Launch runs to materialize").wait_for()
    _shot(page, artifacts, "02-materialize-all-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill_id = _new_backfill(server, before)
    walk.backfills["materialize all"] = backfill_id
    status = _backfill(server, backfill_id)["status"]
    assert status in ("REQUESTED", "COMPLETED_SUCCESS"), f"materialize all backfill: {status}"


def step_3_sensor_toggle_and_drop(walk: Walk) -> None:
    """Toggle a sensor off and on, drop a new export folder, see the sensor request its run."""
    server, page = walk.server, walk.page
    page.goto(f"{walk.ui}/locations/customer360/sensors/{SENSOR}")
    assert server.sensor_status(SENSOR) == "RUNNING"
    _switch_sensor(page, server, "STOPPED")
    _shot(page, walk.artifacts, "03-sensor-stopped")
    _switch_sensor(page, server, "RUNNING")
    _shot(page, walk.artifacts, "04-sensor-running-again")
    dropped = drop_folder(walk.held[0], server.home / "landing")
    walk.dropped = dropped.name
    _park(page)
    # its run is requested (and queued behind the backfill's runs): seen, not awaited here
    _wait_for(lambda: _sensor_runs(server, SENSOR, dropped.name), "the sensor's run", 300)


def step_4_partition_range_backfill(walk: Walk) -> None:
    """A partition-range backfill from the launch dialog of the partitioned root asset."""
    server, page, artifacts = walk.server, walk.page, walk.artifacts
    before = {b["id"] for b in server.backfills()}
    page.goto(f"{walk.ui}/assets/bronze/crc33_customer")
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Custom").click()
    dialog.get_by_role("img", name="expand_more").first.click()  # the partition menu
    choices = page.get_by_role("menuitem").filter(
        has_not_text=re.compile("Add partition|Select all")
    )
    choices.first.wait_for()
    _shot(page, artifacts, "05-partition-menu")
    # each item carries its whole key in a tooltip (long keys are shortened on screen)
    listed = [choices.nth(i).locator("[data-tooltip]").first.get_attribute("data-tooltip")
              for i in range(choices.count())]  # fmt: skip
    assert listed == sorted(listed) and walk.dropped in listed and len(listed) == 2, listed
    for i in range(choices.count()):  # both export folders: a range of two
        if not choices.nth(i).locator("input[type=checkbox]").is_checked():
            choices.nth(i).click()
    dialog.get_by_role("img", name="expand_less").first.click()  # close the menu
    dialog.get_by_text("2 partitions").wait_for()
    _shot(page, artifacts, "06-partition-range-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    ranged = _new_backfill(server, before)
    walk.backfills["partition range"] = ranged
    done = _backfill(server, ranged)
    assert done["numPartitions"] == 2 and len(done["partitionNames"]) == 2, done


def step_5_everything_settles(walk: Walk) -> None:
    """Both backfills, the sensor's run and what automation started after them succeed."""
    server, page = walk.server, walk.page
    _park(page)
    took = server.wait_until_settled(timeout=SETTLE)
    print(f"backfills, the drop and automation settled after {took:.0f} s")
    for what, backfill_id in walk.backfills.items():
        if (status := _backfill(server, backfill_id)["status"]) != "COMPLETED_SUCCESS":
            walk.problems.append(f"{what} backfill {status}")
    runs = _sensor_runs(server, SENSOR, walk.dropped)
    if not all(r["status"] == "SUCCESS" for r in runs):
        walk.problems.append(f"the sensor's runs for {walk.dropped}: {runs}")
    _note_failed_runs(walk, "after the backfills and the drop")
    _runs_page(page, walk.ui)
    _shot(page, walk.artifacts, "07-runs-after-drop")


def step_6_what_the_ui_shows(walk: Walk) -> None:
    """What the UI shows: plots inline and served, previews, column descriptions."""
    server, page, artifacts, ui = walk.server, walk.page, walk.artifacts, walk.ui
    page.goto(f"{ui}/assets/gold/customer_profile")
    served = _open_plot(page, artifacts, "segments_plot", "08-gold-profile-segments-plot")
    assert served.startswith(f"{server.files_url}/files/"), served
    image = httpx.get(served)  # the "open full size" link: the file server has the PNG
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG", served
    description = page.get_by_text("the person's stable id").first  # a column description
    description.wait_for()
    _shot(page, artifacts, "09-gold-profile-columns", description)
    preview = page.get_by_text("preview", exact=True).first
    preview.wait_for()
    _shot(page, artifacts, "10-gold-profile-preview", preview)
    page.goto(f"{ui}/assets/gold/customer_source_link")
    _open_plot(page, artifacts, "quality_plot", "11-unify-quality-plot")
    page.goto(f"{ui}/assets/silver/customer")
    preview = page.get_by_text("preview", exact=True).first
    preview.wait_for()
    _shot(page, artifacts, "12-silver-preview", preview)
    assert httpx.get(f"{server.files_url}/").status_code == 200


def step_7_execute_a_check(walk: Walk) -> None:
    """A stand-alone asset check executed on its own from the Checks tab."""
    server, page = walk.server, walk.page
    page.goto(f"{walk.ui}/assets/silver/customer_history?view=checks")
    page.get_by_text("one_current_row_per_id").first.click()
    runs_before = {r["runId"] for r in server.runs()}
    # the check's own button (its icon spoils an exact role name), not "Execute all"
    page.locator("button", has_text=re.compile(r"^\s*Execute\s*$")).first.click()
    server.wait_until_settled(timeout=600, at_least_runs=len(runs_before) + 1)
    check_runs = [r for r in server.runs() if r["runId"] not in runs_before]
    assert check_runs and all(r["status"] == "SUCCESS" for r in check_runs), check_runs
    _shot(page, walk.artifacts, "13-check-executed")


def step_8_tables_and_publish_counts(walk: Walk) -> None:
    """The tables a single sequential run would produce, and the publish counts of the latest
    publish runs: every row accounted for; every live customer published (or unchanged); one
    contact per person, except people without a last name (Dataverse requires one): those end
    as failed rows with the reason, nothing half-created."""
    server = walk.server
    # every asset but the churn chain (no KKBox here) materialised; no ERROR check failed
    states = server.asset_states()
    churn = {k for k, v in states.items() if v["group"] == "churn"} | {"gold/customer_churn_risk"}
    unbuilt = [k for k, v in states.items() if k not in churn and not v["materialized"]]
    assert unbuilt == []
    errors = {k: v["failed_checks"] for k, v in states.items()
              if any(c.endswith("(ERROR)") for c in v["failed_checks"])}  # fmt: skip
    assert errors == {}
    _assert_lake(server, walk.expected_live)
    meta = {}
    for target in PUBLISH_TARGETS:
        # (a materialisation skipped with its reason, before its source existed, reads nothing)
        history = [m for m in server.metadata_history(["dynamics", target]) if "rows_read" in m]
        for m in history:  # every run accounts for every row it read
            outcomes = sum(m[k] for k in ("published", "unchanged", "failed", "deferred"))
            assert outcomes == m["rows_read"] and m["deferred"] == 0, (target, m)
        # the latest run that had work: automation and the backfill may run a target again
        # after another run already published its rows. The deactivation target's run with
        # work can fall outside the listed history (a deactivation that ran while another run
        # wrote the deletes publishes again in the same run: source_passes 2): whether the
        # deleted customers end inactive is what matters, and Dataverse's own state is
        # checked below (_assert_dataverse: every deleted customer statecode 1).
        assert history, target
        meta[target] = next((m for m in history if m["rows_read"] > 0), history[0])
    customers = meta["crc33_customer"]
    assert customers["published"] + customers["unchanged"] == walk.expected_live, customers
    assert customers["failed"] == 0 and meta["crc33_customer_deactivation"]["failed"] == 0, meta
    profile = DeltaTable(str(server.home / "lake" / "gold" / "customer_profile"))
    people = profile.to_pyarrow_table(columns=["lastname"])["lastname"]
    named = pc.sum(pc.greater(pc.utf8_length(pc.fill_null(people, "")), 0)).as_py() or 0
    no_lastname = len(people) - named
    contact = meta["contact"]
    assert contact["rows_read"] == len(people), contact
    assert contact["failed"] == no_lastname, (contact, no_lastname)
    _assert_dataverse(walk, profile)


def _assert_dataverse(walk: Walk, profile: DeltaTable) -> None:
    """What Dataverse holds afterwards, read back with its own client: every live customer
    active with its value segment, every deleted one deactivated (soft delete), and one contact
    per person with a last name, keyed by the unified id (contacts of deleted people stay)."""
    deleted = walk.generated.deleted_ids - walk.generated.recreated_ids
    reader = walk.server.dataverse()
    try:
        customers = reader.table("crc33_customers", ["statecode", "crc33_valuesegment"])
        contacts = {c["contactid"] for c in reader.table("contacts", ["contactid"])}
    finally:
        reader.close()
    active = [c for c in customers if c["statecode"] == 0 and c["crc33_valuesegment"]]
    assert len(active) == walk.expected_live
    assert sum(1 for c in customers if c["statecode"] == 1) == len(deleted) > 0
    rows = profile.to_pyarrow_table(columns=["unified_customer_id", "lastname"]).to_pylist()
    named = {r["unified_customer_id"] for r in rows if r["lastname"]}
    assert named <= contacts, len(named - contacts)
    assert len(contacts - named) <= len(deleted)


STEPS = [
    step_1_first_wave,
    step_2_materialize_all,
    step_3_sensor_toggle_and_drop,
    step_4_partition_range_backfill,
    step_5_everything_settles,
    step_6_what_the_ui_shows,
    step_7_execute_a_check,
    step_8_tables_and_publish_counts,
]


def _switch_sensor(page, server: DevServer, wanted: str) -> None:
    """Click the sensor's switch until the instance reports `wanted`. The switch's input is
    visually hidden (so the click is dispatched to it), and it ignores clicks while the page
    refreshes after a change, hence a bounded retry."""
    toggle = page.locator("input[type=checkbox]").first
    for _ in range(5):
        toggle.wait_for(state="attached")
        if toggle.is_enabled() and toggle.is_checked() != (wanted == "RUNNING"):
            toggle.dispatch_event("click")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.sensor_status(SENSOR) == wanted:
                # the page shows it too once it has refreshed
                page.wait_for_function(
                    "([el, on]) => el.checked === on && !el.disabled",
                    arg=[toggle.element_handle(), wanted == "RUNNING"],
                )
                return
            time.sleep(1)
    raise AssertionError(f"{SENSOR} did not become {wanted} from its switch")


def _note_failed_runs(walk: Walk, when: str) -> None:
    """A failed run is a problem even when a later one repaired what it left."""
    failed = [r["runId"] for r in walk.server.runs(["FAILURE"]) if r["runId"] not in walk.seen]
    walk.seen.update(failed)
    if failed:
        walk.problems.append(f"runs failed ({when}): {failed}")


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
    current_rows = history.filter(history["is_current"])
    ids = pc.value_counts(current_rows["Id"])
    several = pc.sum(pc.greater(ids.field("counts"), 1)).as_py() or 0
    live = pc.sum(pc.invert(current_rows["is_deleted"])).as_py() or 0
    assert several == 0, f"{several} Ids with more than one current history row"
    assert live == expected_live
    assert current.num_rows + quarantine.num_rows == expected_live
