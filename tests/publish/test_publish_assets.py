"""The Dagster side of publishing, against the real local Dataverse (HTTPS, msal, limits):
publish assets from lake tables, ops tables, reconciliation checks and the deferred sensor."""

import os
import threading
import time

import dagster as dg
import pyarrow as pa
import pytest
from dataverse_reader import Reader

from assets.dynamics import DEFERRED_TABLE, FAILED_TABLE, publish_assets
from customer360.cli.local_dataverse import connection_env
from customer360.emulator.launcher import run_emulator
from resources.dynamics import build_dynamics_resource
from resources.lakehouse import LakehouseResource
from resources.ui_metadata import plot_file
from sensors.deferred import deferred_publish_sensor

# The gold profile's columns the publish specs read (one Dataverse record per person here).
PROFILE = pa.schema(
    [("dataverse_cids", pa.list_(pa.int64())), ("firstname", pa.string()),
     ("lastname", pa.string()), ("name", pa.string()), ("email", pa.string()),
     ("telephone", pa.string()),
     ("city", pa.string()), ("state", pa.string()), ("postcode", pa.string()),
     ("country", pa.string()), ("total_spend", pa.decimal128(18, 2)),
     ("value_segment", pa.string()), ("life_stage_segment", pa.string()),
     ("churn_probability", pa.float64()), ("churn_risk_band", pa.string())]
)  # fmt: skip


def _profile(n: int, segment: str = "high_value") -> pa.Table:
    rows = [
        {"dataverse_cids": [i], "firstname": f"F{i}", "lastname": f"L{i}", "name": f"F{i} L{i}",
         "email": f"p{i}@example.com", "telephone": "801-555-0100", "city": "Provo",
         "state": "UT", "postcode": "84601", "country": "United States",
         "total_spend": None, "value_segment": segment, "life_stage_segment": "established",
         "churn_probability": 0.25, "churn_risk_band": "medium"}
        for i in range(n)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=PROFILE)


@pytest.fixture
def world(tmp_path):
    with run_emulator(tmp_path / "home", config={"limits": {"enabled": False}}) as emu:
        saved = dict(os.environ)
        os.environ.update(connection_env(emu))
        try:
            lakehouse = LakehouseResource(root_uri=str(tmp_path / "lake"))
            resources = {
                "lakehouse": lakehouse,
                "dynamics": build_dynamics_resource(str(emu.ca_file)),
            }
            yield emu, lakehouse, resources
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _asset(name):
    return next(a for a in publish_assets if a.key.path[-1] == name)


def _customers(emu) -> dict[int, dict]:
    reader = Reader(emu)
    try:
        rows = reader.table(
            "crc33_customers", ["crc33_cid", "crc33_valuesegment", "statecode", "crc33_customerid"]
        )
    finally:
        reader.close()
    return {r["crc33_cid"]: r for r in rows}


def test_publish_then_nothing_to_send_then_deactivate(world):
    emu, lakehouse, resources = world
    lakehouse.write_arrow(_profile(300), "gold", "customer_profile")
    asset = _asset("crc33_customer")
    first = dg.materialize([asset], resources=resources)
    assert first.success
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["published"].value == 300 and meta["failed"].value == 0
    checks = {c.check_name: c.passed for c in first.get_asset_check_evaluations()}
    assert checks == {"reconciliation": True, "no_failed_rows": True, "deferred_backlog_age": True}
    assert plot_file(meta["throughput_plot"].value).read_bytes()[:4] == b"\x89PNG"

    second = dg.materialize([asset], resources=resources)
    meta2 = second.get_asset_materialization_events()[0].materialization.metadata
    assert meta2["unchanged"].value == 300 and meta2["published"].value == 0  # change detection

    lakehouse.write_arrow(_profile(300, segment="low_value"), "gold", "customer_profile")
    third = dg.materialize([asset], resources=resources)
    meta3 = third.get_asset_materialization_events()[0].materialization.metadata
    assert meta3["published"].value == 300
    customers = _customers(emu)
    assert len(customers) == 300
    assert {r["crc33_valuesegment"] for r in customers.values()} == {"low_value"}


def test_deferred_operations_are_replayed_by_the_sensor(world):
    emu, lakehouse, resources = world
    lakehouse.write_arrow(_profile(400), "gold", "customer_profile")
    # One attempt per run and no delay: transient failures are deferred at once and due now.
    resources = dict(resources)
    base = resources["dynamics"]
    fields = {name: getattr(base, name) for name in type(base).model_fields}
    resources["dynamics"] = type(base)(
        **{**fields, "max_attempts": 1, "defer_delay_seconds": 0.0, "bulk_batch_size": 25}
    )
    emu.admin("PATCH", "config", {"faults": {"seed": 3, "error_rate": 0.4}})
    asset = _asset("crc33_customer")
    first = dg.materialize([asset], resources=resources)
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["deferred"].value > 0, meta
    assert meta["published"].value + meta["deferred"].value + meta["failed"].value == 400
    pending = lakehouse.read_arrow("ops", DEFERRED_TABLE).num_rows
    assert pending == meta["deferred"].value
    assert {c.check_name: c.passed for c in first.get_asset_check_evaluations()}["reconciliation"]

    emu.admin("PATCH", "config", {"faults": {"error_rate": 0.0}})
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"lakehouse": lakehouse})
        requests = deferred_publish_sensor(context)
        assert [r.asset_selection for r in requests] == [[asset.key]]
        request = requests[0]
        assert request.run_key.startswith("deferred:crc33_customer:")
        replay = dg.materialize(
            [asset], resources=resources, run_config=request.run_config, instance=instance
        )
    replay_meta = replay.get_asset_materialization_events()[0].materialization.metadata
    assert replay_meta["replay"].value is True
    assert replay_meta["published"].value == pending
    assert lakehouse.read_arrow("ops", DEFERRED_TABLE).num_rows == 0
    assert len(_customers(emu)) == 400
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"lakehouse": lakehouse})
        assert isinstance(deferred_publish_sensor(context), dg.SkipReason)


def test_invalid_rows_end_in_failed_rows_table(world):
    _emu, lakehouse, resources = world
    table = _profile(50)
    names = table.column("name").to_pylist()
    names[7] = "x" * 5000  # longer than the column allows: truncation policy keeps it valid
    emails = table.column("email").to_pylist()
    table = table.set_column(table.schema.get_field_index("name"), "name", pa.array(names))
    cids = table.column("dataverse_cids").to_pylist()
    cids[9] = [None]  # no business key: the row cannot be published
    table = table.set_column(0, "dataverse_cids", pa.array(cids, PROFILE.field(0).type))
    del emails
    lakehouse.write_arrow(table, "gold", "customer_profile")
    result = dg.materialize([_asset("crc33_customer")], resources=resources)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["published"].value == 49 and meta["failed"].value == 1
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["reconciliation"].passed and not checks["no_failed_rows"].passed
    failed = lakehouse.read_arrow("ops", FAILED_TABLE).to_pylist()
    assert len(failed) == 1 and failed[0]["row_number"] == 9 and failed[0]["error_code"]


def test_upstream_deletes_are_deactivated(world):
    emu, lakehouse, resources = world
    lakehouse.write_arrow(_profile(20), "gold", "customer_profile")
    assert dg.materialize([_asset("crc33_customer")], resources=resources).success
    ids = {cid: row["crc33_customerid"] for cid, row in _customers(emu).items()}
    # issue 14: before any Synapse Link export the history does not exist: nothing sent, not
    # failed, and materialised with the reason (a backfill must not see it without a status)
    early = dg.materialize([_asset("crc33_customer_deactivation")], resources=resources)
    (event,) = early.get_asset_materialization_events()
    assert early.success and "does not exist yet" in event.materialization.metadata["skipped"].value
    checks = early.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks)
    for check in checks:
        assert "silver/customer_history does not exist yet" in check.metadata["skipped"].value
    never_published = "0b1d5e2a-0000-4000-8000-000000000063"  # deleted before it reached Dataverse
    history = pa.table(
        {
            "Id": [ids[3], ids[4], ids[5], never_published],
            "is_current": [True, True, False, True],
            "is_deleted": [True, False, True, True],
        }
    )
    lakehouse.write_arrow(history, "silver", "customer_history")
    result = dg.materialize([_asset("crc33_customer_deactivation")], resources=resources)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["published"].value == 1
    # issue 14: deactivating a record Dataverse never had is nothing to do, not a failed row
    assert (meta["failed"].value, meta["absent_nothing_to_do"].value) == (0, 1)
    assert meta["unchanged"].value == 1
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["no_failed_rows"] and checks["reconciliation"]
    states = {cid: row["statecode"] for cid, row in _customers(emu).items()}
    assert states[3] == 1 and states[4] == 0 and states[5] == 0
    again = dg.materialize([_asset("crc33_customer_deactivation")], resources=resources)
    again_meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert (again_meta["unchanged"].value, again_meta["failed"].value) == (2, 0)


def _written(emu) -> int:
    with emu.http_client(timeout=30.0) as client:
        stats = client.get(f"{emu.base_url}/_emulator/stats").json()
    return stats["totals"]["records_written"]


def test_a_source_written_during_the_publish_is_published_again(world):
    """The daemon race: a backfill's deactivation publishes silver/customer_history while an
    automation run writes new deletes into it. The deactivation must publish the new version in
    the same materialisation (eager automation takes its materialisation, which lands after the
    history's, as having handled that change)."""
    emu, lakehouse, resources = world
    lakehouse.write_arrow(_profile(40), "gold", "customer_profile")
    assert dg.materialize([_asset("crc33_customer")], resources=resources).success
    ids = [_customers(emu)[cid]["crc33_customerid"] for cid in range(40)]

    def history(deleted: int) -> pa.Table:
        flags = [cid < deleted for cid in range(40)]
        return pa.table({"Id": ids, "is_current": [True] * 40, "is_deleted": flags})

    lakehouse.write_arrow(history(deleted=20), "silver", "customer_history")
    # Slow enough to write into: one request at a time, 5 records each, half a second apiece.
    emu.admin("PATCH", "config", {"cost_model": {"simulate_latency": True, "per_request_ms": 500}})
    base = resources["dynamics"]
    fields = {name: getattr(base, name) for name in type(base).model_fields}
    slow = dict(resources)
    slow["dynamics"] = type(base)(
        **fields | {"bulk_batch_size": 5, "batch_batch_size": 5, "max_concurrency_per_principal": 1}
    )
    before = _written(emu)

    def another_run_writes_history() -> None:
        deadline = time.monotonic() + 120
        while _written(emu) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        lakehouse.write_arrow(history(deleted=30), "silver", "customer_history")

    writer = threading.Thread(target=another_run_writes_history)
    writer.start()
    result = dg.materialize([_asset("crc33_customer_deactivation")], resources=slow)
    writer.join()
    states = {cid: row["statecode"] for cid, row in _customers(emu).items()}
    assert [states[cid] for cid in range(40)] == [1] * 30 + [0] * 10
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["source_passes"].value == 2, meta
    # the last pass: the 20 deactivated by the first are unchanged, the 10 new ones published
    assert (meta["published"].value, meta["unchanged"].value) == (10, 20)
    assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()}["reconciliation"]


def test_contacts_are_inserted_once_and_owned_by_state_team(world):
    """And a changed customer after a new export updates its contact (issue 17: the insert-only
    target failed them with RecordAlreadyExists)."""
    emu, lakehouse, resources = world
    profile = pa.table(
        {
            "unified_customer_id": [
                f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 4)
            ],
            "firstname": ["Ann", "Bo", "Cy"], "lastname": ["A", "B", "C"],
            "email": ["a@x.co", "b@x.co", "c@x.co"],
            "telephone_e164": ["+18015550100", None, "+442079460958"],
            "city": ["Provo", "Austin", None], "state": ["UT", "TX", None],
            "postcode": ["84601", "73301", None], "country": ["United States"] * 2 + [None],
            "dateofbirth": pa.array([None, None, None], pa.date32()),
        }
    )  # fmt: skip
    lakehouse.write_arrow(profile, "gold", "customer_profile")
    first = dg.materialize([_asset("contact")], resources=resources)
    meta = first.get_asset_materialization_events()[0].materialization.metadata
    assert meta["published"].value == 3 and meta["failed"].value == 0
    again = dg.materialize([_asset("contact")], resources=resources)
    meta2 = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta2["published"].value == 0 and meta2["unchanged"].value == 3
    reader = Reader(emu)
    try:
        contacts = reader.table("contacts", ["contactid", "_ownerid_value", "firstname"])
        teams = {t["teamid"]: t["name"] for t in reader.table("teams", ["teamid", "name"])}
    finally:
        reader.close()
    assert len(contacts) == 3
    owners = {c["firstname"]: teams.get(c["_ownerid_value"]) for c in contacts}
    assert owners == {"Ann": "Sales", "Bo": "customer360", "Cy": "customer360"}

    # a new export: Bo moved to Utah (owner changes to Sales), Cy got an e-mail address
    changed = profile.to_pylist()
    changed[1] = {**changed[1], "city": "Provo", "state": "UT", "postcode": "84601"}
    changed[2] = {**changed[2], "email": "cy@new.co"}
    lakehouse.write_arrow(
        pa.Table.from_pylist(changed, schema=profile.schema), "gold", "customer_profile"
    )
    third = dg.materialize([_asset("contact")], resources=resources)
    meta3 = third.get_asset_materialization_events()[0].materialization.metadata
    assert (meta3["published"].value, meta3["unchanged"].value, meta3["failed"].value) == (2, 1, 0)
    reader = Reader(emu)
    try:
        contacts = {
            c["firstname"]: c
            for c in reader.table(
                "contacts",
                ["contactid", "_ownerid_value", "firstname", "address1_city", "emailaddress1"],
            )
        }
    finally:
        reader.close()
    assert len(contacts) == 3
    assert teams[contacts["Bo"]["_ownerid_value"]] == "Sales"
    assert contacts["Bo"]["address1_city"] == "Provo"
    assert contacts["Cy"]["emailaddress1"] == "cy@new.co"
    assert contacts["Ann"]["emailaddress1"] == "a@x.co"
    fourth = dg.materialize([_asset("contact")], resources=resources)
    meta4 = fourth.get_asset_materialization_events()[0].materialization.metadata
    assert (meta4["published"].value, meta4["unchanged"].value) == (0, 3)


def test_ops_rows_reach_delta_per_batch_without_close(tmp_path):
    """Issue 14: failed rows and batch-log rows were buffered until 5,000 rows or a clean
    close, so a SIGKILL lost them. Now each batch's rows are committed while the run goes on."""
    import datetime as dt
    import time

    from assets.dynamics import BATCH_LOG_TABLE, DeltaOutcomeSink
    from customer360.dynamics import BatchLogEntry, FailedRow

    lakehouse = LakehouseResource(root_uri=str(tmp_path / "lake"))
    sink = DeltaOutcomeSink(lakehouse, "crc33_customer")
    now = dt.datetime.now(dt.UTC)
    sink.failed(
        [
            FailedRow("run", None, "upsert", "crc33_customer", "crc33_cid=1", 1, {"cid": 1},
                      None, "MissingKey", "no key", None, 0, now)
        ]
    )  # fmt: skip
    sink.batch_logged(
        BatchLogEntry("run", "b1", "crc33_customer", "upsert", "upsert", "UpsertMultiple",
                      "client", 10, 10, 0, 0, 0.1, 1, 0, {}, now)
    )  # fmt: skip

    def rows(table: str) -> int:
        return lakehouse.read_arrow("ops", table).num_rows if lakehouse.exists("ops", table) else 0

    deadline = time.monotonic() + 30
    while rows(FAILED_TABLE) < 1 or rows(BATCH_LOG_TABLE) < 1:
        assert time.monotonic() < deadline, "ops rows not written before close()"
        time.sleep(0.05)
    sink.close()
    assert (rows(FAILED_TABLE), rows(BATCH_LOG_TABLE)) == (1, 1)
