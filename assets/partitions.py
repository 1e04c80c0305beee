"""Every partitions definition of the graph, defined once and imported everywhere."""

from __future__ import annotations

import dagster as dg

#: One partition per Synapse Link incremental export folder (`2024-01-05T10.15.00Z`), or per day
#: of `SinkModifiedOn` (`2024-01-05`) for the non-incremental layout.
dataverse_exports = dg.DynamicPartitionsDefinition(name="dataverse_export")

#: One partition per day on which finance files were dropped in landing/finance/.
finance_drops = dg.DynamicPartitionsDefinition(name="finance_drop")


def crm_drops(source: str) -> dg.DynamicPartitionsDefinition:
    """One partition per day on which a configured CSV source's files were dropped."""
    return _CRM_DROPS.setdefault(source, dg.DynamicPartitionsDefinition(name=f"crm_{source}_drop"))


_CRM_DROPS: dict[str, dg.DynamicPartitionsDefinition] = {}
