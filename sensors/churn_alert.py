"""Churn alert: after each new churn/predictions materialisation, if more members than the
configured count are above the chosen threshold, run the alert job once (run key = that
materialisation), which sends the notification with the dashboard attached."""

import dagster as dg

from assets.keys import DASHBOARD_KEY, PREDICTIONS_KEY
from resources.churn import ChurnSettingsResource, NotifierResource
from resources.lakehouse import LakehouseResource


class AlertConfig(dg.Config):
    predictions_event_id: int


@dg.op(description="Send the churn alert through the configured channel.")
def send_churn_alert(
    context: dg.OpExecutionContext,
    config: AlertConfig,
    lakehouse: LakehouseResource,
    notifier: NotifierResource,
    churn: ChurnSettingsResource,
) -> None:
    # pandas and the churn library (scikit-learn) only in the alert's own run
    import pandas as pd

    from customer360.churn.notifier import build_alert

    predictions = lakehouse.read_arrow("churn", "predictions").to_pandas()
    threshold = float(predictions["threshold"].iloc[0])
    dashboard = context.instance.get_latest_materialization_event(DASHBOARD_KEY)
    path = None
    if dashboard is not None:
        meta = dashboard.asset_materialization.metadata
        path = meta["dashboard_path"].value if "dashboard_path" in meta else None
    # The month the predictions are about (the detected scoring month), not a setting.
    month = pd.Timestamp(predictions["period_start"].iloc[0]).strftime("%Y-%m")
    alert = build_alert(
        month, predictions, threshold,
        economics=churn.economics, dashboard_path=path,
    )  # fmt: skip
    notifier.notifier().send(alert)
    context.log.info(f"churn alert sent via {notifier.channel}: {alert.subject}")


@dg.job(name="churn_alert_job", description="Send the churn alert (requested by the sensor).")
def churn_alert_job() -> None:
    send_churn_alert()


@dg.sensor(
    name="churn_alert_sensor",
    job=churn_alert_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert when the members above the churn threshold pass the configured count.",
)
def churn_alert_sensor(context: dg.SensorEvaluationContext, churn: ChurnSettingsResource):
    records = context.instance.fetch_materializations(PREDICTIONS_KEY, limit=1).records
    if not records:
        return dg.SkipReason("no churn predictions yet")
    event = records[0]
    seen = int(context.cursor or 0)
    if event.storage_id <= seen:
        return dg.SkipReason("already evaluated the latest predictions")
    context.update_cursor(str(event.storage_id))
    meta = event.asset_materialization.metadata
    if "skipped" in meta:  # no KKBox drop: nothing was scored
        return dg.SkipReason(f"churn/predictions skipped: {meta['skipped'].value}")
    above = meta["members_above_threshold"].value
    if above <= churn.alert_min_members:
        return dg.SkipReason(
            f"{above} members above the threshold (alert at > {churn.alert_min_members})"
        )
    return dg.RunRequest(
        run_key=f"churn-alert:{event.storage_id}",
        run_config={
            "ops": {"send_churn_alert": {"config": {"predictions_event_id": event.storage_id}}}
        },
        tags={"customer360/members_above_threshold": str(above)},
    )
