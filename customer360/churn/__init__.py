"""KKBox-format churn prediction, Dagster-free: readers, generator, labels, features, model,
profit targeting, dashboard and alert channels. See docs/churn.md.

Modules (each does one job): `readers`, `generator`, `ids`, `periods`, `transactions`,
`labels`, `features`, `model`, `targeting`, `enrichment`, `dashboard`, `notifier`.
"""

from customer360.churn.dashboard import CHART_IDS, DashboardCurves, render_dashboard
from customer360.churn.enrichment import predictions_to_customers, risk_band, risk_band_column
from customer360.churn.features import (
    ACTIVITY_FEATURES,
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    TRANSACTION_FEATURES,
    activity_features,
    features_for_periods,
    period_features,
    transaction_features,
)
from customer360.churn.generator import generate_kkbox
from customer360.churn.ids import msno_column, msno_for_customer
from customer360.churn.labels import (
    churn_history,
    cross_check_labels,
    label_period,
    label_periods,
    scoring_candidates,
)
from customer360.churn.model import (
    ModelBundle,
    load_model,
    predict_churn,
    predict_churn_spark,
    save_model,
    train_churn_model,
)
from customer360.churn.notifier import (
    ChurnAlert,
    FileQueueNotifier,
    Notifier,
    SmtpNotifier,
    WebhookNotifier,
    build_alert,
)
from customer360.churn.readers import (
    KKBoxFileError,
    read_members,
    read_train,
    read_transactions,
    read_user_logs,
)
from customer360.churn.targeting import (
    RetentionEconomics,
    ThresholdChoice,
    choose_threshold,
    profit_curve,
)
from customer360.churn.transactions import (
    subscription_windows,
    transactions_clean,
    transactions_enhanced,
)

__all__ = [
    "ACTIVITY_FEATURES",
    "CATEGORICAL_FEATURES",
    "CHART_IDS",
    "FEATURE_COLUMNS",
    "TRANSACTION_FEATURES",
    "ChurnAlert",
    "DashboardCurves",
    "FileQueueNotifier",
    "KKBoxFileError",
    "ModelBundle",
    "Notifier",
    "RetentionEconomics",
    "SmtpNotifier",
    "ThresholdChoice",
    "WebhookNotifier",
    "activity_features",
    "build_alert",
    "choose_threshold",
    "churn_history",
    "cross_check_labels",
    "features_for_periods",
    "generate_kkbox",
    "label_period",
    "label_periods",
    "load_model",
    "msno_column",
    "msno_for_customer",
    "period_features",
    "predict_churn",
    "predict_churn_spark",
    "predictions_to_customers",
    "profit_curve",
    "read_members",
    "read_train",
    "read_transactions",
    "read_user_logs",
    "render_dashboard",
    "risk_band",
    "risk_band_column",
    "save_model",
    "scoring_candidates",
    "subscription_windows",
    "train_churn_model",
    "transaction_features",
    "transactions_clean",
    "transactions_enhanced",
]
