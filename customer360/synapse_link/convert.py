"""Convert one column of CSV strings to its Arrow type, naming every value that does not fit.

Fast path: vectorised pyarrow compute over the whole column (a regex decides which values are in
the canonical form, then a cast). Only values the fast path could not convert go through the
per-value Python parser, which either accepts a tolerated variant or returns the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360.synapse_link.model import Attribute
from customer360.synapse_link.schema import arrow_type
from customer360.synapse_link.timestamps import parse_timestamp, timestamps_fast

_GUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
_GUID_PY = re.compile(_GUID[1:-1])
_INTEGER_PY = re.compile(r"[+-]?\d+")
_NUMBER = r"^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NUMBER_PY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# Digits that can never overflow the type, so the cast after this regex cannot fail.
_INT_SAFE = {"int32": r"^-?\d{1,9}$", "int64": r"^-?\d{1,18}$"}
_BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False}
_VALUE_IN_REASON = 80


def convert_column(strings: pa.Array, attribute: Attribute) -> tuple[pa.Array, dict[int, str]]:
    """Typed column from a string column (nulls = empty fields) and {row index: reason} for
    the values that do not fit the attribute's type (their result is null)."""
    if attribute.data_type == "string":
        return strings, {}
    target = arrow_type(attribute)
    fast = _FAST[attribute.data_type](strings, attribute, target)
    failed = pc.and_(pc.is_valid(strings), pc.is_null(fast))
    if not pc.any(failed).as_py():
        return fast, {}

    slow = _SLOW[attribute.data_type]
    reasons: dict[int, str] = {}
    fixed_mask = np.zeros(len(strings), dtype=bool)
    fixed_values: list[Any] = []
    for index in pc.indices_nonzero(failed).to_pylist():
        raw = strings[index].as_py()
        try:
            fixed_values.append(slow(raw, attribute))
            fixed_mask[index] = True
        except ValueError as exc:
            shown = raw if len(raw) <= _VALUE_IN_REASON else raw[:_VALUE_IN_REASON] + "…"
            reasons[index] = f"column {attribute.name!r} ({attribute.data_type}): {exc}: {shown!r}"
    if fixed_values:
        fast = pc.replace_with_mask(fast, pa.array(fixed_mask), pa.array(fixed_values, target))
    return fast, reasons


# ---------------------------------------------------------------------------------------------
# fast (vectorised) converters: null where the value is empty or needs the slow path


def _only(mask: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(mask, values, pa.scalar(None, values.type))


def _fast_guid(strings: pa.Array, _: Attribute, __: pa.DataType) -> pa.Array:
    return _only(pc.match_substring_regex(strings, _GUID), pc.ascii_lower(strings))


def _fast_integer(strings: pa.Array, attribute: Attribute, target: pa.DataType) -> pa.Array:
    safe = _only(pc.match_substring_regex(strings, _INT_SAFE[attribute.data_type]), strings)
    return pc.cast(safe, target)


def _fast_decimal(strings: pa.Array, attribute: Attribute, target: pa.DataType) -> pa.Array:
    precision, scale = attribute.decimal_precision_scale
    integer_digits = precision - scale
    whole = rf"\d{{1,{integer_digits}}}" if integer_digits else "0"
    fraction = rf"(\.\d{{1,{scale}}})?" if scale else ""
    safe = _only(pc.match_substring_regex(strings, rf"^-?{whole}{fraction}$"), strings)
    return pc.cast(safe, target)


def _fast_double(strings: pa.Array, _: Attribute, target: pa.DataType) -> pa.Array:
    numbers = pc.cast(_only(pc.match_substring_regex(strings, _NUMBER), strings), target)
    return _only(pc.is_finite(numbers), numbers)  # 1e999 parses as inf: let the slow path say so


def _fast_boolean(strings: pa.Array, _: Attribute, target: pa.DataType) -> pa.Array:
    lowered = pc.ascii_lower(strings)
    known = pc.is_in(lowered, value_set=pa.array(list(_BOOLEAN_WORDS)))
    return pc.cast(_only(known, lowered), target)


def _fast_timestamp(strings: pa.Array, _: Attribute, __: pa.DataType) -> pa.Array:
    return timestamps_fast(strings)


_FAST: dict[str, Callable[[pa.Array, Attribute, pa.DataType], pa.Array]] = {
    "guid": _fast_guid,
    "int32": _fast_integer,
    "int64": _fast_integer,
    "decimal": _fast_decimal,
    "double": _fast_double,
    "boolean": _fast_boolean,
    "dateTime": _fast_timestamp,
    "dateTimeOffset": _fast_timestamp,
}


# ---------------------------------------------------------------------------------------------
# slow (per value) converters: accept tolerated variants, else raise ValueError(reason)


def _slow_guid(raw: str, _: Attribute) -> str:
    value = raw.strip()
    if value.startswith("{") and value.endswith("}"):
        value = value[1:-1]
    if not _GUID_PY.fullmatch(value):
        raise ValueError("not a GUID")
    return value.lower()


def _slow_integer(raw: str, attribute: Attribute) -> int:
    if not _INTEGER_PY.fullmatch(raw):
        raise ValueError("not a whole number")
    value = int(raw)
    low, high = _INT_RANGES[attribute.data_type]
    if not low <= value <= high:
        raise ValueError(f"out of range for {attribute.data_type}")
    return value


def _slow_decimal(raw: str, attribute: Attribute) -> Decimal:
    if not _NUMBER_PY.fullmatch(raw):
        raise ValueError("not a decimal number")
    precision, scale = attribute.decimal_precision_scale
    with localcontext() as context:
        context.prec = 200
        value = Decimal(raw)
        try:
            quantized = value.quantize(Decimal(1).scaleb(-scale))
        except InvalidOperation:
            raise ValueError(f"does not fit decimal({precision},{scale})") from None
        if quantized != value:
            raise ValueError(f"has more than {scale} decimal places")
        if abs(quantized) >= Decimal(10) ** (precision - scale):
            raise ValueError(
                f"does not fit decimal({precision},{scale}) "
                f"(at most {precision - scale} digits before the point)"
            )
    return quantized


def _slow_double(raw: str, _: Attribute) -> float:
    if not _NUMBER_PY.fullmatch(raw):
        raise ValueError("not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _slow_boolean(raw: str, _: Attribute) -> bool:
    try:
        return _BOOLEAN_WORDS[raw.strip().lower()]
    except KeyError:
        raise ValueError("not a boolean (expected True or False)") from None


def _slow_timestamp(raw: str, _: Attribute) -> Any:
    return parse_timestamp(raw)


_SLOW: dict[str, Callable[[str, Attribute], Any]] = {
    "guid": _slow_guid,
    "int32": _slow_integer,
    "int64": _slow_integer,
    "decimal": _slow_decimal,
    "double": _slow_double,
    "boolean": _slow_boolean,
    "dateTime": _slow_timestamp,
    "dateTimeOffset": _slow_timestamp,
}
