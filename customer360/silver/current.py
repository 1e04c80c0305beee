"""silver/customer and silver/customer_quarantine: the current state per customer Id.

Incremental: only the customers whose history rows carry a `_merged_at` marker newer than the
last build (plus every quarantined customer: validation depends on the date and only ever lets a
failing row pass later) are re-derived and applied, one Delta commit per table. Anything
unexpected takes the full rebuild (customer360.lakehouse.incremental.full_refresh_reason).

Concurrent runs: each attempt reads the history and both outputs at fixed versions and commits
on exactly those output versions; when another run commits first it starts over (a half-applied
attempt is then seen as "changed since the last build" and rebuilt in full).
"""

from dataclasses import dataclass, field
from typing import Any

import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from customer360.lakehouse import DeltaLake, WriteResult, count_rows
from customer360.lakehouse.arrow_sql import arrow_query, sql_name
from customer360.lakehouse.incremental import (
    FULL_REBUILD_FRACTION,
    ConsumerState,
    apply_changes,
    full_refresh_reason,
    on_conflict,
    read_rows,
    read_state,
    read_version,
    write_state,
)
from customer360.lakehouse.schema import delta_schema_to_arrow
from customer360.lakehouse.spark_arrow import arrow_to_spark, spark_to_arrow
from customer360.transforms.customer import EMAIL_PATTERN, split_valid, validation_failures
from customer360.transforms.dataverse import (
    MERGED_AT,
    changed_keys,
    current_state,
)

CONSUMER = "silver/customer"  # its row in ops/medallion_state
HISTORY = ("silver", "customer_history")
OUTPUTS = [("silver", "customer"), ("silver", "customer_quarantine")]
#: Why silver/customer is skipped before the first Synapse Link export (metadata `skipped`).
NOT_LANDED = (
    "no Synapse Link export landed in landing/dataverse/ yet (silver/customer_history was never "
    "written): nothing to build"
)


def customers_not_landed(lake: DeltaLake) -> str | None:
    """Why there are no current customers to derive yet, or None once the history exists."""
    return None if lake.exists(*HISTORY) else NOT_LANDED


CUSTOMER_SCHEMA = pa_schema.DataFrameSchema(
    {
        "Id": pa_schema.Column(str, unique=True, nullable=False),
        "cid": pa_schema.Column("int64", nullable=False, unique=True),
        "email": pa_schema.Column(str, pa_schema.Check.str_matches(EMAIL_PATTERN)),
        "gender": pa_schema.Column(
            str, pa_schema.Check.isin(["female", "male", "non_binary", "other"]), nullable=True
        ),
        "country_code": pa_schema.Column(str, pa_schema.Check.str_length(2, 2), nullable=True),
        "postcode": pa_schema.Column(str, nullable=True),
        "telephone_e164": pa_schema.Column(
            str, pa_schema.Check.str_matches(r"^\+[1-9][0-9]{6,14}$"), nullable=True
        ),
    },
    strict=False,
)


@dataclass
class CurrentRefresh:
    """What one refresh of silver/customer did, for the asset's metadata and checks."""

    valid: WriteResult
    quarantine: WriteResult
    history_version: int
    refresh: str  # "full" or "incremental"
    reason: str | None = None  # why the run rebuilt in full
    customers_reprocessed: int | None = None
    rows_removed: int | None = None
    schema_ok: bool = True
    failure_cases: str = ""
    rows_validated: int = 0
    failed_rules: dict[str, int] = field(default_factory=dict)

    def refresh_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"refresh": self.refresh, "history_version": self.history_version}
        if self.reason:
            meta["full_refresh_reason"] = self.reason
        else:
            meta.update(
                customers_reprocessed=self.customers_reprocessed, rows_removed=self.rows_removed
            )
        return meta


def refresh_current(session: SparkSession, lake: DeltaLake, requested: bool) -> CurrentRefresh:
    """Bring silver/customer and its quarantine up to date with the history (one snapshot);
    when another run commits to either output first, start over from what it wrote."""
    return on_conflict(lambda: _refresh_once(session, lake, requested), CONSUMER)


def _refresh_once(session: SparkSession, lake: DeltaLake, requested: bool) -> CurrentRefresh:
    # The outputs' versions first: every commit below goes on exactly these (store.py).
    pinned = {t: read_version(lake, *t) for t in OUTPUTS}
    history = lake.table(*HISTORY)
    version = history.version()  # everything below reads this one snapshot
    markers = _history_markers(lake, version)
    inputs = {"silver/customer_history": history.metadata().id}
    state = read_state(lake, CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, OUTPUTS, requested)
    if reason is None and markers is None:
        reason = "the history has no _merged_at markers yet"
    ids = None
    if reason is None:
        ids = _changed_ids(lake, markers, state)
        live = sum(count_rows(lake.table(*t)) for t in OUTPUTS)
        if len(ids) > FULL_REBUILD_FRACTION * max(live, 1):
            reason = f"{len(ids)} of {live} customers changed"
    if reason is None:
        valid, quarantine, removed, upserted = _apply_current_changes(
            session, lake, version, ids, pinned
        )
        done = CurrentRefresh(valid, quarantine, version, "incremental",
                              customers_reprocessed=len(ids), rows_removed=removed)  # fmt: skip
    else:
        upserted = None
        valid, quarantine = _rebuild_current(session, lake, version, pinned)
        done = CurrentRefresh(valid, quarantine, version, "full", reason=reason)
    # Rows not upserted were validated when they were written (and passed, or the previous
    # state would not say so): an incremental run validates what it wrote, plus the keys.
    revalidate_all = upserted is None or not state.facts.get("schema_ok")
    done.schema_ok, done.failure_cases, done.rows_validated = validate_customers(
        lake, None if revalidate_all else upserted
    )
    watermark = None if markers is None else pc.max(markers[MERGED_AT]).as_py()
    write_state(
        lake,
        # The versions this run committed (a later writer's commit is not ours).
        ConsumerState(CONSUMER, watermark, inputs, _versions(valid, quarantine),
                      facts={"schema_ok": done.schema_ok}),
    )  # fmt: skip
    rules = lake.read_arrow("silver", "customer_quarantine", columns=["failed_rules"])
    counts = pc.value_counts(pc.list_flatten(rules["failed_rules"].combine_chunks())).to_pylist()
    done.failed_rules = {c["values"]: c["counts"] for c in counts}
    return done


def _versions(valid: WriteResult, quarantine: WriteResult) -> dict[str, int]:
    return {"/".join(OUTPUTS[0]): valid.version, "/".join(OUTPUTS[1]): quarantine.version}


def _history_markers(lake: DeltaLake, version: int) -> pa.Table | None:
    """`Id` and `_merged_at` of the history at `version` (None for a history written before
    markers existed)."""
    snapshot = lake.table(*HISTORY, version)
    if MERGED_AT not in delta_schema_to_arrow(snapshot.schema()).names:
        return None
    return lake.read_arrow(*HISTORY, version=version, columns=["Id", MERGED_AT])


def _changed_ids(lake: DeltaLake, markers: pa.Table, state: ConsumerState) -> pa.Array:
    """Changed since the last build, plus every quarantined customer."""
    quarantined = lake.read_arrow("silver", "customer_quarantine", columns=["Id"])["Id"]
    changed = changed_keys(markers, state.watermark)
    return pc.unique(pa.concat_arrays([changed, quarantined.combine_chunks().cast(changed.type)]))


def validate_customers(lake: DeltaLake, upserted: pa.Table | None) -> tuple[bool, str, int]:
    """CUSTOMER_SCHEMA over silver/customer, or over the `upserted` rows only (the rest of the
    table passed before) with Id and cid uniqueness still checked over the whole table.
    Returns (passed, failure cases as markdown, rows validated)."""
    columns = list(CUSTOMER_SCHEMA.columns)
    rows = upserted.select(columns) if upserted is not None else None
    if rows is None:
        rows = lake.read_arrow("silver", "customer", columns=columns)
    failures = []
    try:
        CUSTOMER_SCHEMA.validate(rows.to_pandas(), lazy=True)
    except pa_schema.errors.SchemaErrors as exc:
        failures.append(exc.failure_cases.head(20).to_markdown())
    if upserted is not None:
        keys = lake.read_arrow("silver", "customer", columns=["Id", "cid"])
        repeated = {
            name: arrow_query(
                f"SELECT {sql_name(name)} AS value, count(*) AS n FROM keys "
                "GROUP BY 1 HAVING n > 1 ORDER BY 1 LIMIT 20",
                keys=keys,
            ).to_pylist()
            for name in ("Id", "cid")
        }
        failures += [
            f"{name} not unique: {examples}" for name, examples in repeated.items() if examples
        ]
    return not failures, "\n\n".join(failures), rows.num_rows


def _rebuild_current(
    session: SparkSession, lake: DeltaLake, version: int, pinned: dict[tuple[str, str], int]
) -> tuple[WriteResult, WriteResult]:
    history = lake.read(session, *HISTORY, version=version)
    current = current_state(history).cache()
    valid, quarantined = split_valid(current)
    valid_result = lake.write(valid, *OUTPUTS[0], read_version=pinned[OUTPUTS[0]])
    quarantine_result = lake.write(quarantined, *OUTPUTS[1], read_version=pinned[OUTPUTS[1]])
    current.unpersist()
    return valid_result, quarantine_result


def _apply_current_changes(
    session: SparkSession,
    lake: DeltaLake,
    version: int,
    ids: pa.Array,
    pinned: dict[tuple[str, str], int],
) -> tuple[WriteResult, WriteResult, int, pa.Table]:
    """Re-derive the current state of `ids` and apply it: valid rows upserted into
    silver/customer, failing ones into the quarantine, each Id removed from the table it no
    longer belongs to (deleted customers from both). Returns the write results, the rows
    removed and the rows upserted into silver/customer."""
    rows = read_rows(lake, *HISTORY, "Id", ids, version=version, only_if="is_current")
    # split_valid's split, done on the collected rows: one Spark job instead of two.
    current = current_state(arrow_to_spark(session, rows))
    checked = spark_to_arrow(current.withColumn("failed_rules", validation_failures(current)))
    failing = pc.greater(pc.list_value_length(checked["failed_rules"]), 0)
    valid_rows = checked.filter(pc.invert(failing)).drop_columns(["failed_rules"])
    quarantined_rows = checked.filter(failing)
    everyone = pa.table({"Id": ids})
    valid_result, removed = apply_changes(
        lake, *OUTPUTS[0], valid_rows, everyone, ["Id"], read_version=pinned[OUTPUTS[0]]
    )
    quarantine_result, removed_q = apply_changes(
        lake, *OUTPUTS[1], quarantined_rows, everyone, ["Id"], read_version=pinned[OUTPUTS[1]]
    )
    return valid_result, quarantine_result, removed + removed_q, valid_rows
