"""silver/customer before the first Synapse Link export, whatever else has landed.

Identity resolution and the profile need no Dataverse attributes: a record is a record, whatever
its source. So with a second source alone the graph still builds its people, from an EMPTY
silver/customer (and quarantine) that has only the columns identity and profile read of it,
typed as a Synapse Link export types them (the export's first build then adds its other
columns). With no other source either (finance alone), the same empty tables give empty
identity, profile and segments, so every asset of a "Materialize all" gets a status. No
consumer state is recorded: the first build after the export lands rebuilds in full.
What genuinely needs Dataverse customers (finance joined to them, the deactivation target, which
reads the history) still skips or reports nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from customer360.lakehouse import DeltaLake, WriteResult
from customer360.lakehouse.incremental import current_result

OUTPUTS = (("silver", "customer"), ("silver", "customer_quarantine"))
_UTC = pa.timestamp("us", tz="UTC")
#: What identity (source `dataverse`: key cid, modified from modifiedon / SinkModifiedOn, extra
#: Id and createdon) and the profile (cid, Id, createdon, SinkModifiedOn for `as_of`) read.
EMPTY_CURRENT = pa.schema(
    [
        pa.field("Id", pa.string()),
        pa.field("cid", pa.int64()),
        pa.field("createdon", _UTC),
        pa.field("modifiedon", _UTC),
        pa.field("SinkModifiedOn", _UTC),
    ]
)


def no_export_reason(sources: Sequence[str]) -> str:
    if not sources:  # finance (or nothing) alone: every customer-dependent table is empty
        return (
            "no Synapse Link export landed in landing/dataverse/ yet and no other CRM source: "
            "no customers, so empty tables"
        )
    return (
        "no Synapse Link export landed in landing/dataverse/ yet: no Dataverse customers, so "
        f"empty tables; the customers of {', '.join(sources)} are resolved and profiled on "
        "their own"
    )


def empty_current(lake: DeltaLake) -> tuple[WriteResult, WriteResult]:
    """Create the empty silver/customer and quarantine (once: re-runs before the export leave
    them, and their versions, as they are)."""
    results = []
    for layer, table in OUTPUTS:  # the quarantine gets `failed_rules` with its first real rows
        if lake.exists(layer, table):
            results.append(current_result(lake, layer, table))
        else:
            results.append(lake.write_arrow(EMPTY_CURRENT.empty_table(), layer, table))
    return results[0], results[1]
