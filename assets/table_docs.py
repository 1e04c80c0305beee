"""What the gold tables hold: the UI's asset descriptions and the lake database's table comments,
written once (column descriptions: customer360/column_docs.py)."""

from assets.keys import (
    CANDIDATES_KEY,
    MATCH_PAIRS_KEY,
    PROFILE_KEY,
    SEGMENTS_KEY,
    SOURCE_LINK_KEY,
)

_PROFILE = (
    "One row per real person (unified_customer_id, stable across runs): surviving identity and "
    "contact, the Dataverse records it covers, finance measures (total and average spend and "
    "income, spend-to-income ratio, months active), tenure, age band, value and life-stage "
    "segments, churn probability and risk band, data-quality flags. Age and tenure are as of the "
    "latest export day (00:00 UTC), so a re-run on the same data gives the same table."
)

TABLE_DESCRIPTIONS = {
    PROFILE_KEY: _PROFILE,
    SEGMENTS_KEY: "unified customer × segment membership (segment_type, segment).",
    SOURCE_LINK_KEY: "Every source record (source, source_key) → its unified_customer_id, with "
    "the rule, score and matched record that linked it, whether it is the profile's anchor, and "
    "the profile's size.",
    MATCH_PAIRS_KEY: "Which rule linked which two records in each profile: one row per matched "
    "pair with its deciding rule, score and every rule that matched it.",
    CANDIDATES_KEY: "Pairs scored between a rule's review threshold and its match threshold, in "
    "different profiles: for a person to confirm or reject.",
}
