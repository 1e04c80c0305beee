"""The pieces of the incremental medallion path on small hand-made data with known answers: the
Spark-free liveness used by reconciliation, the change window on `_merged_at`, the one-commit
upsert + delete, the state record, as_of, and the profile built for part of the customers.
(That a whole incremental run equals a full rebuild is tested in test_medallion_graph.py.)"""

import datetime as dt

import pyarrow as pa
import pytest
from arrow_rows import sorted_rows

from customer360.generate.seed_table import CUSTOMER_TABLE
from customer360.generate.synthetic import SyntheticLanding, change_sizes, synthetic_customers
from customer360.lakehouse import DeltaLake, SchemaMismatchError
from customer360.lakehouse.incremental import (
    ConsumerState,
    apply_changes,
    concurrently,
    full_refresh_reason,
    next_marker,
    read_state,
    rewrite_with_changes,
    without_keys,
    write_state,
)
from customer360.lakehouse.store import WriteConflict
from customer360.silver.current import validate_customers
from customer360.synapse_link import LocalFileSystem, list_export_folders, read_entity
from customer360.transforms.dataverse import MERGED_AT, changed_keys, live_ids, live_ids_arrow
from customer360.transforms.profile import as_of_day

UTC = dt.UTC
T = dt.datetime


def test_live_ids_without_spark_match_the_spark_version(spark):
    rows = [
        ("a", T(2024, 1, 1, tzinfo=UTC), 1, None),
        ("a", T(2024, 1, 2, tzinfo=UTC), 2, None),
        ("b", T(2024, 1, 1, tzinfo=UTC), 1, None),
        ("b", T(2024, 1, 3, tzinfo=UTC), 5, True),  # deleted
        ("c", T(2024, 1, 1, tzinfo=UTC), 1, None),
        ("c", T(2024, 1, 2, tzinfo=UTC), 2, True),
        ("c", T(2024, 1, 4, tzinfo=UTC), 3, None),  # re-created
        ("d", T(2024, 1, 5, tzinfo=UTC), 7, None),
        ("d", T(2024, 1, 5, tzinfo=UTC), 7, True),  # same instant: the delete wins
        ("e", T(2024, 1, 5, tzinfo=UTC), 8, True),
        ("e", T(2024, 1, 5, tzinfo=UTC), None, None),  # null version sorts first: still deleted
        ("f", T(2024, 1, 6, tzinfo=UTC), 1, False),
        ("a", T(2024, 1, 2, tzinfo=UTC), 2, None),  # exported twice
    ]
    schema = "Id string, SinkModifiedOn timestamp, versionnumber long, IsDelete boolean"
    raw = spark.createDataFrame(rows, schema)
    arrow = pa.table(
        {
            "Id": [r[0] for r in rows],
            "SinkModifiedOn": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            "versionnumber": pa.array([r[2] for r in rows], pa.int64()),
            "IsDelete": pa.array([r[3] for r in rows], pa.bool_()),
        }
    )
    assert live_ids_arrow(arrow).to_pylist() == ["a", "c", "f"]
    assert sorted(r.Id for r in live_ids(raw).collect()) == ["a", "c", "f"]
    assert live_ids_arrow(arrow.slice(0, 0)).to_pylist() == []


def test_changed_keys_is_the_window_after_the_watermark():
    stamps = [T(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 3)] + [None]
    markers = pa.table(
        {"Id": ["a", "b", "c", "c", "old"], MERGED_AT: pa.array(stamps, pa.timestamp("us", "UTC"))}
    )
    assert sorted(changed_keys(markers, T(2024, 1, 1, tzinfo=UTC)).to_pylist()) == ["b", "c"]
    window = changed_keys(markers, T(2024, 1, 1, tzinfo=UTC), T(2024, 1, 2, tzinfo=UTC))
    assert window.to_pylist() == ["b"]
    assert sorted(changed_keys(markers, None).to_pylist()) == ["a", "b", "c", "old"]
    assert changed_keys(markers, T(2024, 1, 3, tzinfo=UTC)).to_pylist() == []


def test_next_marker_never_goes_back():
    future = T(2999, 1, 1, tzinfo=UTC)
    assert next_marker(future) == future + dt.timedelta(microseconds=1)
    assert next_marker(None) > T(2024, 1, 1, tzinfo=UTC)


def _customers(ids, cities, tier=None):
    data = {
        "Id": pa.array(ids, pa.string()),
        "city": pa.array(cities, pa.string()),
        "n": pa.array(range(len(ids)), pa.int64()),
    }
    if tier is not None:
        data["tier"] = tier
    return pa.table(data)


def test_apply_changes_upserts_and_deletes_in_one_commit(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_customers(["a", "b", "c"], ["x", "y", "z"]), "silver", "t")
    upserts = _customers(["b", "d"], ["y2", "w"])
    remove = pa.table({"Id": ["a", "b", "missing"]})  # "b" is also upserted: it stays
    result, deleted = apply_changes(lake, "silver", "t", upserts, remove, ["Id"])
    assert (result.version, result.table_rows, result.rows_written, deleted) == (1, 3, 2, 1)
    rows = sorted(lake.read_arrow("silver", "t").to_pylist(), key=lambda r: r["Id"])
    assert rows == [
        {"Id": "b", "city": "y2", "n": 0},
        {"Id": "c", "city": "z", "n": 2},
        {"Id": "d", "city": "w", "n": 1},
    ]
    # A new column is added (one schema commit, then the data commit); older rows read null.
    evolved = _customers(["c"], ["z2"], tier=["gold"])
    result, deleted = apply_changes(lake, "silver", "t", evolved, pa.table({"Id": ["d"]}), ["Id"])
    assert (result.version, result.table_rows, deleted) == (3, 2, 1)
    rows = sorted(lake.read_arrow("silver", "t").to_pylist(), key=lambda r: r["Id"])
    assert rows == [
        {"Id": "b", "city": "y2", "n": 0, "tier": None},
        {"Id": "c", "city": "z2", "n": 0, "tier": "gold"},
    ]
    # Nothing to change (no rows, or only keys that are not there): no commit.
    empty = _customers([], [], tier=pa.array([], pa.string()))
    result, deleted = apply_changes(lake, "silver", "t", empty, pa.table({"Id": ["zz"]}), ["Id"])
    assert (result.version, deleted) == (3, 0)
    result, _ = apply_changes(lake, "silver", "t", empty, empty.select(["Id"]), ["Id"])
    assert result.version == 3
    # A type change is refused before anything is written.
    wrong = pa.table({"Id": ["b"], "n": ["not a number"]})
    with pytest.raises(SchemaMismatchError, match="column 'n' is int64"):
        apply_changes(lake, "silver", "t", wrong, pa.table({"Id": ["c"]}), ["Id"])
    assert lake.table("silver", "t").version() == 3
    with pytest.raises(ValueError, match="1 key\\(s\\) repeat"):
        apply_changes(lake, "silver", "t", _customers(["b", "b"], ["1", "2"]), empty, ["Id"])


def test_rewrite_with_changes_writes_what_apply_changes_merges(tmp_path):
    """The in-memory rewrite (gold identity's tables) leaves the rows the merge leaves, commits
    nothing when there is nothing to change, and refuses a stale read version."""
    lake = DeltaLake(str(tmp_path))
    before = _customers(["a", "b", "c", "e"], ["x", "y", "z", "v"])
    upserts = _customers(["b", "d"], ["y2", "w"])
    remove = pa.table({"Id": ["a", "b", "missing"]})  # "b" is also upserted: it stays
    for name in ("merged", "rewritten"):
        lake.write_arrow(before, "gold", name)
    apply_changes(lake, "gold", "merged", upserts, remove, ["Id"])
    result, after = rewrite_with_changes(
        lake, "gold", "rewritten", before, upserts, remove, ["Id"], read_version=0
    )
    assert (result.version, result.table_rows, result.rows_written) == (1, 4, 2)
    merged = lake.read_arrow("gold", "merged")
    assert sorted_rows(lake.read_arrow("gold", "rewritten")) == sorted_rows(merged)
    assert sorted_rows(after) == sorted_rows(merged)
    nothing, same = rewrite_with_changes(
        lake, "gold", "rewritten", after, upserts.slice(0, 0), remove.slice(0, 0), ["Id"], 1
    )
    assert nothing is None and same is after and lake.table("gold", "rewritten").version() == 1
    with pytest.raises(WriteConflict):  # computed from version 0, but version 1 is there
        rewrite_with_changes(lake, "gold", "rewritten", before, upserts, remove, ["Id"], 0)
    assert lake.table("gold", "rewritten").version() == 1


def test_concurrent_rewrites_commit_each_table_and_raise_after_all_have_ended(tmp_path):
    """`concurrently` (the identity and profile rewrites): each table gets its own pinned
    commit, the results come back by name, and a conflict in one is raised only after the
    others have committed (nothing is left running)."""
    lake = DeltaLake(str(tmp_path))
    before = _customers(["a", "b"], ["x", "y"])
    upserts, remove = _customers(["c"], ["z"]), pa.table({"Id": ["a"]})
    for name in ("one", "two", "stale"):
        lake.write_arrow(before, "gold", name)
    lake.write_arrow(before, "gold", "stale", mode="append")  # version 1: a rewrite from 0 is stale

    def rewrite(name: str):
        return lambda: rewrite_with_changes(lake, "gold", name, before, upserts, remove, ["Id"], 0)

    done = concurrently({name: rewrite(name) for name in ("one", "two")})
    assert list(done) == ["one", "two"]
    for name, (result, after) in done.items():
        assert result.version == 1 and sorted(after["Id"].to_pylist()) == ["b", "c"]
        assert sorted(lake.read_arrow("gold", name)["Id"].to_pylist()) == ["b", "c"]
    lake.write_arrow(before, "gold", "one")  # back to a and b, version 2
    with pytest.raises(WriteConflict):
        concurrently(
            {
                "stale": rewrite("stale"),
                "late": lambda: rewrite_with_changes(
                    lake, "gold", "one", before, upserts, remove, ["Id"], 2
                ),
            }
        )
    assert lake.table("gold", "one").version() == 3  # the other call still committed
    assert lake.table("gold", "stale").version() == 1


def _silver_customers(ids: list[str], cids: list[int], emails: list[str]) -> pa.Table:
    count = len(ids)
    return pa.table(
        {
            "Id": ids,
            "cid": pa.array(cids, pa.int64()),
            "email": emails,
            "gender": ["female"] * count,
            "country_code": ["GB"] * count,
            "postcode": ["01234"] * count,
            "telephone_e164": ["+441234567890"] * count,
        }
    )


def test_incremental_validation_checks_the_written_rows_and_keys_over_the_table(tmp_path):
    lake = DeltaLake(str(tmp_path))
    table = _silver_customers(["a", "b", "c"], [1, 2, 3], ["a@x.io", "b@x.io", "c@x.io"])
    lake.write_arrow(table, "silver", "customer")
    assert validate_customers(lake, None) == (True, "", 3)  # the whole table
    fine = _silver_customers(["c"], [3], ["c2@x.io"])
    assert validate_customers(lake, fine) == (True, "", 1)  # only what was written
    bad_email = _silver_customers(["c"], [3], ["not an e-mail"])
    passed, failures, validated = validate_customers(lake, bad_email)
    assert (passed, validated) == (False, 1) and "email" in failures
    # A written row repeating the cid of a row it did not write: found over the whole table.
    lake.write_arrow(_silver_customers(["d"], [2], ["d@x.io"]), "silver", "customer", mode="append")
    passed, failures, _ = validate_customers(lake, _silver_customers(["d"], [2], ["d@x.io"]))
    assert not passed and "cid not unique: [{'value': 2, 'n': 2}]" in failures
    assert "Id not unique" not in failures


def test_without_keys_on_single_and_composite_keys():
    old = pa.table({"id": ["a", "a", "b"], "type": ["v", "s", "v"], "seg": ["hi", "x", "lo"]})
    new = pa.table({"id": ["a", "b"], "type": ["v", "v"], "seg": ["hi", "hi"]})
    stale = without_keys(old, new, ["id", "type", "seg"])
    assert stale.to_pylist() == [
        {"id": "a", "type": "s", "seg": "x"},
        {"id": "b", "type": "v", "seg": "lo"},
    ]
    assert without_keys(old, new, ["id"]).num_rows == 0
    assert without_keys(old, new.slice(0, 0), ["id"]).num_rows == 3
    # Typed and null key parts match as before (a null part as ""), the order is kept.
    typed = pa.table({"n": [3, 1, 2, 1, None], "t": ["x", None, "y", "z", "w"]})
    gone = pa.table({"n": pa.array([1, None], pa.int64()), "t": ["", "w"]})
    assert without_keys(typed, gone, ["n", "t"]).to_pylist() == [
        {"n": 3, "t": "x"}, {"n": 2, "t": "y"}, {"n": 1, "t": "z"},
    ]  # fmt: skip


def test_state_round_trip_and_full_refresh_reasons(tmp_path):
    lake = DeltaLake(str(tmp_path))
    assert read_state(lake, "silver/customer") is None
    lake.write_arrow(_customers(["a"], ["x"]), "silver", "customer")
    mark = T(2024, 6, 3, 9, tzinfo=UTC)
    state = ConsumerState("silver/customer", mark, {"history": "id-1"}, {"silver/customer": 0})
    write_state(lake, state)
    write_state(lake, ConsumerState("gold/customer_profile", None, {}, {}, {"n": 1}))
    assert read_state(lake, "silver/customer") == state
    assert read_state(lake, "gold/customer_profile").facts == {"n": 1}
    outputs = [("silver", "customer")]
    inputs = {"history": "id-1"}
    assert full_refresh_reason(lake, state, inputs, outputs, False) is None
    assert full_refresh_reason(lake, state, inputs, outputs, True) == "full_refresh requested"
    assert full_refresh_reason(lake, None, inputs, outputs, False) == "no earlier build recorded"
    assert full_refresh_reason(lake, state, {"history": "id-2"}, outputs, False) == (
        "history changed"
    )
    missing = [("silver", "nothing")]
    assert full_refresh_reason(lake, state, inputs, missing, False) == (
        "silver/nothing does not exist"
    )
    lake.write_arrow(_customers(["b"], ["y"]), "silver", "customer", mode="append")
    assert full_refresh_reason(lake, state, inputs, outputs, False) == (
        "silver/customer was changed since the last build"
    )


def test_as_of_is_the_latest_export_day():
    assert as_of_day(T(2024, 6, 3, 23, 59, tzinfo=UTC)) == T(2024, 6, 3, tzinfo=UTC)
    assert as_of_day(T(2024, 6, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == T(
        2024, 6, 2, tzinfo=UTC
    )
    assert as_of_day(None) is None


def test_synthetic_export_has_the_documented_shape(tmp_path):
    customers = synthetic_customers(500, seed=3)
    assert customers.num_rows == 500 and customers["crc33_cid"].to_pylist()[:3] == [1, 2, 3]
    assert len(set(customers["Id"].to_pylist())) == 500
    landing = SyntheticLanding(tmp_path, customers, seed=3)
    landing.write_initial()
    updates, deletes = change_sizes(500, 2, 0.2, 0.02)
    assert (updates, deletes) == (50, 5)
    for _ in range(2):
        landing.write_changes(updates, deletes)
    path = landing.write_finance(months=12)
    assert (landing.versions, landing.live_customers) == (500 + 2 * 55, 490)
    fs = LocalFileSystem(tmp_path / "dataverse")
    folders = list_export_folders(fs)
    assert (
        [f.name for f in folders]
        == landing.folders
        == [
            "2024-06-03T08.00.00Z",
            "2024-06-03T09.00.00Z",
            "2024-06-03T10.00.00Z",
        ]
    )
    last = read_entity(fs, folders[-1], CUSTOMER_TABLE)
    assert last.rejected == [] and last.table.num_rows == 55
    assert sum(1 for d in last.table["IsDelete"].to_pylist() if d) == 5
    lines = path.read_text().splitlines()
    assert lines[0] == "cid,month,income,spend"
    assert len(lines) - 1 == landing.finance_rows
    assert 0.9 * 500 * 12 < landing.finance_rows < 500 * 12


def test_a_resumed_export_writes_the_folder_the_uninterrupted_one_writes(tmp_path):
    customers = synthetic_customers(300, seed=3)
    whole = SyntheticLanding(tmp_path / "whole", customers, seed=3)
    whole.write_initial()
    whole.write_changes(20, 2)
    whole.write_changes(20, 2)
    resumed = SyntheticLanding(tmp_path / "resumed", customers, seed=3)
    resumed.resume(whole.folders[:2], touched=22)
    assert resumed.write_changes(20, 2) == whole.folders[2]
    last = []
    for root in (tmp_path / "whole", tmp_path / "resumed"):
        fs = LocalFileSystem(root / "dataverse")
        last.append(read_entity(fs, list_export_folders(fs)[-1], CUSTOMER_TABLE).table)
    ids = [table.sort_by("Id") for table in last]
    assert ids[0].num_rows == 22
    assert ids[0]["Id"].to_pylist() == ids[1]["Id"].to_pylist()
    with pytest.raises(ValueError, match="301 touched customers, only 300 exist"):
        resumed.resume(whole.folders, touched=301)
