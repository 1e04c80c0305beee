"""The engine's knobs (`PublishOptions`); defaults suit a production org (docs/publish.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from customer360.dynamics.transport import TransportOptions


@dataclass(frozen=True)
class PublishOptions:
    """Engine knobs; defaults suit a production org (see docs/publish.md for tuning)."""

    bulk_batch_size: int = 1000  # rows per Create/Update/UpsertMultiple request
    batch_batch_size: int = 200  # requests per $batch (tables without bulk messages, deletes)
    chunk_rows: int = 5000  # source rows read, validated and classified at a time
    max_pending_rows: int = 25_000  # backpressure: rows classified but not finished
    max_attempts: int = 5  # sends of one operation in one run before it is deferred
    backoff_base_seconds: float = 0.25
    backoff_cap_seconds: float = 8.0
    defer_delay_seconds: float = 300.0  # first replay delay; doubles per further deferral
    defer_deadline_seconds: float = 86_400.0  # after this an operation fails for good
    max_total_attempts: int = 25  # across runs and replays
    enforce_application_required: bool = True
    progress_interval_seconds: float = 1.0
    transport: TransportOptions = field(default_factory=TransportOptions)
    max_url_length: int = 32_768
