"""KKBox-format churn prediction, Dagster-free: readers, generator, labels, features, model,
profit targeting, dashboard and alert channels. See docs/churn.md.

Modules (each does one job): `readers`, `generator`, `ids`, `periods`, `transactions`,
`labels`, `features`, `model`, `targeting`, `enrichment`, `dashboard`, `notifier`.

The names below are loaded on first use (PEP 562): importing one module of the package, e.g.
`customer360.churn.periods` for the sensors, does not import scikit-learn and matplotlib with
the model and the dashboard. Every run process of the daemon imports the code location, and most
never touch churn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name → the module of this package that defines it
_WHERE = {
    "ACTIVITY_FEATURES": "features",
    "CATEGORICAL_FEATURES": "features",
    "CHART_IDS": "dashboard",
    "ChurnAlert": "notifier",
    "DashboardCurves": "dashboard",
    "FEATURE_COLUMNS": "features",
    "FileQueueNotifier": "notifier",
    "KKBoxFileError": "readers",
    "ModelBundle": "model",
    "Notifier": "notifier",
    "RetentionEconomics": "targeting",
    "SmtpNotifier": "notifier",
    "TRANSACTION_FEATURES": "features",
    "ThresholdChoice": "targeting",
    "WebhookNotifier": "notifier",
    "activity_features": "features",
    "build_alert": "notifier",
    "choose_threshold": "targeting",
    "churn_history": "labels",
    "cross_check_labels": "labels",
    "features_for_periods": "features",
    "generate_kkbox": "generator",
    "label_period": "labels",
    "label_periods": "labels",
    "load_model": "model",
    "msno_column": "ids",
    "msno_for_customer": "ids",
    "period_features": "features",
    "predict_churn": "model",
    "predict_churn_spark": "model",
    "predictions_to_customers": "enrichment",
    "profit_curve": "targeting",
    "read_members": "readers",
    "read_train": "readers",
    "read_transactions": "readers",
    "read_user_logs": "readers",
    "render_dashboard": "dashboard",
    "risk_band": "enrichment",
    "risk_band_column": "enrichment",
    "save_model": "model",
    "scoring_candidates": "labels",
    "subscription_windows": "transactions",
    "train_churn_model": "model",
    "transaction_features": "features",
    "transactions_clean": "transactions",
    "transactions_enhanced": "transactions",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:  # what type checkers and IDEs see
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
