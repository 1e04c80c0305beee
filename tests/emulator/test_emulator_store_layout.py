"""The emulator's SQLite file: records kept across restarts, and an older layout moved over."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

from customer360.emulator.schema import load_schema
from customer360.emulator.store import Store

SCHEMA = load_schema()
OLD_LAYOUT = """
    CREATE TABLE rows (
        tbl TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (tbl, id)) WITHOUT ROWID;
    CREATE TABLE tombstones (
        tbl TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        deleted_on TEXT NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID;
    CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
    CREATE TABLE export_cursor (tbl TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""
OLD_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def _rows_sql(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT sql FROM sqlite_master WHERE name='rows'").fetchone()[0]


def test_records_of_an_older_without_rowid_file_are_kept_and_moved(tmp_path):
    path = tmp_path / "dataverse.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_LAYOUT)
        record = {"crc33_customerid": OLD_ID, "crc33_cid": 7, "crc33_totalspend": "12.50",
                  "versionnumber": 1_000_005}  # fmt: skip
        conn.execute(
            "INSERT INTO rows VALUES (?,?,?,?)",
            ("crc33_customer", OLD_ID, 1_000_005, json.dumps(record)),
        )
    store = Store(path, SCHEMA)
    try:
        assert store.get("crc33_customer", OLD_ID)["crc33_totalspend"] == Decimal("12.50")
        assert store.next_version() == 1_000_006  # versions go on from the stored ones
        with store.transaction():
            new = {"crc33_customerid": "new", "crc33_cid": 8, "versionnumber": 1_000_006}
            store.put("crc33_customer", "new", new)
    finally:
        store.close()
    assert "WITHOUT ROWID" not in _rows_sql(path).upper()
    again = Store(path, SCHEMA)
    try:
        rows = again.data("crc33_customer").rows
        assert sorted(rows) == sorted([OLD_ID, "new"])
        key = SCHEMA.tables["crc33_customer"].keys[0]
        assert again.find_by_key("crc33_customer", key, (7,)) == OLD_ID
    finally:
        again.close()


def test_a_new_file_has_the_rowid_layout_and_replaces_records_in_place(tmp_path):
    path = tmp_path / "dataverse.db"
    store = Store(path, SCHEMA)
    try:
        for version in (1, 2):
            with store.transaction():
                row = {"crc33_customerid": "a", "crc33_cid": 1, "versionnumber": version}
                store.put("crc33_customer", "a", row)
        store.flush()
    finally:
        store.close()
    assert "WITHOUT ROWID" not in _rows_sql(path).upper()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, version FROM rows").fetchall() == [("a", 2)]


def test_the_writer_thread_reports_its_cpu_time(tmp_path):
    store = Store(tmp_path / "dataverse.db", SCHEMA)
    try:
        before = store.writer_cpu_seconds
        with store.transaction():
            for i in range(3000):
                row = {"crc33_customerid": f"id{i}", "crc33_cid": i, "versionnumber": i + 1}
                store.put("crc33_customer", f"id{i}", row)
        store.flush()
        assert store.writer_cpu_seconds > before
    finally:
        store.close()


def test_stored_text_reads_back_as_the_json_module_wrote_it() -> None:
    """Records are encoded with orjson when they hold plain values and finite floats, else
    with `json` (orjson would write null for NaN): either way the stored text reads back to
    what the `json` encoder's text reads back to."""
    from customer360.emulator.store import _ENCODER, _dumps

    plain = {"id": OLD_ID, "n": 12, "name": "Zoë", "spend": Decimal("12.50"), "p": 0.25,
             "none": None, "yes": True, "huge": 1e300}  # fmt: skip
    odd = [
        {**plain, "p": float("nan")},
        {**plain, "p": float("-inf")},
        {**plain, "n": 2**70},
        {**plain, "list": [1.5, float("inf")]},
    ]
    for record in [plain, *odd]:
        expected = json.loads(_ENCODER.encode(record), parse_constant=str)
        assert json.loads(_dumps(record), parse_constant=str) == expected, record
    assert "NaN" in _dumps(odd[0]) and "Infinity" in _dumps(odd[1])
