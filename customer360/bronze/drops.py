"""One drop day's files: each read and parsed on its own (a file that cannot be read or parsed is
rejected whole, with its reason, and named in the notes; the others go on),
and, for areas where a re-sent file must count once, skipped when its bytes were ingested before.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from customer360.lakehouse import DeltaLake
from customer360.synapse_link import RejectedRow

CONTENT_HASH_COLUMN = "_content_hash"  # SHA-256 of the file's bytes
EXTRA_COLUMNS_COLUMN = "_extra_columns"  # JSON object of the columns the contract does not know

Parse = Callable[[bytes, str], tuple[pa.Table, list[RejectedRow]]]


class _File(Protocol):
    path: str

    @property
    def drop_day(self) -> str: ...


class _Landing(Protocol):
    def read_bytes(self, area: str, path: str) -> bytes: ...


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ingested_hashes(lake: DeltaLake, table: str, day: str) -> dict[str, str]:
    """Content hash → the drop day it is in bronze under, for every other day of `table`."""
    if not lake.exists("bronze", table):
        return {}
    columns = [CONTENT_HASH_COLUMN, "_drop_day"]
    names = {field.name for field in lake.table("bronze", table).schema().fields}
    if not set(columns) <= names:
        return {}  # written before files were hashed
    rows = lake.read_arrow("bronze", table, columns=columns)
    rows = rows.filter(pc.and_(pc.is_valid(rows[CONTENT_HASH_COLUMN]),
                               pc.not_equal(rows["_drop_day"], day)))  # fmt: skip
    firsts = rows.group_by(CONTENT_HASH_COLUMN).aggregate([("_drop_day", "min")])
    return dict(zip(firsts[CONTENT_HASH_COLUMN].to_pylist(),
                    firsts["_drop_day_min"].to_pylist(), strict=True))  # fmt: skip


def day_files(
    landing: _Landing,
    area: str,
    files: Sequence[_File],
    day: str,
    parse: Parse,
    seen: dict[str, str] | None,
) -> tuple[list[pa.Table], list[RejectedRow], list[str]]:
    """The parsed tables, the rejects and the notes (skipped or reported files) of one day.

    `seen` (content hash → where it was ingested) turns on once-per-content: a file whose hash
    is in it is skipped, and every parsed file is added to it."""
    parts: list[pa.Table] = []
    rejected: list[RejectedRow] = []
    notes: list[str] = []
    for f in sorted((f for f in files if f.drop_day == day), key=lambda f: f.path):
        try:
            data = landing.read_bytes(area, f.path)
        except OSError as exc:  # listed, then gone or unreadable: it alone is set aside
            rejected.append(RejectedRow(f.path, 0, "", f"file rejected: cannot be read: {exc}"))
            notes.append(f"{f.path}: set aside, cannot be read: {exc}")
            continue
        digest = None
        if seen is not None:
            digest = content_hash(data)
            if digest in seen:
                notes.append(f"{f.path}: same content as the file ingested on {seen[digest]}; "
                             "skipped (a re-sent file counts once)")  # fmt: skip
                continue
            seen[digest] = f"{day} ({f.path})"
        try:
            table, bad = parse(data, f.path)
        except (ValueError, csv.Error) as exc:  # the file as a whole cannot be read: it alone
            where = (getattr(exc, "line", 0), getattr(exc, "raw", ""))  # FileRejected says
            table, bad = None, [RejectedRow(f.path, *where, f"file rejected: {exc}")]
            notes.append(f"{f.path}: set aside whole (see bronze/_rejected): {exc}")
        rejected += bad
        if table is None:
            continue
        if digest is not None:
            table = table.append_column(CONTENT_HASH_COLUMN, pa.array([digest] * table.num_rows))
        notes += _extra_columns_note(table, f.path)
        parts.append(table)
    return parts, rejected, notes


def _extra_columns_note(table: pa.Table, path: str) -> list[str]:
    if EXTRA_COLUMNS_COLUMN not in table.column_names or table.num_rows == 0:
        return []
    first = table[EXTRA_COLUMNS_COLUMN][0].as_py()
    if not first:
        return []
    names = ", ".join(json.loads(first))
    return [f"{path}: extra columns {names} not in the contract; kept in {EXTRA_COLUMNS_COLUMN}"]
