"""Failure classification: what a response or exception means for the request that caused it.

THROTTLED → pause the principal for Retry-After and resend; AUTH → refresh the token once and
resend; TRANSIENT → immediate retries with backoff, then defer; TOO_LARGE → split the batch;
PERMANENT → the record(s) fail (a bulk request is bisected to find which).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import httpx

#: SQL deadlock (-2147204784, SQL 1205) and SQL timeout (-2147204783): retry, don't fail.
SQL_DEADLOCK = "0x80044150"
SQL_TIMEOUT = "0x80044151"
REQUEST_TOO_LARGE = "0x8004418a"
#: Service protection codes (api-limits): requests, execution time, concurrency.
THROTTLE_REASONS = {
    "0x80072322": "requests",
    "0x80072321": "execution_time",
    "0x80072326": "concurrency",
}
TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})


class FailureKind(StrEnum):
    THROTTLED = "throttled"
    AUTH = "auth"
    TRANSIENT = "transient"
    TOO_LARGE = "too_large"
    PERMANENT = "permanent"


def classify_status(status: int, code: str | None = None) -> FailureKind | None:
    """None for success; otherwise what kind of failure an HTTP status + Dataverse code is."""
    code = (code or "").lower()
    if 200 <= status < 300:
        return None
    if status == 429 or code in THROTTLE_REASONS:
        return FailureKind.THROTTLED
    if status == 401:
        return FailureKind.AUTH
    if code in (SQL_DEADLOCK, SQL_TIMEOUT):
        return FailureKind.TRANSIENT
    if status == 413 or code == REQUEST_TOO_LARGE:
        return FailureKind.TOO_LARGE
    if status in TRANSIENT_STATUSES:
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def classify_exception(exc: BaseException) -> FailureKind:
    """Timeouts and dropped/refused connections are transient; anything else is a bug."""
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def throttle_reason(code: str | None) -> str:
    return THROTTLE_REASONS.get((code or "").lower(), "unknown")


@dataclass
class RequestFailed(Exception):
    """A request ended in a non-success state after the transport's own handling.

    Never carries headers or tokens: only status, Dataverse code and message.
    """

    kind: FailureKind
    status: int | None
    code: str | None
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        status = "no response" if self.status is None else f"HTTP {self.status}"
        return f"{self.kind.value}: {status} {self.code or ''} {self.message}".strip()


class AuthenticationError(RuntimeError):
    """A principal could not obtain a token. Names the client id, never the secret."""


class PublishConfigError(RuntimeError):
    """The publish cannot start (bad metadata, unusable principal, spec/target mismatch)."""
