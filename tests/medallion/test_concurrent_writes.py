"""Pinned-version commits: a writer that computed its change from version N commits on N or
fails with WriteConflict and writes nothing; `on_conflict` re-reads and tries again. Real
delta-rs tables, two writers interleaved by hand (the process-level race is tests/daemon)."""

import datetime as dt

import pyarrow as pa
import pytest

from customer360.lakehouse import DeltaLake
from customer360.lakehouse.incremental import (
    ConsumerState,
    apply_changes,
    next_marker,
    on_conflict,
    read_state,
    read_version,
    write_state,
)
from customer360.lakehouse.store import NEW_TABLE, WriteConflict


def _rows(ids, value):
    return pa.table(
        {"Id": pa.array(ids, pa.string()), "v": pa.array([value] * len(ids), pa.int64())}
    )


def _values(lake):
    rows = lake.read_arrow("t", "x").to_pylist()
    return sorted((r["Id"], r["v"]) for r in rows)


def test_a_stale_merge_fails_and_writes_nothing(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_rows(["a", "b"], 0), "t", "x")
    seen = read_version(lake, "t", "x")
    lake.write_arrow(_rows(["a"], 1), "t", "x", mode="merge", merge_keys=["Id"], read_version=seen)
    with pytest.raises(WriteConflict, match="another writer committed first"):
        lake.write_arrow(_rows(["b"], 2), "t", "x", mode="merge", merge_keys=["Id"],
                         read_version=seen)  # fmt: skip
    assert _values(lake) == [("a", 1), ("b", 0)]


def test_a_pinned_write_reports_its_own_version(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_rows(["a"], 0), "t", "x")
    result = lake.write_arrow(_rows(["b"], 1), "t", "x", mode="merge", merge_keys=["Id"],
                              read_version=0)  # fmt: skip
    lake.write_arrow(_rows(["c"], 2), "t", "x", mode="append")
    assert result.version == 1 and lake.table("t", "x").version() == 2


def test_two_creators_one_wins_the_other_conflicts(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_rows(["a"], 0), "t", "x", read_version=NEW_TABLE)
    with pytest.raises(WriteConflict, match="created by another writer"):
        lake.write_arrow(_rows(["b"], 1), "t", "x", mode="merge", merge_keys=["Id"],
                         read_version=NEW_TABLE)  # fmt: skip
    assert _values(lake) == [("a", 0)]


def test_apply_changes_on_a_stale_version_conflicts(tmp_path):
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_rows(["a", "b"], 0), "t", "x")
    seen = read_version(lake, "t", "x")
    apply_changes(lake, "t", "x", _rows(["a"], 1), _rows([], 0), ["Id"], read_version=seen)
    with pytest.raises(WriteConflict):
        apply_changes(lake, "t", "x", _rows([], 0), _rows(["b"], 0), ["Id"], read_version=seen)
    assert _values(lake) == [("a", 1), ("b", 0)]


def test_on_conflict_recomputes_from_the_new_version(tmp_path):
    """Two read-modify-write increments interleaved: the loser re-reads and the table ends as
    two increments one after the other would leave it (not one lost update)."""
    lake = DeltaLake(str(tmp_path))
    lake.write_arrow(_rows(["n"], 0), "t", "x")
    attempts = []

    def increment(interfere: bool):
        version = read_version(lake, "t", "x")
        value = lake.read_arrow("t", "x", version=version)["v"][0].as_py()
        if interfere and not attempts:  # another writer commits between our read and write
            lake.write_arrow(_rows(["n"], value + 1), "t", "x", mode="merge", merge_keys=["Id"])
        attempts.append(version)
        return lake.write_arrow(_rows(["n"], value + 1), "t", "x", mode="merge",
                                merge_keys=["Id"], read_version=version)  # fmt: skip

    on_conflict(lambda: increment(True), "t/x", pause=0.01)
    assert len(attempts) == 2
    assert _values(lake) == [("n", 2)]


def test_on_conflict_gives_up_cleanly(tmp_path):
    calls = []

    def always_conflicts():
        calls.append(1)
        raise WriteConflict("t/x: another writer committed first")

    with pytest.raises(WriteConflict, match="gave up after 3 conflicts"):
        on_conflict(always_conflicts, "t/x", attempts=3, pause=0.01)
    assert len(calls) == 3


def test_pinned_state_writes_keep_every_consumer_row(tmp_path):
    lake = DeltaLake(str(tmp_path))
    write_state(lake, ConsumerState("a", next_marker(None)))
    write_state(lake, ConsumerState("b", next_marker(None)))
    assert read_state(lake, "a") is not None and read_state(lake, "b") is not None


def test_markers_grow_past_a_clock_set_back():
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert next_marker(later) > later
