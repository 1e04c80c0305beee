"""Asset keys that more than one module needs, defined once (keys mirror lake locations)."""

import dagster as dg

# silver
HISTORY_KEY = dg.AssetKey(["silver", "customer_history"])
CUSTOMER_KEY = dg.AssetKey(["silver", "customer"])
QUARANTINE_KEY = dg.AssetKey(["silver", "customer_quarantine"])
FINANCE_KEY = dg.AssetKey(["silver", "customer_finance"])

# gold: identity resolution and the profile
SOURCE_LINK_KEY = dg.AssetKey(["gold", "customer_source_link"])
MATCH_PAIRS_KEY = dg.AssetKey(["gold", "customer_match_pairs"])
CANDIDATES_KEY = dg.AssetKey(["gold", "match_candidates"])
PROFILE_KEY = dg.AssetKey(["gold", "customer_profile"])
SEGMENTS_KEY = dg.AssetKey(["gold", "customer_segments"])
LAKEDB_KEY = dg.AssetKey(["lakedb", "gold"])


# churn
def churn_key(name: str) -> dg.AssetKey:
    """churn/<name>: the KKBox retention tables (assets/churn.py, assets/churn_model.py)."""
    return dg.AssetKey(["churn", name])


PERIODS_KEY = churn_key("periods")
LABELS_KEY = churn_key("labels")
FEATURES_KEY = churn_key("features")
MODEL_KEY = dg.AssetKey(["churn", "model"])
PREDICTIONS_KEY = dg.AssetKey(["churn", "predictions"])
DASHBOARD_KEY = dg.AssetKey(["churn", "dashboard"])
CHURN_RISK_KEY = dg.AssetKey(["gold", "customer_churn_risk"])


def crm_bronze_key(source: str) -> dg.AssetKey:
    """bronze/crm_<source>: every row of every drop of a configured CSV source."""
    return dg.AssetKey(["bronze", f"crm_{source}"])


def crm_silver_key(source: str) -> dg.AssetKey:
    """silver/crm_<source>: the current, standardised and valid row per key."""
    return dg.AssetKey(["silver", f"crm_{source}"])


def crm_quarantine_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", f"crm_{source}_quarantine"])
