"""landing/kkbox/ → runs of the churn bronze assets, like the other landing areas.

Each churn bronze asset (churn/members, churn/transactions, churn/user_logs, churn/train_labels)
reads a fixed set of KKBox files (assets/churn.py FILES). The sensor fingerprints those files
(path, size, modification time: the files can be tens of GB, so their content is not read), and
requests one run of the assets whose files are all present and new or changed since its cursor;
the derived churn assets follow by automation. A table with a file still missing is reported in
the skip reason and not requested (its run would fail).
"""

import hashlib
import json
from pathlib import PurePosixPath

import dagster as dg

from assets.churn import FILES
from assets.skipping import KKBOX_AREA
from resources.landing import LandingZoneResource
from sensors.intervals import landing_sensor_interval


def kkbox_root_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["churn", table])


def kkbox_fingerprints(landing: LandingZoneResource) -> tuple[dict[str, str], list[str]]:
    """(table → fingerprint of its files, for the tables whose files are all present;
    the tables still missing a file)."""
    by_name = {PurePosixPath(f.path).name: f for f in landing.list_files(KKBOX_AREA, ".csv")}
    ready: dict[str, str] = {}
    incomplete: list[str] = []
    for table, names in FILES.items():
        files = [by_name.get(n) for n in names]
        if any(f is None for f in files):
            incomplete.append(table)
            continue
        ready[table] = ";".join(f"{f.path}:{f.size}:{f.modified.timestamp()}" for f in files)
    return ready, incomplete


def evaluate_kkbox(cursor: str | None, landing: LandingZoneResource):
    """The sensor's decision, separate from the decorator so it can be tested directly."""
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    ready, incomplete = kkbox_fingerprints(landing)
    changed = {t: v for t, v in sorted(ready.items()) if seen.get(t) != v}
    waiting = f"; waiting for files of {', '.join(incomplete)}" if incomplete else ""
    if not changed:
        return dg.SkipReason(f"no new or changed KKBox files ({len(ready)} tables known){waiting}")
    digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:16]
    request = dg.RunRequest(
        run_key=f"kkbox:{digest}",
        asset_selection=[kkbox_root_key(t) for t in changed],
        tags={"customer360/trigger": "KKBox files"},
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps({**seen, **changed}))


@dg.sensor(
    name="kkbox_landing_sensor",
    minimum_interval_seconds=landing_sensor_interval(),
    asset_selection=[kkbox_root_key(t) for t in FILES],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed KKBox files in landing/kkbox/ → runs of the churn bronze assets "
    "(the rest of the churn graph follows by automation).",
)
def kkbox_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    return evaluate_kkbox(context.cursor, landing)
