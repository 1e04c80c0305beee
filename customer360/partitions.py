"""Every partitions definition of the graph, defined once and imported everywhere."""

from __future__ import annotations

import dagster as dg

#: One partition per Synapse Link incremental export folder (`2024-01-05T10.15.00Z`), or per day
#: of `SinkModifiedOn` (`2024-01-05`) for the non-incremental layout.
dataverse_exports = dg.DynamicPartitionsDefinition(name="dataverse_export")

#: One partition per day on which finance files were dropped in landing/finance/.
finance_drops = dg.DynamicPartitionsDefinition(name="finance_drop")
