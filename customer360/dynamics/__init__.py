"""Dagster-free Dynamics 365 / Dataverse publish engine (see docs/publish.md).

The public API is re-exported here; everything else is an implementation detail.
"""

from customer360.dynamics.auth import DataverseConnection, Principal
from customer360.dynamics.engine import (
    PublishOptions,
    publish,
    publish_async,
    replay_deferred,
    replay_deferred_async,
)
from customer360.dynamics.errors import AuthenticationError, PublishConfigError
from customer360.dynamics.metrics import Progress, PublishMetrics, plot_throughput
from customer360.dynamics.outcomes import (
    BatchLogEntry,
    DeferredOp,
    FailedRow,
    InMemorySink,
    NullSink,
    OutcomeSink,
)
from customer360.dynamics.pacing import ServiceLimits
from customer360.dynamics.source import SourceError
from customer360.dynamics.spec import (
    Coercion,
    ColumnSpec,
    DeleteSpec,
    KeySpec,
    KeyStrategy,
    LengthPolicy,
    LookupBy,
    LookupSpec,
    Mode,
    NullPolicy,
    OwnerSpec,
    OwnerType,
    PublishSpec,
    Rules,
    SpecError,
    StateSpec,
    StateValue,
    load_spec,
    load_spec_yaml,
)
from customer360.dynamics.transport import TransportOptions

__all__ = [
    "AuthenticationError",
    "BatchLogEntry",
    "Coercion",
    "ColumnSpec",
    "DataverseConnection",
    "DeferredOp",
    "DeleteSpec",
    "FailedRow",
    "InMemorySink",
    "KeySpec",
    "KeyStrategy",
    "LengthPolicy",
    "LookupBy",
    "LookupSpec",
    "Mode",
    "NullPolicy",
    "NullSink",
    "OutcomeSink",
    "OwnerSpec",
    "OwnerType",
    "Principal",
    "Progress",
    "PublishConfigError",
    "PublishMetrics",
    "PublishOptions",
    "PublishSpec",
    "Rules",
    "ServiceLimits",
    "SourceError",
    "SpecError",
    "StateSpec",
    "StateValue",
    "TransportOptions",
    "load_spec",
    "load_spec_yaml",
    "plot_throughput",
    "publish",
    "publish_async",
    "replay_deferred",
    "replay_deferred_async",
]
