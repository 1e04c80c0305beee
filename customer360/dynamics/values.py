"""Column values: source value → Web API JSON value (sanitise, coerce, check) and comparison.

`to_wire` turns one source value into what the Web API expects for the target attribute, applying
the column's rules (trim, length policy, option-set labels) and the attribute's limits; a value
that cannot be published raises `RowProblem` with a Dataverse-like code. `comparable` normalises
a wire value or a value read back from the Web API so that change detection compares like with
like (numbers by value at the attribute's precision, dates as dates, "" as null).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from customer360.dynamics.metadata import (
    CHOICE_TYPES,
    DECIMAL_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    STRING_TYPES,
    AttributeMetadata,
)
from customer360.dynamics.spec import Coercion, LengthPolicy, Rules

# Codes for problems found before sending (the server's codes where one exists).
INVALID_VALUE = "InvalidValue"
VALUE_TOO_LONG = "0x80044331"  # the server's validation error code for max length
REQUIRED_FIELD_MISSING = "0x80040200"
INVALID_STATE_STATUS = "0x80048408"
INVALID_OWNER_ID = "0x80040229"
LOOKUP_NOT_FOUND = "0x80040217"
RECORD_NOT_FOUND = "RecordNotFound"
RECORD_EXISTS = "RecordAlreadyExists"
DUPLICATE_SOURCE_KEY = "DuplicateSourceKey"
#: two source keys Dataverse would treat as one record (case-insensitive alternate keys)
KEY_CASE_COLLISION = "KeyCaseCollision"
#: two source keys equal once their leading/trailing blanks are trimmed
KEY_BLANK_COLLISION = "KeyBlankCollision"
MISSING_KEY = "MissingKey"

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class RowProblem(Exception):
    """A row cannot be published as it is; carries a code and a message naming the column."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def coercion_for(attr: AttributeMetadata) -> Coercion:
    """The default coercion for a target attribute type."""
    found = _KIND_BY_TYPE.get(attr.attribute_type)
    if found is not None:
        return found
    t = attr.attribute_type
    if t in STRING_TYPES:
        return Coercion.STRING
    if t in INTEGER_TYPES:
        return Coercion.INTEGER
    if t in DECIMAL_TYPES:
        return Coercion.DECIMAL
    if t in FLOAT_TYPES:
        return Coercion.FLOAT
    if t == "Boolean":
        return Coercion.BOOLEAN
    if t == "DateTime":
        return Coercion.DATE if attr.date_only else Coercion.DATETIME
    if t == "Uniqueidentifier":
        return Coercion.GUID
    if t in CHOICE_TYPES:
        return Coercion.CHOICE
    return Coercion.STRING


INTEGER = Coercion.INTEGER
_KIND_BY_TYPE: dict[str, Coercion] = {
    **dict.fromkeys(STRING_TYPES, Coercion.STRING),
    **dict.fromkeys(INTEGER_TYPES, Coercion.INTEGER),
    **dict.fromkeys(DECIMAL_TYPES, Coercion.DECIMAL),
    **dict.fromkeys(FLOAT_TYPES, Coercion.FLOAT),
    "Boolean": Coercion.BOOLEAN,
    "Uniqueidentifier": Coercion.GUID,
    **dict.fromkeys(CHOICE_TYPES, Coercion.CHOICE),
}  # DateTime depends on the attribute's format: not here


def to_wire(
    value: Any,
    attr: AttributeMetadata,
    rules: Rules,
    coercion: Coercion | None = None,
    labels: Mapping[str, int] | bool = False,
) -> Any:
    """One source value as the JSON value to send; None means null. Raises RowProblem."""
    # Fast paths for the common cases (a publish calls this once per cell): same results as
    # the general code below, without its checks that cannot apply.
    cls = value.__class__
    if cls is str and coercion is None and not labels:
        kind = _KIND_BY_TYPE.get(attr.attribute_type)
        if kind is Coercion.STRING:
            text = value.strip() if rules.trim else value
            limit = attr.max_length
            if text and (limit is None or limit <= 0 or len(text) <= limit):
                return text
    elif cls is int and coercion is None and _KIND_BY_TYPE.get(attr.attribute_type) is INTEGER:
        return _range(value, attr)
    elif (
        cls is float
        and coercion is None
        and _KIND_BY_TYPE.get(attr.attribute_type) is Coercion.FLOAT
        and math.isfinite(value)
    ):
        precision = attr.precision
        return _range(value if precision is None else round(value, precision), attr)
    name = attr.logical_name
    if isinstance(value, str) and rules.trim:
        value = value.strip()
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    kind = coercion or coercion_for(attr)
    try:
        if kind is Coercion.STRING:
            return _string(value, attr, rules)
        if kind is Coercion.INTEGER:
            return _range(_integer(value), attr)
        if kind is Coercion.DECIMAL:
            number = _decimal(value, attr)
            _range(number, attr)
            return int(number) if number == number.to_integral_value() else float(number)
        if kind is Coercion.FLOAT:
            number = float(value)
            if math.isinf(number):
                raise ValueError("infinite")
            if attr.precision is not None:
                number = round(number, attr.precision)
            return _range(number, attr)
        if kind is Coercion.BOOLEAN:
            return _boolean(value)
        if kind is Coercion.DATE:
            return _date(value).isoformat()
        if kind is Coercion.DATETIME:
            return _datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind is Coercion.GUID:
            return str(uuid.UUID(str(value)))
        if kind is Coercion.CHOICE:
            return _choice(value, attr, labels)
    except RowProblem:
        raise
    except (ValueError, TypeError, InvalidOperation, ArithmeticError) as exc:
        raise RowProblem(
            INVALID_VALUE, f"column {name!r}: {value!r} is not a valid {kind.value} ({exc})"
        ) from None
    raise AssertionError(f"unhandled coercion {kind}")


def converter(
    attr: AttributeMetadata,
    rules: Rules,
    coercion: Coercion | None = None,
    labels: Mapping[str, int] | bool = False,
) -> Callable[[Any], Any]:
    """`to_wire` for one column, with the attribute's type, limits and rules worked out once.

    A publish converts every cell, so the checks that depend only on the column are done here,
    not per value; the returned function handles the common value types inline and hands every
    other value to `to_wire` itself, so results and errors are exactly `to_wire`'s.
    """

    def general(value: Any) -> Any:
        return to_wire(value, attr, rules, coercion, labels)

    if coercion is not None or labels:
        return general
    kind = coercion_for(attr)
    if kind is Coercion.STRING:
        return _string_converter(attr, rules, general)
    if kind is Coercion.DATE:

        def date(value: Any) -> Any:
            if value.__class__ is str:
                text = value.strip()  # `_date` strips whatever the rules say
                if text and "T" not in text and " " not in text:
                    try:
                        return dt.date.fromisoformat(text).isoformat()
                    except ValueError:
                        pass  # to_wire raises the row's error
            return general(value)

        return date
    if kind is Coercion.DECIMAL:
        return _decimal_converter(attr, general)
    if kind is Coercion.FLOAT:
        return _float_converter(attr, general)
    return general


def _float_converter(
    attr: AttributeMetadata, general: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    precision = attr.precision

    def double(value: Any) -> Any:
        if value.__class__ is float and math.isfinite(value):
            return _range(value if precision is None else round(value, precision), attr)
        return general(value)

    return double


def whole_number(value: Any, attr: AttributeMetadata) -> int | None:
    """`value` as `to_wire` gives it when it is a plain int for a whole-number column (range
    checked, RowProblem when outside); None for anything else (use `to_wire`)."""
    if value.__class__ is int and _KIND_BY_TYPE.get(attr.attribute_type) is INTEGER:
        return _range(value, attr)
    return None


def whole_numbers(values: list[Any], attr: AttributeMetadata) -> list[int] | None:
    """`whole_number` for a whole column at once: the values themselves when every one is a
    plain int within the column's range, else None (convert them one by one)."""
    if not values or set(map(type, values)) != {int}:
        return None
    if _KIND_BY_TYPE.get(attr.attribute_type) is not INTEGER:
        return None
    low, high = min(values), max(values)
    if (attr.min_value is not None and low < attr.min_value) or (
        attr.max_value is not None and high > attr.max_value
    ):
        return None
    return values


def _string_converter(
    attr: AttributeMetadata, rules: Rules, general: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    limit = attr.max_length if attr.max_length is not None and attr.max_length > 0 else None
    trim = rules.trim

    def string(value: Any) -> Any:
        if value.__class__ is str:
            text = value.strip() if trim else value
            if text and (limit is None or len(text) <= limit):
                return text
        return general(value)

    return string


def _decimal_converter(
    attr: AttributeMetadata, general: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    quantum = None if attr.precision is None else Decimal(1).scaleb(-attr.precision)

    def decimal(value: Any) -> Any:
        if value.__class__ is float and math.isfinite(value):
            try:
                number = Decimal(repr(value))  # what `_decimal`'s str() gives for a float
                if quantum is not None:
                    number = number.quantize(quantum, rounding=ROUND_HALF_EVEN)
            except InvalidOperation:
                return general(value)  # to_wire names the problem
            _range(number, attr)
            return int(number) if number == number.to_integral_value() else float(number)
        return general(value)

    return decimal


def _string(value: Any, attr: AttributeMetadata, rules: Rules) -> str | None:
    text = value if isinstance(value, str) else _plain_text(value)
    if rules.trim:
        text = text.strip()
    if text == "":
        return None
    limit = attr.max_length
    if limit is not None and limit > 0 and len(text) > limit:
        if rules.length_policy is LengthPolicy.TRUNCATE:
            text = text[:limit].rstrip() if rules.trim else text[:limit]
        else:
            raise RowProblem(
                VALUE_TOO_LONG,
                f"column {attr.logical_name!r}: length {len(text)} exceeds the maximum of {limit}",
            )
    return text


def _plain_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        if value != int(value):
            raise ValueError("has a fractional part")
        return int(value)
    return int(str(value).strip())


def _decimal(value: Any, attr: AttributeMetadata) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    if not number.is_finite():
        raise ValueError("not finite")
    if attr.precision is not None:
        number = number.quantize(Decimal(1).scaleb(-attr.precision), rounding=ROUND_HALF_EVEN)
    return number


def _range(number: Any, attr: AttributeMetadata) -> Any:
    if attr.min_value is not None and number < attr.min_value:
        raise RowProblem(
            INVALID_VALUE,
            f"column {attr.logical_name!r}: {number} is below the minimum {attr.min_value:g}",
        )
    if attr.max_value is not None and number > attr.max_value:
        raise RowProblem(
            INVALID_VALUE,
            f"column {attr.logical_name!r}: {number} is above the maximum {attr.max_value:g}",
        )
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true/false")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if "T" in text or " " in text:
        return _datetime(text).date()
    return dt.date.fromisoformat(text)


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:  # naive values are taken as UTC (the lake stores UTC)
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _choice(value: Any, attr: AttributeMetadata, labels: Mapping[str, int] | bool) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        text = str(value).strip()
        if isinstance(labels, Mapping):
            number = labels.get(text)
            if number is None:
                folded = {k.casefold(): v for k, v in labels.items()}
                number = folded.get(text.casefold())
        elif labels:
            number = attr.option_value(text)
        if number is None and text.lstrip("-").isdigit():
            number = int(text)
        if number is None:
            known = sorted(o.label for o in attr.options if o.label) or sorted(
                labels if isinstance(labels, Mapping) else []
            )
            raise RowProblem(
                INVALID_VALUE,
                f"column {attr.logical_name!r}: {text!r} is not an option label ({known})",
            )
    if attr.options and number not in attr.option_values:
        raise RowProblem(
            INVALID_VALUE,
            f"column {attr.logical_name!r}: {number} is not a value of its option set "
            f"{sorted(attr.option_values)}",
        )
    return number


def comparable(value: Any, attr: AttributeMetadata | None) -> Any:
    """A normalised form for change detection; applies equally to sent and read-back values."""
    if value is None or value == "":
        return None
    if attr is None:
        return value
    kind = coercion_for(attr)
    try:
        if kind is Coercion.STRING:
            return str(value)
        if kind in (Coercion.INTEGER, Coercion.CHOICE):
            return int(value)
        if kind is Coercion.DECIMAL:
            return _decimal(value, attr).normalize()
        if kind is Coercion.FLOAT:
            number = float(value)
            return round(number, attr.precision) if attr.precision is not None else number
        if kind is Coercion.BOOLEAN:
            return _boolean(value)
        if kind is Coercion.DATE:
            return _date(value)
        if kind is Coercion.DATETIME:
            return _datetime(value)
        if kind is Coercion.GUID:
            return uuid.UUID(str(value))
    except (ValueError, TypeError, InvalidOperation):
        return value
    return value
