"""Typed column values: JSON payload → stored Python value → JSON output, with validation.

Stored forms are chosen so that comparison and JSON output are cheap: strings and GUIDs as `str`
(GUIDs lower-case), whole numbers as `int`, decimals as `Decimal`, doubles as `float`, dates as
`YYYY-MM-DD` and date-times as `YYYY-MM-DDTHH:MM:SSZ` (UTC) strings.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from customer360.emulator import errors
from customer360.emulator.odata_literals import DATE_RE, DATETIME_RE, GUID_RE, Literal
from customer360.emulator.schema import DECIMAL_TYPES, INTEGER_TYPES, STRING_TYPES, Column, Table

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


_now_cache: list = [0, ""]


def utc_now_text() -> str:
    """Current UTC time as Dataverse writes createdon/modifiedon (whole seconds, cached)."""
    second = int(time.time())
    if _now_cache[0] != second:
        text = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _now_cache[0], _now_cache[1] = second, text
    return _now_cache[1]


def normalize_datetime(text: str) -> str | None:
    """ISO date or date-time (any offset) → `YYYY-MM-DDTHH:MM:SSZ`, or None if unreadable."""
    if DATE_RE.fullmatch(text):
        return f"{text}T00:00:00Z"
    if not DATETIME_RE.fullmatch(text):
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_date(text: str) -> str | None:
    if DATE_RE.fullmatch(text):
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            return None
        return text
    return None


def _range_error(table: Table, column: Column, value: object) -> errors.DataverseError:
    return errors.DataverseError(
        400,
        errors.VALIDATION_ERROR,
        f"A validation error occurred.  The value {value} of '{column.name}' on record of type "
        f"'{table.logical_name}' is outside the valid range.",
    )


def coerce_payload_value(table: Table, column: Column, value: object) -> object:
    """Validate one JSON value for a column and return the stored form (raises DataverseError)."""
    if value is None:
        return None
    coerce = _COERCE_BY_TYPE.get(column.type)
    if coerce is None:
        raise errors.invalid_property(column.name, table.logical_name)
    return coerce(table, column, value)


def _coerce_file(table: Table, column: Column, value: object) -> object:
    raise errors.bad_request(
        f"The file column '{column.name}' is set with PATCH <set>(<id>)/{column.name} and a "
        "binary body, not in the record's JSON.",
        errors.INVALID_ARGUMENT,
    )


def _coerce_string(table: Table, column: Column, value: object) -> object:
    if not isinstance(value, str):
        raise _convert_error(table, value, column)
    if column.max_length is not None and len(value) > column.max_length:
        raise errors.DataverseError(
            400,
            errors.VALIDATION_ERROR,
            f"A validation error occurred.  The length of the '{column.name}' attribute of "
            f"the '{table.logical_name}' entity exceeded the maximum allowed length of "
            f"'{column.max_length}'.",
        )
    return value


def _coerce_whole(table: Table, column: Column, value: object) -> object:
    """Integer, BigInt, Picklist, State and Status: a JSON integer (never a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _convert_error(table, value, column)
    if column.type == "Picklist":
        assert column.options is not None
        if value not in column.options:
            accepted = ",".join(str(k) for k in column.options)
            raise errors.DataverseError(
                400,
                errors.VALIDATION_ERROR,
                f"A validation error occurred.  The value {value} of '{column.name}' on "
                f"record of type '{table.logical_name}' is outside the valid range. "
                f"Accepted Values: {accepted}",
            )
    elif column.type == "Integer" and not INT32_MIN <= value <= INT32_MAX:
        raise _convert_error(table, value, column)
    _check_range(table, column, value)
    return value


def _coerce_decimal(table: Table, column: Column, value: object) -> object:
    """Decimal and Money: stored as `Decimal`, rounded to the column's precision."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _convert_error(table, value, column)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _convert_error(table, value, column) from None
    if column.precision is not None:
        number = number.quantize(Decimal(1).scaleb(-column.precision))
    _check_range(table, column, number)
    return number


def _coerce_double(table: Table, column: Column, value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _convert_error(table, value, column)
    number = float(value)
    if column.precision is not None:
        number = round(number, column.precision)
    _check_range(table, column, number)
    return number


def _coerce_boolean(table: Table, column: Column, value: object) -> object:
    if not isinstance(value, bool):
        raise _convert_error(table, value, column)
    return value


def _coerce_guid(table: Table, column: Column, value: object) -> object:
    if not isinstance(value, str) or not GUID_RE.fullmatch(value):
        raise _convert_error(table, value, column)
    return value.lower()


def _coerce_datetime(table: Table, column: Column, value: object) -> object:
    if not isinstance(value, str):
        raise _convert_error(table, value, column)
    if column.date_format == "DateOnly":
        # Dataverse accepts a date-time for a date-only column and keeps the date part.
        text = value[:10] if DATETIME_RE.fullmatch(value) else value
        normalized = normalize_date(text)
    else:
        normalized = normalize_datetime(value)
    if normalized is None:
        raise _convert_error(table, value, column)
    return normalized


_COERCE_BY_TYPE = {
    "File": _coerce_file,
    **dict.fromkeys(STRING_TYPES, _coerce_string),
    **dict.fromkeys((*INTEGER_TYPES, "Picklist", "State", "Status"), _coerce_whole),
    **dict.fromkeys(DECIMAL_TYPES, _coerce_decimal),
    "Double": _coerce_double,
    "Boolean": _coerce_boolean,
    "Uniqueidentifier": _coerce_guid,
    "DateTime": _coerce_datetime,
}


def _check_range(table: Table, column: Column, value: object) -> None:
    if column.min_value is not None and value < column.min_value:  # type: ignore[operator]
        raise _range_error(table, column, value)
    if column.max_value is not None and value > column.max_value:  # type: ignore[operator]
        raise _range_error(table, column, value)


def _convert_error(table: Table, value: object, column: Column) -> errors.DataverseError:
    shown: object = value
    if isinstance(value, bool):
        shown = "true" if value else "false"  # JSON spelling, as the OData reader reports it
    return errors.payload_error(
        table.entity_set,
        f"Cannot convert the literal '{shown}' to the expected type '{column.edm_type}'.",
    )


def coerce_literal(table: Table, column: Column, literal: Literal) -> object:
    """An OData URL literal (key or filter) → stored form for comparison with the column."""
    if literal.kind == "null":
        return None
    col_type = column.type
    kind = literal.kind
    value = literal.value
    if col_type in STRING_TYPES and kind == "string":
        return value
    if (col_type in INTEGER_TYPES or col_type in ("Picklist", "State", "Status")) and kind == "int":
        return value
    if col_type in DECIMAL_TYPES and kind in ("int", "decimal", "double"):
        return Decimal(str(value))
    if col_type == "Double" and kind in ("int", "decimal", "double"):
        return float(value)  # type: ignore[arg-type]
    if col_type == "Boolean" and kind == "bool":
        return value
    if (col_type == "Uniqueidentifier" or column.is_lookup) and kind in ("guid", "string"):
        text = str(value)
        if GUID_RE.fullmatch(text):
            return text.lower()
    if col_type == "DateTime" and kind in ("date", "datetime", "string"):
        text = str(value)
        if column.date_format == "DateOnly":
            normalized = normalize_date(text[:10])
        else:
            normalized = normalize_datetime(text)
        if normalized is not None:
            return normalized
    raise errors.bad_request(
        f"A binary operator with incompatible types was detected. Found operand types "
        f"'{column.edm_type}' and literal '{value}' for column '{column.name}'.",
        errors.QUERY_NOT_SUPPORTED,
    )


def to_json_value(column: Column, value: object) -> object:
    """Stored form → JSON-ready value."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return value


def column_coercer(table: Table, column: Column) -> Callable[[object], object]:
    """A fast validator for one column (same results and errors as coerce_payload_value): the
    common, valid value is checked inline; anything else takes the general path."""
    if column.type in STRING_TYPES and column.max_length is not None:
        return _string_coercer(table, column, column.max_length)
    if column.type in INTEGER_TYPES:
        return _integer_coercer(table, column)
    if column.type in DECIMAL_TYPES and column.precision is not None:
        return _decimal_coercer(table, column, column.precision)
    if column.type == "Double":
        return _double_coercer(table, column)
    if column.type == "DateTime" and column.date_format == "DateOnly":
        return _date_only_coercer(table, column)
    return lambda value: coerce_payload_value(table, column, value)


def _string_coercer(table: Table, column: Column, limit: int) -> Callable[[object], object]:
    def string(value: object) -> object:
        if value.__class__ is str and len(value) <= limit:  # type: ignore[arg-type]
            return value
        return coerce_payload_value(table, column, value)

    return string


def _integer_coercer(table: Table, column: Column) -> Callable[[object], object]:
    if column.type == "BigInt":
        low = column.min_value if column.min_value is not None else -(2**63)
        high = column.max_value if column.max_value is not None else 2**63 - 1
    else:
        low = max(INT32_MIN, column.min_value) if column.min_value is not None else INT32_MIN
        high = min(INT32_MAX, column.max_value) if column.max_value is not None else INT32_MAX

    def integer(value: object) -> object:
        if value.__class__ is int and low <= value <= high:  # type: ignore[operator]
            return value
        return coerce_payload_value(table, column, value)

    return integer


def _decimal_coercer(table: Table, column: Column, precision: int) -> Callable[[object], object]:
    quantum = Decimal(1).scaleb(-precision)
    low, high = column.min_value, column.max_value

    def decimal(value: object) -> object:
        kind = value.__class__
        if kind is float or kind is int:
            try:  # as the general path: the JSON number's text, rounded to the precision
                number = Decimal(repr(value) if kind is float else value).quantize(quantum)  # type: ignore[arg-type]
            except (InvalidOperation, ValueError):
                number = None  # NaN, infinity or too many digits: the general path says so
            if (
                number is not None
                and (low is None or number >= low)
                and (high is None or number <= high)
            ):
                return number
        return coerce_payload_value(table, column, value)

    return decimal


def _double_coercer(table: Table, column: Column) -> Callable[[object], object]:
    precision, low, high = column.precision, column.min_value, column.max_value

    def double(value: object) -> object:
        if value.__class__ is float:
            number = value if precision is None else round(value, precision)  # type: ignore[call-overload]
            if (low is None or number >= low) and (high is None or number <= high):
                return number
        return coerce_payload_value(table, column, value)

    return double


def _date_only_coercer(table: Table, column: Column) -> Callable[[object], object]:
    def date_only(value: object) -> object:
        if value.__class__ is str and len(value) == 10 and DATE_RE.fullmatch(value):  # type: ignore[arg-type]
            try:
                dt.date.fromisoformat(value)  # type: ignore[arg-type]
                return value
            except ValueError:
                pass
        return coerce_payload_value(table, column, value)

    return date_only
