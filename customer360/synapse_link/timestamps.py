"""The two timestamp formats of a Synapse Link export: formatting and parsing.

- ``SinkCreatedOn``/``SinkModifiedOn``: ``M/d/yyyy h:mm:ss tt`` (``9/12/2021 10:05:07 AM``).
  Some exports show hour ``0`` with AM/PM (``1/1/2020 0:00:01 PM``); the hour is read as
  ``hour % 12`` plus 12 for PM, so ``12 AM`` and ``0 AM`` are midnight, ``12 PM`` and ``0 PM`` noon.
- every other dateTime: ISO 8601 with 7 fractional digits, ``2020-01-01T00:15:00.0000000Z``;
  dateTimeOffset with an offset, ``2020-01-01T00:15:00.0000000+00:00``.

Readers accept either format in any datetime column, fewer (or more, truncated) fraction digits,
a missing ``Z`` (read as UTC), a space instead of ``T``, unpadded fields and a date alone.
Values become UTC instants with microsecond precision (the 7th digit, 100 ns, is truncated).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from customer360.synapse_link.schema import TIMESTAMP_TYPE

EXPECTED_FORMATS = "ISO 8601 like 2020-01-01T00:15:00.0000000Z or M/d/yyyy h:mm:ss tt"

_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)
_US = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?"
    r"(?:\s*([AaPp][Mm]))?"
)


# ---------------------------------------------------------------------------------------------
# formatting (writer)


def _as_utc(value: datetime | date, column: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"column {column!r}: naive datetime {value!r}; use a tz-aware value")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"column {column!r}: expected datetime or date, got {type(value).__name__}")


def format_sink_timestamp(value: datetime | date, column: str = "SinkModifiedOn") -> str:
    """``M/d/yyyy h:mm:ss tt`` in UTC, as .NET writes it (seconds precision, 12 for 0/12 h)."""
    dt = _as_utc(value, column)
    hour12 = dt.hour % 12 or 12
    meridiem = "AM" if dt.hour < 12 else "PM"
    return f"{dt.month}/{dt.day}/{dt.year} {hour12}:{dt.minute:02d}:{dt.second:02d} {meridiem}"


def format_iso_timestamp(value: datetime | date, column: str = "", *, offset: bool = False) -> str:
    """``yyyy-MM-ddTHH:mm:ss.fffffffZ`` (or ``+00:00`` for dateTimeOffset) in UTC."""
    dt = _as_utc(value, column)
    zone = "+00:00" if offset else "Z"
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond:06d}0{zone}"
    )


# ---------------------------------------------------------------------------------------------
# parsing one value (the slow, authoritative path)


def parse_timestamp(text: str) -> datetime:
    """Parse one exported timestamp into an aware UTC datetime; ValueError says what is wrong."""
    value = text.strip()
    match = _ISO.fullmatch(value)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        result = _build(year, month, day, hour or "0", minute or "0", second, fraction)
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours > 23 or minutes > 59:
                raise ValueError(f"invalid UTC offset {zone!r}")
            result -= sign * timedelta(hours=hours, minutes=minutes)
        return result
    match = _US.fullmatch(value)
    if match:
        month, day, year, hour, minute, second, fraction, meridiem = match.groups()
        hour_number = int(hour)
        if meridiem:
            if hour_number > 12:
                raise ValueError(f"hour {hour_number} is not valid with {meridiem.upper()}")
            hour_number = hour_number % 12 + (12 if meridiem.upper() == "PM" else 0)
        return _build(year, month, day, str(hour_number), minute, second, fraction)
    raise ValueError(f"not a timestamp (expected {EXPECTED_FORMATS})")


def _build(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str,
    second: str | None,
    fraction: str | None,
) -> datetime:
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            micro,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise ValueError(f"invalid date/time ({exc})") from None


# ---------------------------------------------------------------------------------------------
# parsing a column (the fast path)

_ISO_CANONICAL = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$"
_ISO_WITHOUT_ZONE = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)$"
_NULL_STRING = pa.scalar(None, pa.string())
_NANOSECONDS = pa.timestamp("ns", tz="UTC")


def timestamps_fast(values: pa.Array) -> pa.Array:
    """Vectorised parse of the two canonical formats; null where a value needs the slow path.

    ``values`` has nulls for empty fields. The caller re-parses every non-null input whose result
    is null with :func:`parse_timestamp`, which accepts the variants or names the problem.
    """
    is_us = pc.match_substring(values, "/")
    any_us = pc.any(is_us).as_py()
    all_us = bool(any_us) and pc.all(is_us).as_py()
    parts = []
    if not all_us:
        parts.append(_iso_fast(pc.if_else(is_us, _NULL_STRING, values) if any_us else values))
    if any_us:
        parts.append(_us_fast(values if all_us else pc.if_else(is_us, values, _NULL_STRING)))
    return parts[0] if len(parts) == 1 else pc.coalesce(*parts)


def _iso_fast(iso: pa.Array) -> pa.Array:
    try:
        # the common case in one step: 7 fraction digits and a zone parse as nanoseconds;
        # the safe cast to µs refuses a non-zero 100 ns digit (truncated below instead)
        return pc.cast(pc.cast(iso, _NANOSECONDS), TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # no zone, a year outside 1677..2262, a variant or a bad value
    iso = pc.if_else(pc.match_substring_regex(iso, _ISO_CANONICAL), iso, _NULL_STRING)
    iso = pc.replace_substring_regex(iso, r"(\.\d{6})\d+", r"\1")  # 100 ns digit → µs
    iso = pc.replace_substring_regex(iso, _ISO_WITHOUT_ZONE, r"\1Z")  # no zone → UTC
    try:
        return pc.cast(iso, TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # an impossible date (Feb 30, hour 25) fails the whole cast: leave it to the slow path
        return pa.nulls(len(iso), TIMESTAMP_TYPE)


def _us_fast(us: pa.Array) -> pa.Array:
    parsed = _strptime_us(us)
    if pc.any(pc.and_(pc.is_valid(us), pc.is_null(parsed))).as_py():
        # hour 0 with AM/PM (1/1/2020 0:00:01 PM) reads as 12 → 12 AM is midnight, 12 PM noon
        twelve = pc.replace_substring_regex(us, r"^(\d{1,2}/\d{1,2}/\d{4}) 0:", r"\1 12:")
        parsed = pc.coalesce(parsed, _strptime_us(twelve))
    # strptime rolls 2/30 over to 3/2: keep only values whose day of month survived the parse
    day = pc.struct_field(pc.extract_regex(us, r"^\d{1,2}/(?P<d>\d{1,2})/"), [0])
    same_day = pc.equal(pc.day(parsed), pc.cast(day, pa.int64()))
    return pc.if_else(same_day, parsed, pa.scalar(None, parsed.type)).cast(TIMESTAMP_TYPE)


def _strptime_us(us: pa.Array) -> pa.Array:
    return pc.strptime(us, format="%m/%d/%Y %I:%M:%S %p", unit="us", error_is_null=True)
