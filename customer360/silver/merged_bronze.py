"""Which bronze data silver/customer_history has merged: the bronze partitions, each at the bronze
snapshot its last merge read.

A merge records this in its own Delta commit (commitInfo field `customer360.bronze_partitions`),
so the record changes atomically with the rows. The record is cumulative (every partition merged
so far, not only this run's), so reading it needs one commit, not the whole log. silver/customer's
`reconciliation` check compares with exactly this data: a folder that lands in bronze after the
merge, or a partition re-ingested since, cannot make it fail, while a real mismatch still does.

Per partition the record keeps the bronze version read and the partition's `_ingested_at` then
(ingestion stamps one value per run on a whole partition): a partition whose `_ingested_at` is
still the same is read from the latest bronze snapshot (one scan for all of them); only a
partition re-ingested since is read at its recorded version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from customer360.lakehouse import DeltaLake
from customer360.lakehouse.store import NEW_TABLE
from customer360.tables import CUSTOMER_TABLE, PARTITION_COLUMN
from customer360.transforms.dataverse import live_ids_arrow

HISTORY = ("silver", "customer_history")
BRONZE = ("bronze", CUSTOMER_TABLE)
RECORD_FIELD = "customer360.bronze_partitions"
INGESTED_AT = "_ingested_at"
_LIVENESS = ["Id", "SinkModifiedOn", "versionnumber", "IsDelete"]
#: Commits looked at first when searching the history's log for the latest record (normally the
#: newest commit has it; an OPTIMIZE or schema commit may come in between).
_RECENT_COMMITS = 20


def record_for_merge(
    lake: DeltaLake, history_version: int, partitions: Sequence[str], bronze_version: int
) -> dict[str, str]:
    """The commit metadata for a merge of bronze `partitions` read at `bronze_version` into
    the history at `history_version` (`NEW_TABLE` for the first merge). Empty when an existing
    history has no record (written before records existed): a partial record would be wrong."""
    previous: dict[str, dict] | None = {}
    if history_version != NEW_TABLE:
        previous = merged_partitions(lake, history_version)
    if previous is None:
        return {}
    stamps = _ingested_at(lake, partitions, bronze_version)
    merged = dict(previous)
    for key in partitions:
        merged[key] = {"version": bronze_version, INGESTED_AT: stamps.get(key)}
    return {RECORD_FIELD: json.dumps(merged, sort_keys=True, separators=(",", ":"))}


def merged_partitions(lake: DeltaLake, history_version: int) -> dict[str, dict] | None:
    """The record of the latest commit at or before `history_version` that has one, or None."""
    # The latest snapshot's log: delta-rs numbers the commits of a time-travelled table wrongly.
    table = lake.table(*HISTORY)
    for limit in (_RECENT_COMMITS, None):
        for commit in table.history(limit):
            if commit["version"] <= history_version and RECORD_FIELD in commit:
                return json.loads(commit[RECORD_FIELD])
        if limit is not None and table.version() + 1 <= limit:
            break  # the whole log was read already
    return None


@dataclass(frozen=True)
class MergedLiveIds:
    """Live customer Ids in the bronze data the history merged, and what was compared."""

    live_ids: int
    partitions: int | None  # None: no record, all of bronze was compared
    reread_partitions: int = 0  # re-ingested since their merge: read at the recorded version
    basis: str = "the bronze partitions the history merged, as it read them"


def merged_live_ids(lake: DeltaLake, history_version: int) -> MergedLiveIds:
    """Live Ids of the bronze rows the history at `history_version` merged. A history without a
    record (written before records existed) is compared with all of bronze, as before."""
    record = merged_partitions(lake, history_version)
    if record is None:
        rows = lake.read_arrow(*BRONZE, columns=_LIVENESS)
        return MergedLiveIds(
            len(live_ids_arrow(rows)), None,
            basis="all of bronze (the history's commits record no merged partitions: it was "
            "written before they were recorded)",
        )  # fmt: skip
    latest = lake.read_arrow(
        *BRONZE, partitions={PARTITION_COLUMN: sorted(record)},
        columns=[*_LIVENESS, PARTITION_COLUMN, INGESTED_AT],
    )  # fmt: skip
    now = _stamps_of(latest)
    stale = {k: v for k, v in record.items() if now.get(k) != v.get(INGESTED_AT)}
    partition = latest[PARTITION_COLUMN].cast(pa.string())
    fresh = pc.invert(pc.is_in(partition, pa.array(sorted(stale), pa.string())))
    parts = [latest.filter(fresh).select(_LIVENESS)]
    for version in sorted({v["version"] for v in stale.values()}):
        keys = sorted(k for k, v in stale.items() if v["version"] == version)
        old = lake.read_arrow(*BRONZE, version=version, partitions={PARTITION_COLUMN: keys},
                              columns=_LIVENESS)  # fmt: skip
        parts.append(old.cast(parts[0].schema) if old.schema != parts[0].schema else old)
    rows = pa.concat_tables(parts, promote_options="default")
    return MergedLiveIds(len(live_ids_arrow(rows)), len(record), len(stale))


def _ingested_at(lake: DeltaLake, partitions: Sequence[str], version: int) -> dict[str, str]:
    where = {PARTITION_COLUMN: list(partitions)}
    rows = lake.read_arrow(*BRONZE, version=version, partitions=where,
                           columns=[PARTITION_COLUMN, INGESTED_AT])  # fmt: skip
    return _stamps_of(rows)


def _stamps_of(rows: pa.Table) -> dict[str, str]:
    """Latest `_ingested_at` per partition, as ISO text (comparable across reads)."""
    if rows.num_rows == 0:
        return {}
    rows = rows.set_column(
        rows.schema.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN,
        rows[PARTITION_COLUMN].cast(pa.string()),
    )  # fmt: skip
    grouped = rows.group_by(PARTITION_COLUMN).aggregate([(INGESTED_AT, "max")])
    return {
        key: None if stamp is None else stamp.isoformat()
        for key, stamp in zip(
            grouped[PARTITION_COLUMN].to_pylist(),
            grouped[f"{INGESTED_AT}_max"].to_pylist(),
            strict=True,
        )
    }
