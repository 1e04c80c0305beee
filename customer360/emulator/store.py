"""Record storage: in-memory tables and key indexes, persisted write-through to SQLite.

Every request runs on the server's one event loop, so the store needs no locks: a transaction is
a block of synchronous code with an undo log. On error the undo log restores memory and nothing
is persisted, which gives `$batch` change sets and bulk messages their all-or-nothing behaviour.
On commit the touched rows are handed to a persister thread that owns the SQLite connection
(WAL) and writes them in one transaction per batch of commits, off the request path; `close()`
drains it, so a stopped server keeps everything. A killed process can lose the last few
milliseconds of commits.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson

from customer360.emulator.schema import DECIMAL_TYPES, STRING_TYPES, Key, Schema, Table

FIRST_VERSION = 1_000_000
LOG = logging.getLogger("customer360.emulator.store")


@dataclass
class Tombstone:
    id: str
    version: int
    deleted_on: str


@dataclass
class TableData:
    table: Table
    rows: dict[str, dict] = field(default_factory=dict)
    key_index: dict[str, dict[tuple, str]] = field(default_factory=dict)
    tombstones: dict[str, Tombstone] = field(default_factory=dict)
    key_getters: dict[str, Callable[[dict], tuple | None]] = field(default_factory=dict)
    string_key_parts: dict[str, tuple[bool, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.table.keys:
            self.key_index[key.name] = {}
            flags = tuple(self.table.columns[a].type in STRING_TYPES for a in key.attributes)
            self.string_key_parts[key.name] = flags
            self.key_getters[key.name] = _key_getter(key.attributes, flags)

    def key_tuple(self, key: Key, values: tuple) -> tuple | None:
        """Index form of key values: None if any part is null; strings compare case-blind."""
        flags = self.string_key_parts[key.name]
        if len(values) == 1:  # one-column keys: the common case, no generator per lookup
            value = values[0]
            if value is None:
                return None
            return (value.casefold(),) if flags[0] else (value,)
        if any(v is None for v in values):
            return None
        return tuple(v.casefold() if flag else v for v, flag in zip(values, flags, strict=True))

    def row_key(self, key: Key, row: dict) -> tuple | None:
        return self.key_getters[key.name](row)


def _key_getter(attributes: tuple[str, ...], flags: tuple[bool, ...]):
    if len(attributes) == 1:
        name = attributes[0]
        if flags[0]:
            return lambda row: None if (v := row.get(name)) is None else (v.casefold(),)
        return lambda row: None if (v := row.get(name)) is None else (v,)

    def many(row: dict) -> tuple | None:
        values = []
        for name, flag in zip(attributes, flags, strict=True):
            value = row.get(name)
            if value is None:
                return None
            values.append(value.casefold() if flag else value)
        return tuple(values)

    return many


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__}")


class _Persister(threading.Thread):
    """Owns the SQLite connection after start-up; applies queued commits in order.

    Commits are appended to a list under a lock and picked up every `interval` seconds: waking
    the thread per commit would make the request thread wait for the GIL at every commit.
    """

    def __init__(self, conn: sqlite3.Connection, interval: float = 0.05) -> None:
        super().__init__(name="c360-emulator-sqlite", daemon=True)
        self.conn = conn
        self.interval = interval
        self.lock = threading.Lock()
        self.pending: list = []
        self.wake = threading.Event()
        self.error: BaseException | None = None
        self.cpu_seconds = 0.0  # this thread's CPU so far (benchmarks split the server's CPU)

    def submit(self, job) -> None:
        with self.lock:
            self.pending.append(job)
        if job is None or isinstance(job, threading.Event):
            self.wake.set()

    def run(self) -> None:
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            with self.lock:
                batch, self.pending = self.pending, []
            if not batch:
                continue
            stop = False
            conn = self.conn
            try:
                conn.execute("BEGIN")
                for item in batch:
                    if item is None:
                        stop = True
                    elif not isinstance(item, threading.Event):
                        item(conn)
                conn.execute("COMMIT")
            except BaseException as exc:  # keep the first failure for flush() to report
                LOG.exception("writing %d commits to SQLite failed", len(batch))
                self.error = self.error or exc
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self.cpu_seconds = time.thread_time()
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if stop:
                return


def _write_commit(puts, deletes, tomb_puts, tomb_deletes, version):
    def job(conn: sqlite3.Connection) -> None:
        if puts:
            conn.executemany(
                "INSERT OR REPLACE INTO rows VALUES (?,?,?,?)",
                [(table, row_id, row["versionnumber"], _dumps(row)) for table, row_id, row in puts],
            )
        if deletes:
            conn.executemany("DELETE FROM rows WHERE tbl=? AND id=?", deletes)
        if tomb_puts:
            conn.executemany("INSERT OR REPLACE INTO tombstones VALUES (?,?,?,?)", tomb_puts)
        if tomb_deletes:
            conn.executemany("DELETE FROM tombstones WHERE tbl=? AND id=?", tomb_deletes)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(version),))

    return job


_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"))
_SCALARS = frozenset({str, int, float, bool, type(None), Decimal})


def _dumps(row: dict) -> str:
    """A record as the JSON text it is stored as. orjson (~5 times quicker: the SQLite writer
    thread holds the GIL while it encodes, so this is CPU the request thread waits for) for a
    record of plain values whose floats are finite; otherwise `json` (orjson writes null for
    NaN where `json` writes NaN). Either text reads back (`json.loads`) to the same record."""
    values = row.values()
    if set(map(type, values)) <= _SCALARS and math.isfinite(
        sum([v for v in values if v.__class__ is float])
    ):
        try:
            return orjson.dumps(row, default=_json_default).decode()
        except TypeError:  # an integer past 64 bits, a key that is not text
            pass
    return _ENCODER.encode(row)


# Records are a few hundred bytes of JSON: kept in an ordinary (rowid) table, with the key in
# its own small index. A WITHOUT ROWID table stores each record inside the key's B-tree, and
# inserting records with random GUID ids then costs ~3 times the CPU (18 µs against 6 µs a
# record, measured), which the emulator's one process pays on every write.
_ROWS_TABLE = """
    CREATE TABLE {name} (
        tbl TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (tbl, id))"""


def _create_rows_table(conn: sqlite3.Connection) -> None:
    """Create `rows`, or move the records of an older WITHOUT ROWID `rows` into the new layout."""
    found = conn.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='rows'")
    existing = found.fetchone()
    if existing is None:
        conn.execute(_ROWS_TABLE.format(name="rows"))
        return
    if "WITHOUT ROWID" not in existing[0].upper():
        return
    conn.execute("BEGIN")
    conn.execute(_ROWS_TABLE.format(name="rows_new"))
    conn.execute("INSERT INTO rows_new SELECT tbl, id, version, data FROM rows")
    conn.execute("DROP TABLE rows")
    conn.execute("ALTER TABLE rows_new RENAME TO rows")
    conn.execute("COMMIT")


class Store:
    """All tables of one emulator, backed by `<dir>/dataverse.db`."""

    def __init__(self, db_path: Path, schema: Schema) -> None:
        self.schema = schema
        self.db_path = db_path
        self.tables = {name: TableData(t) for name, t in schema.tables.items()}
        self.version = FIRST_VERSION
        conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _create_rows_table(conn)
        conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS tombstones (
                tbl TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
                deleted_on TEXT NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS export_cursor (
                tbl TEXT PRIMARY KEY, version INTEGER NOT NULL);
            """
        )
        self._depth = 0
        self._undo: list[tuple] = []
        self._pending_rows: dict[tuple[str, str], dict | None] = {}
        self._pending_tombs: dict[tuple[str, str], Tombstone | None] = {}
        self._load(conn)
        self._cursors = {
            tbl: int(version)
            for tbl, version in conn.execute("SELECT tbl, version FROM export_cursor")
        }
        self._meta = dict(conn.execute("SELECT k, v FROM meta"))
        self._persister = _Persister(conn)
        self._persister.start()
        self._closed = False

    # ---- loading -------------------------------------------------------------------------
    def _load(self, conn: sqlite3.Connection) -> None:
        decimal_cols = {
            name: [c.name for c in t.columns.values() if c.type in DECIMAL_TYPES]
            for name, t in self.schema.tables.items()
        }
        max_version = FIRST_VERSION
        for tbl, row_id, version, data in conn.execute("SELECT tbl, id, version, data FROM rows"):
            if tbl not in self.tables:
                continue  # a table removed from the schema keeps its rows on disk, unserved
            row = json.loads(data)
            for col in decimal_cols[tbl]:
                if row.get(col) is not None:
                    row[col] = Decimal(row[col])
            self._index_insert(self.tables[tbl], row_id, row)
            max_version = max(max_version, version)
        for tbl, row_id, version, deleted_on in conn.execute(
            "SELECT tbl, id, version, deleted_on FROM tombstones"
        ):
            if tbl in self.tables:
                self.tables[tbl].tombstones[row_id] = Tombstone(row_id, version, deleted_on)
                max_version = max(max_version, version)
        stored = conn.execute("SELECT v FROM meta WHERE k='version'").fetchone()
        if stored:
            max_version = max(max_version, int(stored[0]))
        self.version = max_version

    def register_table(self, table: Table) -> None:
        """Serve a created or changed table: rows kept, key indexes rebuilt for its keys."""
        old = self.tables.get(table.logical_name)
        data = TableData(table)
        if old is not None:
            data.tombstones = old.tombstones
            for row_id, row in old.rows.items():
                self._index_insert(data, row_id, row)
        self.tables[table.logical_name] = data

    def drop_table(self, name: str) -> None:
        """Forget a deleted table's rows (on disk too), as deleting a Dataverse table does."""
        self.tables.pop(name, None)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM rows WHERE tbl=?", (name,))
            conn.execute("DELETE FROM tombstones WHERE tbl=?", (name,))

        self._persister.submit(job)

    # ---- reads ---------------------------------------------------------------------------
    def data(self, table: str) -> TableData:
        return self.tables[table]

    def get(self, table: str, row_id: str) -> dict | None:
        return self.tables[table].rows.get(row_id)

    def find_by_key(self, table: str, key: Key, values: tuple) -> str | None:
        data = self.tables[table]
        index_key = data.key_tuple(key, values)
        if index_key is None:
            return None
        return data.key_index[key.name].get(index_key)

    def key_owner(self, table: str, key: Key, row: dict) -> str | None:
        """Id of the row that already holds this row's values for `key`, if any."""
        data = self.tables[table]
        index_key = data.row_key(key, row)
        if index_key is None:
            return None
        return data.key_index[key.name].get(index_key)

    def next_version(self) -> int:
        self.version += 1
        return self.version

    # ---- writes --------------------------------------------------------------------------
    def _index_insert(self, data: TableData, row_id: str, row: dict) -> None:
        data.rows[row_id] = row
        for key in data.table.keys:
            index_key = data.row_key(key, row)
            if index_key is not None:
                data.key_index[key.name][index_key] = row_id

    def _index_remove(self, data: TableData, row_id: str) -> None:
        row = data.rows.pop(row_id, None)
        if row is None:
            return
        for key in data.table.keys:
            index_key = data.row_key(key, row)
            if index_key is not None and data.key_index[key.name].get(index_key) == row_id:
                del data.key_index[key.name][index_key]

    def put(self, table: str, row_id: str, row: dict) -> None:
        """Insert or replace a row (the caller has checked key uniqueness)."""
        data = self.tables[table]
        old = data.rows.get(row_id)
        self._undo.append(("row", table, row_id, old))
        data.rows[row_id] = row
        for key in data.table.keys:
            getter = data.key_getters[key.name]
            index = data.key_index[key.name]
            new_key = getter(row)
            if old is not None:
                old_key = getter(old)
                if old_key == new_key:
                    continue
                if old_key is not None and index.get(old_key) == row_id:
                    del index[old_key]
            if new_key is not None:
                index[new_key] = row_id
        self._pending_rows[(table, row_id)] = row
        if data.tombstones:
            tomb = data.tombstones.get(row_id)
            if tomb is not None:
                # A re-created id is live again: change tracking reports a row, not a delete.
                self._undo.append(("tomb", table, row_id, tomb))
                del data.tombstones[row_id]
                self._pending_tombs[(table, row_id)] = None

    def delete(self, table: str, row_id: str, deleted_on: str) -> Tombstone:
        data = self.tables[table]
        old = data.rows.get(row_id)
        self._undo.append(("row", table, row_id, old))
        self._index_remove(data, row_id)
        self._pending_rows[(table, row_id)] = None
        tomb = Tombstone(row_id, self.next_version(), deleted_on)
        self._undo.append(("tomb", table, row_id, data.tombstones.get(row_id)))
        data.tombstones[row_id] = tomb
        self._pending_tombs[(table, row_id)] = tomb
        return tomb

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block; nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        undo_mark = len(self._undo)
        try:
            yield
        except BaseException:
            self._rollback(undo_mark)
            raise
        else:
            self._commit()
        finally:
            self._depth = 0
            del self._undo[undo_mark:]

    def _rollback(self, mark: int) -> None:
        for kind, table, row_id, old in reversed(self._undo[mark:]):
            data = self.tables[table]
            if kind == "row":
                self._index_remove(data, row_id)
                if old is not None:
                    self._index_insert(data, row_id, old)
            elif old is None:
                data.tombstones.pop(row_id, None)
            else:
                data.tombstones[row_id] = old
        self._pending_rows.clear()
        self._pending_tombs.clear()

    def _commit(self) -> None:
        if not self._pending_rows and not self._pending_tombs:
            return
        puts = []
        deletes = []
        for (table, row_id), row in self._pending_rows.items():
            if row is None:
                deletes.append((table, row_id))
            else:
                puts.append((table, row_id, row))
        tomb_puts = []
        tomb_deletes = []
        for (table, row_id), tomb in self._pending_tombs.items():
            if tomb is None:
                tomb_deletes.append((table, row_id))
            else:
                tomb_puts.append((table, row_id, tomb.version, tomb.deleted_on))
        self._pending_rows = {}
        self._pending_tombs = {}
        # Rows are never mutated after put(), so the persister may serialise them later.
        self._persister.submit(_write_commit(puts, deletes, tomb_puts, tomb_deletes, self.version))

    # ---- admin ----------------------------------------------------------------------------
    def clear(self, tables: list[str]) -> None:
        """Forget every row, tombstone and export cursor of the given tables (admin reset)."""
        for name in tables:
            self.tables[name] = TableData(self.schema.tables[name])
            self._cursors.pop(name, None)

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM rows WHERE tbl=?", [(t,) for t in tables])
            conn.executemany("DELETE FROM tombstones WHERE tbl=?", [(t,) for t in tables])
            conn.executemany("DELETE FROM export_cursor WHERE tbl=?", [(t,) for t in tables])

        self._persister.submit(job)

    def export_cursor(self, table: str) -> int:
        return self._cursors.get(table, 0)

    def set_export_cursor(self, table: str, version: int) -> None:
        self._cursors[table] = version
        self._persister.submit(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO export_cursor VALUES (?, ?)", (table, version)
            )
        )

    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value
        self._persister.submit(
            lambda conn: conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        )

    @property
    def writer_cpu_seconds(self) -> float:
        """CPU time the SQLite writer thread has used (it runs beside the request thread)."""
        return self._persister.cpu_seconds

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every commit so far is in SQLite; re-raise a persistence failure."""
        done = threading.Event()
        self._persister.submit(done)
        if not done.wait(timeout):
            raise TimeoutError("the SQLite persister did not catch up in time")
        if self._persister.error is not None:
            raise RuntimeError(f"persisting to {self.db_path} failed") from self._persister.error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._persister.submit(None)
        self._persister.join(timeout=120)
        self._persister.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._persister.conn.close()
