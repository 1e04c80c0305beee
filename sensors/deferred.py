"""Deferred publish retries: when deferred operations of a publish target are due, request a run
of its asset in replay mode (only those operations are re-sent). One run key per deferral
generation, so a generation is replayed once; operations past their deadline or attempts end in
ops/publish_failed_rows during that replay."""

import datetime as dt
import hashlib

import dagster as dg

from assets.dynamics import PUBLISH_TARGETS, pending_deferred
from resources.lakehouse import LakehouseResource


def due_generations(lakehouse: LakehouseResource, now: dt.datetime) -> dict[str, tuple[str, int]]:
    """publish target → (generation fingerprint, due operations) for targets with due work."""
    out = {}
    for target in PUBLISH_TARGETS:
        ops = pending_deferred(lakehouse, target.name)
        due = [op for op in ops if op.next_attempt_at <= now]
        if due:
            # A generation = the pending set as it stands; a replay rewrites it (new attempts).
            text = "|".join(sorted(f"{op.key}:{op.attempts}:{op.deferred_at}" for op in ops))
            out[target.name] = (hashlib.sha256(text.encode()).hexdigest()[:16], len(due))
    return out


@dg.sensor(
    name="deferred_publish_sensor",
    minimum_interval_seconds=60,
    asset_selection=[dg.AssetKey(["dynamics", t.name]) for t in PUBLISH_TARGETS],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Replays deferred Dynamics operations when they are due.",
)
def deferred_publish_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
    due = due_generations(lakehouse, dt.datetime.now(dt.UTC))
    if not due:
        return dg.SkipReason("no deferred Dynamics operations are due")
    return [
        dg.RunRequest(
            run_key=f"deferred:{name}:{generation}",
            asset_selection=[dg.AssetKey(["dynamics", name])],
            run_config={"ops": {f"dynamics__{name}": {"config": {"replay_deferred_only": True}}}},
            tags={"customer360/trigger": "deferred-retry", "customer360/due_operations": str(n)},
        )
        for name, (generation, n) in sorted(due.items())
    ]
