"""Landing-zone sensors: new complete Synapse Link folders and new finance files become dynamic
partitions and runs of their bronze assets (silver and gold follow by declarative automation).

Cursors keep what was already requested; run keys make a repeated request a no-op.
"""

import json

import dagster as dg

from assets.bronze import configured_tables
from customer360.partitions import dataverse_exports, finance_drops
from customer360.synapse_link import list_export_folders, read_entity
from resources.landing import LandingZoneResource

FINANCE_ASSET = dg.AssetKey(["bronze", "customer_finance"])


def dataverse_partition_keys(landing: LandingZoneResource) -> dict[str, str]:
    """Partition key → a fingerprint of its content, for every complete export unit.

    Incremental folders are immutable once complete: their name is the fingerprint. The
    non-incremental root layout is split into days of SinkModifiedOn; a day's fingerprint changes
    when rows are appended to it, so the day is ingested again (idempotently)."""
    fs = landing.filesystem("dataverse")
    keys: dict[str, str] = {}
    for folder in list_export_folders(fs):
        if folder.name:
            keys[folder.name] = folder.name
            continue
        for table in configured_tables():
            if table.name not in folder.entities:
                continue
            rows = read_entity(fs, folder, table.name).table
            days: dict[str, int] = {}
            for ts in rows.column("SinkModifiedOn").to_pylist():
                if ts is not None:
                    day = ts.date().isoformat()
                    days[day] = days.get(day, 0) + 1
            for day, n in days.items():
                keys[day] = f"{keys.get(day, '')}{table.name}:{n};"
    return keys


def finance_partition_keys(landing: LandingZoneResource) -> dict[str, str]:
    keys: dict[str, str] = {}
    for f in landing.list_files("finance", suffix=".csv"):
        keys[f.drop_day] = keys.get(f.drop_day, "") + f"{f.path}:{f.size}:{f.modified.timestamp()};"
    return keys


def _evaluate(
    context: dg.SensorEvaluationContext,
    partitions_def: dg.DynamicPartitionsDefinition,
    found: dict[str, str],
    assets: list[dg.AssetKey],
    what: str,
) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changed = {k: v for k, v in sorted(found.items()) if seen.get(k) != v}
    if not changed:
        return dg.SkipReason(f"no new or changed {what} ({len(found)} known)")
    known = set(context.instance.get_dynamic_partitions(partitions_def.name))
    new = [k for k in changed if k not in known]
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
        dynamic_partitions_requests=[partitions_def.build_add_request(new)] if new else [],
        cursor=json.dumps({**seen, **changed}, sort_keys=True),
    )


@dg.sensor(
    name="dataverse_landing_sensor",
    minimum_interval_seconds=60,
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
    minimum_interval_seconds=60,
    asset_selection=[FINANCE_ASSET],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed CSV files in landing/finance/ → bronze/customer_finance runs.",
)
def finance_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    found = finance_partition_keys(landing)
    return _evaluate(context, finance_drops, found, [FINANCE_ASSET], "finance files")


def register_landing_partitions(instance: dg.DagsterInstance, landing: LandingZoneResource) -> None:
    """Add the partitions the sensors would add (used by `customer360 run` without a daemon)."""
    for partitions_def, found in (
        (dataverse_exports, dataverse_partition_keys(landing)),
        (finance_drops, finance_partition_keys(landing)),
    ):
        known = set(instance.get_dynamic_partitions(partitions_def.name))
        new = [k for k in sorted(found) if k not in known]
        if new:
            instance.add_dynamic_partitions(partitions_def.name, new)
