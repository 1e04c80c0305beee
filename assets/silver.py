"""Silver: clean names and values, history (SCD2) maintained by merge, current state, finance.

silver/customer (+ quarantine) is maintained incrementally: each run re-derives only the
customers whose history changed since its last build (history rows carry `_merged_at`; the
highest value consumed is kept in `ops/medallion_state`) and applies them in one Delta commit per
table. silver/customer_finance is rebuilt only when bronze finance changed. Anything unexpected
(no recorded state, a table changed elsewhere, most customers changed, `full_refresh` asked)
takes the full rebuild. See docs/medallion.md "Incremental runs".
"""

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import Schema as DeltaSchema
from deltalake.transaction import CommitProperties
from pydantic import Field
from pyspark.sql import functions as F

from assets.bronze import PARTITION_COLUMN
from customer360.lakehouse import DeltaLake, WritePath, WriteResult, count_rows
from customer360.lakehouse.arrow_sql import arrow_query, sql_name
from customer360.lakehouse.delta_scan import rows_with_keys
from customer360.lakehouse.schema import (
    check_compatible,
    conform_to_table,
    delta_schema_to_arrow,
    normalize_arrow_table,
)
from customer360.lakehouse.spark_arrow import arrow_to_spark, spark_to_arrow
from customer360.partitions import dataverse_exports
from customer360.transforms.customer import (
    EMAIL_PATTERN,
    split_valid,
    standardize_customers,
    validation_failures,
)
from customer360.transforms.dataverse import (
    MERGED_AT,
    as_versions,
    changed_keys,
    current_state,
    history_chains,
    live_ids_arrow,
    strip_prefix,
)
from customer360.transforms.finance import monthly_finance
from resources.lakehouse import LakehouseResource, write_metadata
from resources.spark import SparkResource

CUSTOMER_TABLE = "crc33_customer"
PUBLISHER_PREFIX = "crc33_"
HISTORY_KEY = dg.AssetKey(["silver", "customer_history"])
CUSTOMER_KEY = dg.AssetKey(["silver", "customer"])
QUARANTINE_KEY = dg.AssetKey(["silver", "customer_quarantine"])
FINANCE_KEY = dg.AssetKey(["silver", "customer_finance"])
EAGER = dg.AutomationCondition.eager()

# Ingestion bookkeeping that stays in bronze.
_BRONZE_ONLY = (PARTITION_COLUMN, "_ingested_at", "IsDelete", "SinkCreatedOn")

#: Above this share of changed customers an incremental run would rewrite most rows anyway.
FULL_REBUILD_FRACTION = 0.5
STATE_LAYER, STATE_TABLE = "ops", "medallion_state"
SILVER_CONSUMER = "silver/customer"
FINANCE_CONSUMER = "silver/customer_finance"
_UTC_US = pa.timestamp("us", tz="UTC")
STATE_SCHEMA = pa.schema(
    [
        pa.field("consumer", pa.string()),
        pa.field("watermark", _UTC_US),  # highest history `_merged_at` the consumer has applied
        pa.field("detail", pa.string()),  # JSON: inputs, outputs (Delta versions), facts
        pa.field("recorded_at", _UTC_US),
    ]
)


class RefreshConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Rebuild from all upstream data instead of applying only what changed "
        "(e.g. after changing standardisation code).",
    )


# ---------------------------------------------------------------------------------------------
# incremental bookkeeping


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
    lake.write_arrow(data, STATE_LAYER, STATE_TABLE, mode="merge", merge_keys=["consumer"])


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


def history_markers(lake: DeltaLake, version: int) -> pa.Table | None:
    """`Id` and `_merged_at` of the history at `version` (None for a history written before
    markers existed)."""
    dt_ = lake.table("silver", "customer_history", version)
    if MERGED_AT not in delta_schema_to_arrow(dt_.schema()).names:
        return None
    return lake.read_arrow("silver", "customer_history", version=version, columns=["Id", MERGED_AT])


def latest_marker(markers: pa.Table | None) -> dt.datetime | None:
    return None if markers is None else pc.max(markers[MERGED_AT]).as_py()


def _latest_marker_in_table(lake: DeltaLake, version: int) -> dt.datetime | None:
    table = lake.table("silver", "customer_history", version)
    if MERGED_AT not in delta_schema_to_arrow(table.schema()).names:
        return None
    column = lake.read_arrow("silver", "customer_history", version=version, columns=[MERGED_AT])
    return pc.max(column[MERGED_AT]).as_py()


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


_DELETE_FLAG = "_c360_delete"


def apply_changes(
    lake: DeltaLake,
    layer: str,
    table: str,
    upserts: pa.Table,
    remove: pa.Table,
    keys: Sequence[str],
) -> tuple[WriteResult, int]:
    """Upsert `upserts` and delete the rows whose `keys` are in `remove` (unless also upserted),
    in ONE Delta commit (a delta-rs merge with a delete clause): a reader sees the table before
    or after the change, never half of it. Schema rules as in the lakehouse: new nullable
    columns are added, a type change raises `SchemaMismatchError` before anything is written.
    Returns the write result and the number of rows deleted."""
    uri = lake.uri(layer, table)
    target = lake.table(layer, table)
    schema = delta_schema_to_arrow(target.schema())
    upserts = normalize_arrow_table(upserts)
    new_columns = check_compatible(uri, schema, upserts.schema)
    if new_columns:
        # Evolve first: with merge_schema the merge would add the delete flag column too.
        added = pa.schema([upserts.schema.field(c).with_nullable(True) for c in new_columns])
        target.alter.add_columns(DeltaSchema.from_arrow(added).fields)
        target = lake.table(layer, table)
        schema = delta_schema_to_arrow(target.schema())
    keys = list(keys)
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
        commit = CommitProperties(custom_metadata={"customer360.mode": "apply_changes"})
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
    return current_result(lake, layer, table, rows_written=upserts.num_rows), deleted


def key_values(table: pa.Table, keys: Sequence[str]) -> pa.Array:
    """One comparable value per row for (possibly composite) keys."""
    if len(keys) == 1:
        return table[keys[0]].combine_chunks()
    parts = [pc.cast(table[k], pa.string()).combine_chunks() for k in keys]
    return pc.binary_join_element_wise(*parts, "\x1f", null_handling="replace")


def without_keys(table: pa.Table, other: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The rows of `table` whose keys do not occur in `other` (an anti-join)."""
    if table.num_rows == 0 or other.num_rows == 0:
        return table
    found = pc.is_in(key_values(table, keys), key_values(other, keys))
    return table.filter(pc.invert(found))


def _check_unique_keys(uri: str, data: pa.Table, keys: list[str]) -> None:
    grouped = data.group_by(keys).aggregate([([], "count_all")])
    dupes = grouped.filter(pc.greater(grouped["count_all"], 1))
    if dupes.num_rows:
        example = {k: dupes[k][0].as_py() for k in keys}
        raise ValueError(f"changes to {uri}: {dupes.num_rows} key(s) repeat, e.g. {example}")


def current_result(lake: DeltaLake, layer: str, table: str, rows_written: int = 0) -> WriteResult:
    """The table as it is now, in the shape of a write result (for the standard metadata)."""
    dt_ = lake.table(layer, table)
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


def _clean_versions(bronze_rows):
    cleaned = standardize_customers(strip_prefix(bronze_rows, PUBLISHER_PREFIX))
    return as_versions(cleaned).drop(*_BRONZE_ONLY)


@dg.asset(
    key=HISTORY_KEY,
    group_name="silver",
    kinds={"pyspark", "delta"},
    deps=[dg.AssetKey(["bronze", CUSTOMER_TABLE])],
    partitions_def=dataverse_exports,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=EAGER,
    description="SCD type 2 history of customers (valid_from, valid_to, is_current, is_deleted): "
    "every version Synapse Link exported, standardised. Maintained incrementally: each export "
    "partition merges its versions and re-chains only the customers it touches.",
    pool="delta_silver",
)
def customer_history(
    context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
) -> dg.MaterializeResult:
    session = spark.spark_session
    lake = lakehouse.lake
    partitions = {PARTITION_COLUMN: context.partition_keys}
    changes = _clean_versions(
        lakehouse.read(session, "bronze", CUSTOMER_TABLE, partitions=partitions)
    )
    previous = None
    if lakehouse.exists("silver", "customer_history"):
        version = lake.table("silver", "customer_history").version()
        previous = _latest_marker_in_table(lake, version)
        # The partitions' Ids straight from bronze (cleaning keeps every row and its Id): no
        # Spark job before the one that writes.
        bronze_ids = lake.read_arrow("bronze", CUSTOMER_TABLE, partitions=partitions,
                                     columns=["Id"])["Id"]  # fmt: skip
        touched = pc.unique(bronze_ids.combine_chunks())
        # Only the touched customers' history, filtered while scanning (not the whole table).
        before = arrow_to_spark(
            session, read_rows(lake, "silver", "customer_history", "Id", touched, version=version)
        )
        changes = before.drop("valid_to", "is_current", MERGED_AT).unionByName(
            changes, allowMissingColumns=True
        )
        changes = changes.dropDuplicates(["history_key"])
    # Every row of a re-chained customer gets this run's marker: downstream finds it by that.
    marker = next_marker(previous)
    chains = history_chains(changes).withColumn(MERGED_AT, F.lit(marker).cast("timestamp"))
    result = lakehouse.write(
        chains, "silver", "customer_history", mode="merge", merge_keys=["history_key"]
    )
    return dg.MaterializeResult(
        metadata=write_metadata(
            result, versions_merged=result.rows_written, merged_at=marker.isoformat()
        )
    )


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


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CUSTOMER_KEY,
            deps=[HISTORY_KEY],
            description="Current state per Id: latest version, deletes removed (a re-create "
            "revives), publisher prefix stripped, values standardised and validated. Updated "
            "incrementally from the history rows merged since the last build.",
            kinds={"pyspark", "delta"},
            automation_condition=EAGER,
        ),
        dg.AssetSpec(
            QUARANTINE_KEY,
            deps=[HISTORY_KEY],
            description="Current customers that fail validation, with the rules they break "
            "(failed_rules); nothing is lost between silver/customer and this table.",
            kinds={"pyspark", "delta"},
            automation_condition=EAGER,
        ),
    ],
    group_name="silver",
    check_specs=[
        dg.AssetCheckSpec("customer_schema", asset=CUSTOMER_KEY, blocking=True,
                          description="pandera: keys unique, required columns present, formats"),
        dg.AssetCheckSpec("reconciliation", asset=CUSTOMER_KEY, blocking=True,
                          description="live Ids in bronze = rows in silver + quarantine"),
        dg.AssetCheckSpec("quarantine_empty", asset=QUARANTINE_KEY),
    ],
)  # fmt: skip
def customer_current(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
):
    session = spark.spark_session
    lake = lakehouse.lake
    history = lake.table("silver", "customer_history")
    version = history.version()  # everything below reads this one snapshot
    markers = history_markers(lake, version)
    inputs = {"silver/customer_history": history.metadata().id}
    outputs = [("silver", "customer"), ("silver", "customer_quarantine")]
    state = read_state(lake, SILVER_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, outputs, config.full_refresh)
    if reason is None and markers is None:
        reason = "the history has no _merged_at markers yet"
    ids = None
    if reason is None:
        # Changed since the last build, plus every quarantined customer: validation depends on
        # the date (dateofbirth_plausible), and only ever lets a failing row pass later.
        quarantined = lake.read_arrow("silver", "customer_quarantine", columns=["Id"])["Id"]
        changed = changed_keys(markers, state.watermark)
        ids = pc.unique(
            pa.concat_arrays([changed, quarantined.combine_chunks().cast(changed.type)])
        )
        live = sum(count_rows(lake.table(*t)) for t in outputs)
        if len(ids) > FULL_REBUILD_FRACTION * max(live, 1):
            reason = f"{len(ids)} of {live} customers changed"
    if reason is None:
        refresh = "incremental"
        valid_result, quarantine_result, removed, upserted = _apply_current_changes(
            session, lake, version, ids
        )
    else:
        context.log.info(f"silver/customer: full rebuild ({reason})")
        refresh, removed, upserted = "full", None, None
        valid_result, quarantine_result = _rebuild_current(session, lakehouse, version)
    # Rows not upserted were validated when they were written (and passed, or the previous
    # state would not say so): an incremental run validates what it wrote, plus the keys.
    revalidate_all = upserted is None or not state.facts.get("schema_ok")
    schema_ok, failures, validated = _validate_customers(lake, None if revalidate_all else upserted)
    write_state(
        lake,
        ConsumerState(
            SILVER_CONSUMER, latest_marker(markers), inputs, table_versions(lake, outputs),
            facts={"schema_ok": schema_ok},
        ),
    )  # fmt: skip
    refresh_meta: dict[str, Any] = {"refresh": refresh, "history_version": version}
    if reason:
        refresh_meta["full_refresh_reason"] = reason
    else:
        refresh_meta.update(customers_reprocessed=len(ids), rows_removed=removed)
    yield dg.MaterializeResult(
        asset_key=CUSTOMER_KEY, metadata=write_metadata(valid_result, **refresh_meta)
    )
    rules = lake.read_arrow("silver", "customer_quarantine", columns=["failed_rules"])
    counts = pc.value_counts(pc.list_flatten(rules["failed_rules"].combine_chunks())).to_pylist()
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata=write_metadata(
            quarantine_result,
            refresh=refresh,
            failed_rules=dg.MetadataValue.json({c["values"]: c["counts"] for c in counts}),
        ),
    )

    yield dg.AssetCheckResult(
        check_name="customer_schema",
        asset_key=CUSTOMER_KEY,
        passed=schema_ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failure_cases": dg.MetadataValue.md(failures or "none"),
                  "rows_validated": validated},
    )  # fmt: skip

    # Recomputed from bronze on every run, without Spark (a columnar sort of four columns).
    bronze = lake.read_arrow(
        "bronze", CUSTOMER_TABLE, columns=["Id", "SinkModifiedOn", "versionnumber", "IsDelete"]
    )
    bronze_live = len(live_ids_arrow(bronze))
    silver_rows, quarantined_rows = valid_result.table_rows, quarantine_result.table_rows
    yield dg.AssetCheckResult(
        check_name="reconciliation",
        asset_key=CUSTOMER_KEY,
        passed=bronze_live == silver_rows + quarantined_rows,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"bronze_live_ids": bronze_live, "silver_rows": silver_rows,
                  "quarantined_rows": quarantined_rows},
    )  # fmt: skip
    yield dg.AssetCheckResult(
        check_name="quarantine_empty",
        asset_key=QUARANTINE_KEY,
        passed=quarantined_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": quarantined_rows},
    )


def _validate_customers(lake: DeltaLake, upserted: pa.Table | None) -> tuple[bool, str, int]:
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
    session, lakehouse: LakehouseResource, version: int
) -> tuple[WriteResult, WriteResult]:
    history = lakehouse.read(session, "silver", "customer_history", version=version)
    current = current_state(history).cache()
    valid, quarantined = split_valid(current)
    valid_result = lakehouse.write(valid, "silver", "customer")
    quarantine_result = lakehouse.write(quarantined, "silver", "customer_quarantine")
    current.unpersist()
    return valid_result, quarantine_result


def _apply_current_changes(
    session, lake: DeltaLake, version: int, ids: pa.Array
) -> tuple[WriteResult, WriteResult, int, pa.Table]:
    """Re-derive the current state of `ids` and apply it: valid rows upserted into
    silver/customer, failing ones into the quarantine, each Id removed from the table it no
    longer belongs to (deleted customers from both). Returns the write results, the rows
    removed and the rows upserted into silver/customer."""
    rows = read_rows(
        lake, "silver", "customer_history", "Id", ids, version=version,
        only_if="is_current",
    )  # fmt: skip
    # split_valid's split, done on the collected rows: one Spark job instead of two.
    current = current_state(arrow_to_spark(session, rows))
    checked = spark_to_arrow(current.withColumn("failed_rules", validation_failures(current)))
    failing = pc.greater(pc.list_value_length(checked["failed_rules"]), 0)
    valid_rows = checked.filter(pc.invert(failing)).drop_columns(["failed_rules"])
    quarantined_rows = checked.filter(failing)
    everyone = pa.table({"Id": ids})
    valid_result, removed = apply_changes(lake, "silver", "customer", valid_rows, everyone, ["Id"])
    quarantine_result, removed_q = apply_changes(
        lake, "silver", "customer_quarantine", quarantined_rows, everyone, ["Id"]
    )
    return valid_result, quarantine_result, removed + removed_q, valid_rows


@dg.asset(
    key=FINANCE_KEY,
    group_name="silver",
    kinds={"pyspark", "delta"},
    deps=[dg.AssetKey(["bronze", "customer_finance"]), CUSTOMER_KEY],
    automation_condition=EAGER,
    description="Customer finance, typed, one row per customer and month (latest drop wins; a "
    "file without months counts for the month it was dropped). Rebuilt when bronze finance "
    "changed; otherwise only its checks run again.",
    check_specs=[
        dg.AssetCheckSpec("one_row_per_customer_month", asset=FINANCE_KEY, blocking=True),
        dg.AssetCheckSpec("customers_exist", asset=FINANCE_KEY,
                          description="referential integrity: every cid is a silver customer"),
    ],
)  # fmt: skip
def customer_finance_silver(
    context: dg.AssetExecutionContext,
    config: RefreshConfig,
    spark: SparkResource,
    lakehouse: LakehouseResource,
) -> dg.MaterializeResult:
    lake = lakehouse.lake
    bronze = lake.table("bronze", "customer_finance")
    inputs = {"bronze/customer_finance": [bronze.metadata().id, bronze.version()]}
    outputs = [("silver", "customer_finance")]
    state = read_state(lake, FINANCE_CONSUMER)
    reason = full_refresh_reason(lake, state, inputs, outputs, config.full_refresh)
    if reason is None and "duplicate_keys" in state.facts:
        refresh, result = "unchanged", current_result(lake, "silver", "customer_finance")
        duplicates = int(state.facts["duplicate_keys"])  # the table is the one it was found in
    else:
        refresh = "full"
        session = spark.spark_session
        bronze_rows = lakehouse.read(
            session, "bronze", "customer_finance", version=bronze.version()
        )
        result = lakehouse.write(monthly_finance(bronze_rows), "silver", "customer_finance")
        keys = lake.read_arrow("silver", "customer_finance", columns=["cid", "month"])
        grouped = keys.group_by(["cid", "month"]).aggregate([([], "count_all")])
        duplicates = int(pc.sum(pc.greater(grouped["count_all"], 1)).as_py() or 0)
    write_state(
        lake,
        ConsumerState(
            FINANCE_CONSUMER,
            inputs=inputs,
            outputs=table_versions(lake, outputs),
            facts={"duplicate_keys": duplicates},
        ),
    )
    finance_cids = pc.unique(
        lake.read_arrow("silver", "customer_finance", columns=["cid"])["cid"].combine_chunks()
    )
    customer_cids = lake.read_arrow("silver", "customer", columns=["cid"])["cid"]
    orphans = pc.filter(finance_cids, pc.invert(pc.is_in(finance_cids, customer_cids)))
    orphan_count = len(orphans)
    sample = pc.sort_indices(orphans)[:20]
    sample = orphans.take(sample).to_pylist()
    return dg.MaterializeResult(
        metadata=write_metadata(
            result,
            customers=len(customer_cids),
            refresh=refresh,
            **({"full_refresh_reason": reason} if reason else {}),
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="one_row_per_customer_month", passed=duplicates == 0,
                severity=dg.AssetCheckSeverity.ERROR, metadata={"duplicate_keys": duplicates},
            ),
            dg.AssetCheckResult(
                check_name="customers_exist", passed=orphan_count == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"orphan_customers": orphan_count,
                          "orphan_sample": dg.MetadataValue.json(sample)},
            ),
        ],
    )  # fmt: skip
