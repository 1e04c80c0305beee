"""Incrementally maintained Delta tables: the plan, the two branches and the one commit.

An incremental asset reads its `ConsumerState` (what it last built, one row per asset in
`ops/medallion_state`), asks `full_refresh_reason` whether applying only what changed is safe,
runs the full or the incremental branch, and records the new state with `write_state`. The
incremental branch changes a table with `apply_changes`: upserts and deletes in ONE Delta commit,
so a reader sees the table before or after the change, never half of it. Dagster-free: the assets
in assets/ are thin wrappers around these functions (docs/medallion.md "Incremental runs").

Concurrent runs: every write here commits on the version it read or raises `WriteConflict`;
`on_conflict` re-reads and recomputes, so racing writers end in the table one writer after the
other would have produced (docs/medallion.md "Concurrent runs").
"""

import datetime as dt
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import Schema as DeltaSchema
from deltalake import WriterProperties
from deltalake.transaction import CommitProperties

from customer360.lakehouse.delta_scan import rows_with_keys
from customer360.lakehouse.schema import (
    check_compatible,
    conform_to_table,
    delta_schema_to_arrow,
    normalize_arrow_table,
)
from customer360.lakehouse.store import (
    NEW_TABLE,
    DeltaLake,
    WriteConflict,
    WritePath,
    WriteResult,
    conflicts_raised,
    count_rows,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Attempts of one read → compute → commit before a conflict is given up (the run then fails
#: cleanly, nothing half-written, and can be re-run).
CONFLICT_ATTEMPTS = 8

#: Above this share of changed rows an incremental run would rewrite most of the table anyway.
FULL_REBUILD_FRACTION = 0.5
STATE_LAYER, STATE_TABLE = "ops", "medallion_state"
_UTC_US = pa.timestamp("us", tz="UTC")
STATE_SCHEMA = pa.schema(
    [
        pa.field("consumer", pa.string()),
        pa.field("watermark", _UTC_US),  # highest history marker the consumer has applied
        pa.field("detail", pa.string()),  # JSON: inputs, outputs (Delta versions), facts
        pa.field("recorded_at", _UTC_US),
    ]
)
_DELETE_FLAG = "_c360_delete"


@dataclass(frozen=True)
class ConsumerState:
    """What an incrementally maintained asset last built, one row per asset in
    `ops/medallion_state`: the history watermark it applied up to, the identity of its inputs,
    the Delta versions it wrote (a table changed by anything else forces a full rebuild) and
    facts about that output (check results that only change when the output does)."""

    consumer: str
    watermark: dt.datetime | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def read_state(lake: DeltaLake, consumer: str) -> ConsumerState | None:
    if not lake.exists(STATE_LAYER, STATE_TABLE):
        return None
    rows = lake.read_arrow(STATE_LAYER, STATE_TABLE)
    rows = rows.filter(pc.equal(rows["consumer"], consumer)).to_pylist()
    if not rows:
        return None
    detail = json.loads(rows[0]["detail"])
    return ConsumerState(
        consumer,
        rows[0]["watermark"],
        detail.get("inputs", {}),
        detail.get("outputs", {}),
        detail.get("facts", {}),
    )


def write_state(lake: DeltaLake, state: ConsumerState) -> None:
    detail = {"inputs": state.inputs, "outputs": state.outputs, "facts": state.facts}
    row = {
        "consumer": state.consumer,
        "watermark": state.watermark,
        "detail": json.dumps(detail, sort_keys=True),
        "recorded_at": dt.datetime.now(dt.UTC),
    }
    data = pa.Table.from_pylist([row], schema=STATE_SCHEMA)
    # One row per consumer: re-applying the upsert on a newer version is always right.
    on_conflict(
        lambda: lake.write_arrow(
            data, STATE_LAYER, STATE_TABLE, mode="merge", merge_keys=["consumer"],
            read_version=read_version(lake, STATE_LAYER, STATE_TABLE),
        ),
        f"{STATE_LAYER}/{STATE_TABLE}",
    )  # fmt: skip


def read_version(lake: DeltaLake, layer: str, table: str) -> int:
    """The version a pinned write starts from (`NEW_TABLE` when there is no table yet)."""
    return lake.table(layer, table).version() if lake.exists(layer, table) else NEW_TABLE


def on_conflict(
    attempt: Callable[[], T], what: str, attempts: int = CONFLICT_ATTEMPTS, pause: float = 0.5
) -> T:
    """Run `attempt` (read → compute → pinned commit) again while another writer commits first.
    Each attempt must re-read everything it depends on. After `attempts` conflicts the last
    `WriteConflict` is raised: nothing of this writer was committed."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except WriteConflict as exc:
            if number == attempts:
                raise WriteConflict(f"{what}: gave up after {attempts} conflicts: {exc}") from exc
            wait = pause * number * (1 + random.random())  # jitter: racers spread apart
            log.info("%s: %s; attempt %d again in %.1f s", what, exc, number + 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def table_versions(lake: DeltaLake, tables: Sequence[tuple[str, str]]) -> dict[str, int]:
    return {f"{layer}/{name}": lake.table(layer, name).version() for layer, name in tables}


def full_refresh_reason(
    lake: DeltaLake,
    state: ConsumerState | None,
    inputs: dict[str, Any],
    outputs: Sequence[tuple[str, str]],
    requested: bool,
) -> str | None:
    """Why this run must rebuild in full, or None when applying changes is safe."""
    if requested:
        return "full_refresh requested"
    if state is None:
        return "no earlier build recorded"
    for layer, name in outputs:
        if not lake.exists(layer, name):
            return f"{layer}/{name} does not exist"
        if lake.table(layer, name).version() != state.outputs.get(f"{layer}/{name}"):
            return f"{layer}/{name} was changed since the last build"
    for name, value in inputs.items():
        if state.inputs.get(name) != value:
            return f"{name} changed"
    return None


def read_rows(
    lake: DeltaLake,
    layer: str,
    table: str,
    key: str,
    values: pa.Array,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    only_if: str | None = None,
) -> pa.Table:
    """The rows of `layer/table` (at `version`, default the latest) whose `key` is in `values`
    (customer360.lakehouse.delta_scan.rows_with_keys)."""
    return rows_with_keys(
        lake.table(layer, table, version), key, values, columns=columns, only_if=only_if
    )


def column_max(lake: DeltaLake, layer: str, table: str, column: str, version: int) -> Any:
    """The largest value of `column` at `version`, None when the table has no such column."""
    snapshot = lake.table(layer, table, version)
    if column not in delta_schema_to_arrow(snapshot.schema()).names:
        return None
    values = lake.read_arrow(layer, table, version=version, columns=[column])
    return pc.max(values[column]).as_py()


def apply_changes(
    lake: DeltaLake,
    layer: str,
    table: str,
    upserts: pa.Table,
    remove: pa.Table,
    keys: Sequence[str],
    read_version: int | None = None,
) -> tuple[WriteResult, int]:
    """Upsert `upserts` and delete the rows whose `keys` are in `remove` (unless also upserted),
    in ONE Delta commit (a delta-rs merge with a delete clause): a reader sees the table before
    or after the change, never half of it. Schema rules as in the lakehouse: new nullable
    columns are added, a type change raises `SchemaMismatchError` before anything is written.
    `read_version`: the changes were computed from that version; commit directly on it or
    raise `WriteConflict` (store.py). Returns the write result and the number of rows deleted."""
    uri = lake.uri(layer, table)
    with conflicts_raised(uri, read_version):
        return _apply_changes(lake, layer, table, upserts, remove, list(keys), read_version)


def _apply_changes(
    lake: DeltaLake,
    layer: str,
    table: str,
    upserts: pa.Table,
    remove: pa.Table,
    keys: list[str],
    read_version: int | None,
) -> tuple[WriteResult, int]:
    uri = lake.uri(layer, table)
    strict = read_version is not None
    target = lake.table(layer, table, read_version)
    schema = delta_schema_to_arrow(target.schema())
    upserts = normalize_arrow_table(upserts)
    new_columns = check_compatible(uri, schema, upserts.schema)
    if new_columns:
        # Evolve first: with merge_schema the merge would add the delete flag column too.
        added = pa.schema([upserts.schema.field(c).with_nullable(True) for c in new_columns])
        base = target.version()
        target.alter.add_columns(
            DeltaSchema.from_arrow(added).fields, commit_properties=_strict(strict)
        )
        # A pinned change goes on from exactly its own schema commit.
        target = lake.table(layer, table, base + 1 if strict else None)
        schema = delta_schema_to_arrow(target.schema())
    remove = without_keys(normalize_arrow_table(remove.select(keys)), upserts, keys)
    nullable = pa.schema([f.with_nullable(True) for f in schema])
    parts = [
        conform_to_table(part, schema)
        .cast(nullable)
        .append_column(_DELETE_FLAG, pa.array([flag] * part.num_rows, pa.bool_()))
        for part, flag in ((upserts, False), (remove, True))
        if part.num_rows
    ]
    deleted = 0
    if parts:
        source = pa.concat_tables(parts)
        _check_unique_keys(uri, source, keys)
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        commit = _strict(strict)
        metrics = (
            target.merge(source, predicate, source_alias="s", target_alias="t",
                         commit_properties=commit)
            .when_matched_delete(predicate=f"s.`{_DELETE_FLAG}`")
            .when_matched_update_all(predicate=f"NOT s.`{_DELETE_FLAG}`",
                                     except_cols=[_DELETE_FLAG])
            .when_not_matched_insert_all(predicate=f"NOT s.`{_DELETE_FLAG}`",
                                         except_cols=[_DELETE_FLAG])
            .execute()
        )  # fmt: skip
        deleted = int(metrics.get("num_target_rows_deleted", 0))
    # The merge updates `target` to the version it committed; a merge that changes nothing
    # commits nothing (delta-rs), so the version can also stay the one read.
    committed = target.version() if strict else None
    result = current_result(lake, layer, table, rows_written=upserts.num_rows, version=committed)
    return result, deleted


def rewrite_with_changes(
    lake: DeltaLake,
    layer: str,
    table: str,
    previous: pa.Table,
    upserts: pa.Table,
    remove: pa.Table,
    keys: Sequence[str],
    read_version: int,
    writer_properties: WriterProperties | None = None,
) -> tuple[WriteResult | None, pa.Table]:
    """apply_changes for a caller that holds the whole table (`previous`, read at
    `read_version`): the changed table is formed in memory and written as one pinned overwrite
    (`WriteConflict` when anyone committed after `read_version`). Returns (the write result,
    None when nothing changed and nothing was committed; the table after the change).

    Why: when the changed keys are spread over every file, a delta-rs merge rewrites every
    file anyway, after reading them all back and joining them with the changes; an overwrite
    only encodes the rows, which the caller has already (about half the time of the merge on
    the block index, docs/medallion.md "Benchmark")."""
    if upserts.num_rows == 0 and remove.num_rows == 0:
        return None, previous
    keys = list(keys)
    upserts = normalize_arrow_table(upserts)
    _check_unique_keys(lake.uri(layer, table), upserts, keys)
    gone = pa.concat_tables([_key_rows(part, keys, previous) for part in (upserts, remove)])
    kept = without_keys(previous, gone, keys)
    added = conform_to_table(upserts, previous.schema)
    if added.schema.names == previous.schema.names:
        added = added.cast(previous.schema)
    changed = pa.concat_tables([kept, added], promote_options="default")
    result = lake.write_arrow(changed, layer, table, read_version=read_version,
                              commit_metadata={"customer360.mode": "apply_changes"},
                              writer_properties=writer_properties)  # fmt: skip
    return replace(result, rows_written=upserts.num_rows), changed


def concurrently(calls: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Run independent calls on one thread per core; their results by name. An error is raised
    after every call has ended (the first in `calls` order), so nothing is left running.

    Why: delta-rs encodes and writes, and Arrow filters and concatenates, without holding the
    GIL, so the rewrites of several million-row tables overlap on the machine's cores (four
    1M-row writes: 2.3–2.7 s one after the other, 1.1–1.7 s side by side on two cores;
    `bench/lake_io.py`, docs/lakehouse.md "Benchmark"). Each call still commits on its own
    pinned version."""
    workers = max(1, min(len(calls), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="c360-rewrite") as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
    return {name: future.result() for name, future in futures.items()}


def _key_rows(rows: pa.Table, keys: list[str], like: pa.Table) -> pa.Table:
    """The `keys` columns of `rows`, typed as in `like`."""
    return normalize_arrow_table(rows.select(keys)).cast(
        pa.schema([like.schema.field(k) for k in keys])
    )


def _strict(strict: bool) -> CommitProperties:
    return CommitProperties(
        custom_metadata={"customer360.mode": "apply_changes"},
        max_commit_retries=0 if strict else None,
    )


def key_values(table: pa.Table, keys: Sequence[str]) -> pa.Array:
    """One comparable value per row for (possibly composite) keys."""
    if len(keys) == 1:
        return table[keys[0]].combine_chunks()
    parts = [pc.cast(table[k], pa.string()).combine_chunks() for k in keys]
    return pc.binary_join_element_wise(*parts, "\x1f", null_handling="replace")


def without_keys(table: pa.Table, other: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The rows of `table` whose keys do not occur in `other` (an anti-join), in their order."""
    if table.num_rows == 0 or other.num_rows == 0:
        return table
    if len(keys) == 1:
        return table.filter(pc.invert(pc.is_in(key_values(table, keys), key_values(other, keys))))
    # Composite keys: only rows whose first key column occurs in `other` can match, so the
    # joined key text is built for those alone (not for the millions of segment rows).
    maybe = pc.indices_nonzero(pc.is_in(_key_text(table, keys[0]), _key_text(other, keys[0])))
    found = pc.is_in(key_values(table.take(maybe), keys), key_values(other, keys))
    keep = np.ones(table.num_rows, dtype=bool)
    keep[pc.filter(maybe, found).to_numpy()] = False
    return table.filter(pa.array(keep))


def _key_text(table: pa.Table, key: str) -> pa.Array:
    """One key column as key_values renders its part of a composite key."""
    return pc.fill_null(pc.cast(table[key], pa.string()), "").combine_chunks()


def _check_unique_keys(uri: str, data: pa.Table, keys: list[str]) -> None:
    grouped = data.group_by(keys).aggregate([([], "count_all")])
    dupes = grouped.filter(pc.greater(grouped["count_all"], 1))
    if dupes.num_rows:
        example = {k: dupes[k][0].as_py() for k in keys}
        raise ValueError(f"changes to {uri}: {dupes.num_rows} key(s) repeat, e.g. {example}")


def current_result(
    lake: DeltaLake, layer: str, table: str, rows_written: int = 0, version: int | None = None
) -> WriteResult:
    """The table as it is now (or at `version`), in the shape of a write result (for the
    standard metadata)."""
    dt_ = lake.table(layer, table, version)
    return WriteResult(
        uri=lake.uri(layer, table),
        version=dt_.version(),
        rows_written=rows_written,
        table_rows=count_rows(dt_),
        schema=delta_schema_to_arrow(dt_.schema()),
        path=WritePath.ARROW,
    )


def next_marker(previous: dt.datetime | None) -> dt.datetime:
    """Now, but always after the previous marker (a clock set back must not hide a change)."""
    now = dt.datetime.now(dt.UTC)  # microseconds, as Delta stores timestamps
    if previous is not None and now <= previous:
        return previous + dt.timedelta(microseconds=1)
    return now
