"""Other CRM systems' CSV exports (e.g. residents_adls.csv in landing/crm2/): bronze and silver.

One pair of assets per source with a `csv:` block in the unify configuration
(customer360/unify/match_rules.yaml): `bronze/crm_<source>` keeps every row of every drop day
(like finance), `silver/crm_<source>` the current, standardised and validated row per key, with
the rows that fail validation in `silver/crm_<source>_quarantine`. gold/customer_source_link
matches them with the Dataverse customers.
"""

import csv
import hashlib
from functools import partial

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.keys import crm_bronze_key, crm_quarantine_key, crm_silver_key
from assets.partitions import crm_drops
from assets.refresh import CRM_SILVER_AUTOMATION, RefreshConfig
from customer360.bronze.ingest import ingest_drop_days
from customer360.lakehouse import WriteResult
from customer360.lakehouse.incremental import (
    ConsumerState,
    current_result,
    full_refresh_reason,
    read_state,
    table_versions,
    write_state,
)
from customer360.lakehouse.spark_arrow import arrow_schema_to_spark
from customer360.transforms.crm import latest_per_key, split_valid, standardize_source
from customer360.unify import CsvSourceMapping, csv_output_schema, read_crm_csv, unify_config
from resources.lakehouse import LakehouseResource, bronze_result, write_metadata
from resources.landing import LandingZoneResource
from resources.spark import SparkResource


def build_crm_bronze(mapping: CsvSourceMapping) -> dg.AssetsDefinition:
    key = crm_bronze_key(mapping.source)
    area = mapping.landing_area

    @dg.asset(
        key=key,
        group_name="bronze",
        kinds={"delta", "csv"},
        partitions_def=crm_drops(mapping.source),
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=f"CSV exports of source {mapping.source!r} dropped in landing/{area}/, as "
        "text columns named by the configured mapping, with file and line; one partition per "
        "drop day.",
        check_specs=[dg.AssetCheckSpec("no_rejected_rows", asset=key)],
        pool="delta_bronze",
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        landing: LandingZoneResource,
        lakehouse: LakehouseResource,
    ) -> dg.MaterializeResult:
        parse = partial(_parse, mapping=mapping)
        done = ingest_drop_days(
            lakehouse.lake, landing, area, key.path[-1], parse, csv_output_schema(mapping),
            context.partition_keys, context.log.info,
        )  # fmt: skip
        return bronze_result(lakehouse, done)

    return _bronze


def _parse(data: bytes, path: str, mapping: CsvSourceMapping):
    """One file of the drop. A file-level problem (header, encoding, not CSV) sets that file
    aside whole with its reason (ingest_drop_days); the day's other files are ingested."""
    try:
        return read_crm_csv(data, path, mapping)
    except (ValueError, csv.Error) as exc:
        raise ValueError(f"source {mapping.source!r}: {exc}") from None


def build_crm_silver(mapping: CsvSourceMapping) -> dg.AssetsDefinition:
    source = mapping.source
    current, quarantine = crm_silver_key(source), crm_quarantine_key(source)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                current,
                deps=[crm_bronze_key(source)],
                kinds={"pyspark", "delta"},
                automation_condition=CRM_SILVER_AUTOMATION,
                description=f"Source {source!r}: the newest row per source key, standardised "
                "like the Dataverse customers (trimmed, e-mail lower-cased, E.164 phone, ISO "
                "country, typed dates) and valid.",
            ),
            dg.AssetSpec(
                quarantine,
                deps=[crm_bronze_key(source)],
                kinds={"pyspark", "delta"},
                automation_condition=CRM_SILVER_AUTOMATION,
                description=f"Source {source!r}: current rows that failed validation, with "
                "`failed_rules`.",
            ),
        ],
        name=f"silver__crm_{source}_and_quarantine",
        group_name="silver",
        check_specs=[dg.AssetCheckSpec("keys_unique", asset=current, blocking=True)],
    )
    def _silver(
        context: dg.AssetExecutionContext,
        config: RefreshConfig,
        spark: SparkResource,
        lakehouse: LakehouseResource,
    ):
        lake, bronze_name = lakehouse.lake, crm_bronze_key(source).path[-1]
        outputs = [("silver", current.path[-1]), ("silver", quarantine.path[-1])]
        bronze = lake.table("bronze", bronze_name) if lake.exists("bronze", bronze_name) else None
        inputs = {
            # The mapping decides the columns and the standardisation: part of the input.
            "mapping": hashlib.sha256(repr(mapping).encode()).hexdigest(),
            f"bronze/{bronze_name}": None
            if bronze is None
            else [bronze.metadata().id, bronze.version()],
        }
        consumer = f"silver/{current.path[-1]}"
        state = read_state(lake, consumer)
        reason = full_refresh_reason(lake, state, inputs, outputs, config.full_refresh)
        if reason is None and "rows" in state.facts:  # same bronze snapshot: same tables
            refresh, facts = "unchanged", state.facts
            result, failed_result = (current_result(lake, *t) for t in outputs)
        else:
            refresh = "full"
            result, failed_result = _rebuild_source(context, spark.spark_session, lakehouse,
                                                    mapping, outputs)  # fmt: skip
            keys = lake.read_arrow(*outputs[0], columns=["source_key"])
            facts = {"rows": keys.num_rows,
                     "distinct_keys": pc.count_distinct(keys["source_key"]).as_py()}  # fmt: skip
            write_state(
                lake, ConsumerState(consumer, inputs=inputs,
                                    outputs=table_versions(lake, outputs), facts=facts),
            )  # fmt: skip
        # Optional source: before its first drop both tables are empty, and the metadata says
        # why (identity resolution then runs on the Dataverse customers alone).
        skipped = {} if bronze is not None else {"skipped": _not_landed(mapping)}
        yield dg.MaterializeResult(
            asset_key=current, metadata=write_metadata(result, refresh=refresh, **skipped)
        )
        yield dg.MaterializeResult(
            asset_key=quarantine,
            metadata=write_metadata(failed_result, refresh=refresh, **skipped),
        )
        yield dg.AssetCheckResult(
            check_name="keys_unique",
            asset_key=current,
            passed=facts["distinct_keys"] == facts["rows"],
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": facts["rows"], "distinct_keys": facts["distinct_keys"]},
        )

    return _silver


def _rebuild_source(
    context, session, lakehouse: LakehouseResource, mapping: CsvSourceMapping, outputs
) -> tuple[WriteResult, WriteResult]:
    """The current valid and quarantined rows of one source, from all of its bronze rows."""
    bronze_name = crm_bronze_key(mapping.source).path[-1]
    if lakehouse.exists("bronze", bronze_name):
        bronze = lakehouse.read(session, "bronze", bronze_name)
    else:  # nothing dropped yet: empty tables, so the unified profile still builds
        context.log.info(_not_landed(mapping))
        empty = csv_output_schema(mapping).append(pa.field("_drop_day", pa.string()))
        bronze = session.createDataFrame([], arrow_schema_to_spark(empty))
    rows = standardize_source(latest_per_key(bronze)).cache()
    valid, failed = split_valid(rows)
    result = lakehouse.write(valid, *outputs[0])
    failed_result = lakehouse.write(failed, *outputs[1])
    rows.unpersist()
    return result, failed_result


def _not_landed(mapping: CsvSourceMapping) -> str:
    return (
        f"no files of source {mapping.source!r} landed in landing/{mapping.landing_area}/ yet: "
        "empty tables"
    )


crm_assets = [
    asset
    for mapping in unify_config().csv_sources
    for asset in (build_crm_bronze(mapping), build_crm_silver(mapping))
]
