"""Landing-zone sensors: new complete Synapse Link folders and new finance files become dynamic
partitions and runs of their bronze assets (silver and gold follow by declarative automation).

Cursors keep what was already requested; run keys make a repeated request a no-op.
"""

import hashlib
import json
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.bronze import configured_tables
from assets.keys import crm_bronze_key
from assets.partitions import (
    crm_drops,
    dataverse_exports,
    finance_drops,
    register_in_time_order,
    time_ordered_requests,
)
from customer360.synapse_link import SynapseLinkFormatError, list_export_folders, read_entity
from customer360.unify import CsvSourceMapping, unify_config
from resources.landing import LandingZoneResource
from sensors.intervals import landing_sensor_interval

FINANCE_ASSET = dg.AssetKey(["bronze", "customer_finance"])


def dataverse_partition_keys(landing: LandingZoneResource) -> dict[str, str]:
    """Partition key → a fingerprint of its content, for every complete export unit.

    An incremental folder's fingerprint is a digest of its files' fingerprints (size and
    modification time, plus the ETag on ADLS): a file that grows or is rewritten after the
    folder was ingested makes the folder ingest again (idempotently). A folder whose
    model.json is invalid keeps its key (its partition fails with the reason). The
    non-incremental root layout is split into days of SinkModifiedOn; a day's fingerprint is its
    row count and the sum of its version numbers, which change when rows are appended or
    updated in place."""
    fs = landing.filesystem("dataverse")
    folders = list_export_folders(fs)
    timed = [f.name for f in folders if f.name]
    files = folder_fingerprints(landing, timed) if timed else {}
    keys: dict[str, str] = {name: files.get(name, "empty") for name in timed}
    root = next((f for f in folders if not f.name and f.error is None), None)
    if root is not None:
        keys.update(_root_day_keys(fs, root))
    return keys


def folder_fingerprints(landing: LandingZoneResource, names: list[str]) -> dict[str, str]:
    """Incremental folder name → a digest of its files' fingerprints."""
    entries: dict[str, list[str]] = {}
    wanted = set(names)
    for f in landing.list_files("dataverse"):
        folder = f.path.split("/", 1)[0]
        if folder in wanted:
            entries.setdefault(folder, []).append(f.fingerprint)
    return {
        name: hashlib.sha256("\n".join(sorted(found)).encode()).hexdigest()[:16]
        for name, found in entries.items()
    }


def _root_day_keys(fs, root) -> dict[str, str]:
    keys: dict[str, str] = {}
    for table in configured_tables():
        if table.name not in root.entities:
            continue
        try:
            rows = read_entity(fs, root, table.name).table
        except SynapseLinkFormatError:
            continue  # the bronze run of each day says why
        days = pc.strftime(rows["SinkModifiedOn"], format="%Y-%m-%d")
        versions = rows["versionnumber"] if "versionnumber" in rows.column_names else None
        grouped = pa.table({"day": days, "v": versions if versions is not None
                            else pa.nulls(len(days), pa.int64())})  # fmt: skip
        summary = grouped.group_by("day").aggregate([("day", "count"), ("v", "sum")])
        for day, n, total in zip(*(summary[c].to_pylist() for c in ("day", "day_count", "v_sum")),
                                 strict=True):  # fmt: skip
            if day is not None:
                keys[day] = f"{keys.get(day, '')}{table.name}:{n}:{total or 0};"
    return keys


def drop_day_keys(landing: LandingZoneResource, area: str) -> dict[str, str]:
    """Drop day → a fingerprint of that day's CSV files (size and time of each, plus the ETag
    on ADLS): a changed or added file re-ingests the day, idempotently."""
    keys: dict[str, str] = {}
    for f in landing.list_files(area, suffix=".csv"):
        keys[f.drop_day] = keys.get(f.drop_day, "") + f"{f.fingerprint};"
    return keys


def finance_partition_keys(landing: LandingZoneResource) -> dict[str, str]:
    return drop_day_keys(landing, "finance")


def _evaluate(
    context: dg.SensorEvaluationContext,
    partitions_def: dg.DynamicPartitionsDefinition,
    found: dict[str, str],
    assets: list[dg.AssetKey],
    what: str,
) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changed = {k: v for k, v in sorted(found.items()) if seen.get(k) != v}
    registered = context.instance.get_dynamic_partitions(partitions_def.name)
    known = set(registered)
    new = [k for k in changed if k not in known]
    # Keys listed in time order in the UI, also for lakes registered before (assets/partitions.py).
    ordering = time_ordered_requests(partitions_def, registered, new)
    if not changed:
        if ordering:
            return dg.SensorResult(dynamic_partitions_requests=ordering)
        return dg.SkipReason(f"no new or changed {what} ({len(found)} known)")
    requests = [
        dg.RunRequest(
            run_key=f"{partitions_def.name}:{key}:{fingerprint}",
            partition_key=key,
            asset_selection=assets,
            tags={"customer360/trigger": what},
        )
        for key, fingerprint in changed.items()
    ]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=ordering,
        cursor=json.dumps({**seen, **changed}, sort_keys=True),
    )


@dg.sensor(
    name="dataverse_landing_sensor",
    minimum_interval_seconds=landing_sensor_interval(),
    asset_selection=[dg.AssetKey(["bronze", t.name]) for t in configured_tables()],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New complete Synapse Link export folders in landing/dataverse/ → bronze runs.",
)
def dataverse_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    assets = [dg.AssetKey(["bronze", t.name]) for t in configured_tables()]
    found = dataverse_partition_keys(landing)
    return _evaluate(context, dataverse_exports, found, assets, "Synapse Link exports")


@dg.sensor(
    name="finance_landing_sensor",
    minimum_interval_seconds=landing_sensor_interval(),
    asset_selection=[FINANCE_ASSET],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed CSV files in landing/finance/ → bronze/customer_finance runs.",
)
def finance_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    found = finance_partition_keys(landing)
    return _evaluate(context, finance_drops, found, [FINANCE_ASSET], "finance files")


def build_crm_landing_sensor(mapping: CsvSourceMapping) -> dg.SensorDefinition:
    asset = crm_bronze_key(mapping.source)
    area = mapping.landing_area

    @dg.sensor(
        name=f"crm_{mapping.source}_landing_sensor",
        minimum_interval_seconds=landing_sensor_interval(),
        asset_selection=[asset],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New or changed CSV files in landing/{area}/ → {asset.to_user_string()} runs.",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
        found = drop_day_keys(landing, area)
        return _evaluate(context, crm_drops(mapping.source), found, [asset], f"{area} files")

    return _sensor


crm_landing_sensors = [build_crm_landing_sensor(m) for m in unify_config().csv_sources]


@dataclass(frozen=True)
class LandingScan:
    """What `register_landing_partitions` saw: every partition key's content fingerprint per
    partitions definition, and the keys whose content is new or changed since the last scan a
    run succeeded on (they must run again, e.g. a second file dropped on an ingested day)."""

    fingerprints: dict[str, dict[str, str]]
    changed: dict[str, set[str]]


def _cursor_key(partitions_def_name: str) -> str:
    return f"customer360/landing/{partitions_def_name}"


def register_landing_partitions(
    instance: dg.DagsterInstance, landing: LandingZoneResource
) -> LandingScan:
    """Do what the sensors would (for `customer360 run` without a daemon): add new partitions
    and find the ones whose landing content changed. Call `remember_landing_scan` once their
    runs succeeded; until then the same partitions count as changed (a failed run is retried)."""
    crm = [
        (crm_drops(m.source), drop_day_keys(landing, m.landing_area))
        for m in unify_config().csv_sources
    ]
    fingerprints: dict[str, dict[str, str]] = {}
    changed: dict[str, set[str]] = {}
    for partitions_def, found in (
        (dataverse_exports, dataverse_partition_keys(landing)),
        (finance_drops, finance_partition_keys(landing)),
        *crm,
    ):
        register_in_time_order(instance, partitions_def, found)
        key = _cursor_key(partitions_def.name)
        stored = instance.run_storage.get_cursor_values({key}).get(key)
        seen: dict[str, str] = json.loads(stored) if stored else {}
        fingerprints[partitions_def.name] = found
        changed[partitions_def.name] = {k for k, v in found.items() if seen.get(k) != v}
    return LandingScan(fingerprints, changed)


def remember_landing_scan(instance: dg.DagsterInstance, scan: LandingScan) -> None:
    """Keep the scanned fingerprints (in the instance's key-value store, like a sensor cursor)
    after the runs of its changed partitions succeeded."""
    instance.run_storage.set_cursor_values(
        {_cursor_key(name): json.dumps(found, sort_keys=True)
         for name, found in scan.fingerprints.items()}
    )  # fmt: skip
