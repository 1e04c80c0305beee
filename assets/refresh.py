"""Run config and automation shared by the incrementally maintained assets."""

import dagster as dg
from pydantic import Field

#: Materialise when an upstream changed (and its blocking checks passed).
EAGER = dg.AutomationCondition.eager()


class RefreshConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description="Rebuild from all upstream data instead of applying only what changed "
        "(e.g. after changing standardisation code).",
    )
