"""Stage 2a for rows that need no reads, a slice at a time and column by column.

`prepare_row` converts one row's cells one by one, paying a Python call per cell and a few
objects per row; a blind upsert or an append of a million rows spends most of its client CPU
there. Here each column of a slice is checked in bulk (C-level `map`, `min`, `max`, one regular
expression over a whole column) and converted with the same per-column converter only where a
bulk check cannot vouch for every value. The results and errors are `prepare_row`'s exactly
(pinned by `test_columnar_matches_prepare_row`): same wire values, same keys left out, and for a
bad row the problem of its first bad column, in column order.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from customer360.dynamics.metadata import AttributeMetadata
from customer360.dynamics.plan import TablePlan
from customer360.dynamics.prepare import column_program
from customer360.dynamics.spec import Coercion
from customer360.dynamics.values import INVALID_VALUE, RowProblem, coercion_for

_MISSING = object()  # a source column absent from the row
#: a float column's reprs, joined by commas, that are plain decimals (no exponent, not nan/inf)
_PLAIN_DECIMALS: dict[int, re.Pattern[str]] = {}


def supports(plan: TablePlan) -> bool:
    """Whether a plan's rows can be prepared here: no lookups or owner to resolve (rows that
    stream never have them) and one source column per target."""
    targets = [c.target for c in plan.columns]
    return (
        plan.owner is None
        and not any(c.lookup for c in plan.columns)
        and len(set(targets)) == len(targets)
    )


def prepare_values(
    plan: TablePlan, rows: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any] | None], dict[int, RowProblem]]:
    """Each row's attribute → wire value (None for a bad row), and the bad rows' problems by
    position. Only for plans `supports` accepts; state is the caller's (`resolve_state`)."""
    problems: dict[int, RowProblem] = {}
    outputs: list[list[Any]] = []
    targets: list[str] = []
    drop_nulls: list[int] = []
    for position, (source, target, ignore_null, convert, _lookup, _rules) in enumerate(
        column_program(plan)
    ):
        raws = [row.get(source, _MISSING) for row in rows]
        out = _convert_column(raws, plan.columns[position].attr, plan, position, convert)
        for i, value in enumerate(out):
            if value.__class__ is _Failed:
                problems.setdefault(i, value.problem)
        outputs.append(out)
        targets.append(target)
        if ignore_null and None in out:
            drop_nulls.append(position)
    values: list[dict[str, Any] | None] = [
        dict(zip(targets, cells, strict=True)) for cells in zip(*outputs, strict=True)
    ]
    if not outputs:
        values = [{} for _ in rows]
    for position in drop_nulls:  # `null_policy: ignore`: the attribute is left out
        target, out = targets[position], outputs[position]
        for i, value in enumerate(out):
            if value is None:
                del values[i][target]  # type: ignore[union-attr]
    for i in problems:
        values[i] = None
    return values, problems


class _Failed:
    """A cell whose row cannot be published (stands in the column's output)."""

    __slots__ = ("problem",)

    def __init__(self, problem: RowProblem) -> None:
        self.problem = problem


def _convert_column(
    raws: list[Any],
    attr: AttributeMetadata,
    plan: TablePlan,
    position: int,
    convert: Callable[[Any], Any],
) -> list[Any]:
    """One column's wire values, `_Failed` where its cell makes the row bad."""
    column = plan.columns[position]
    plain = column.spec.coerce is None and not column.spec.option_labels
    kind = coercion_for(attr) if plain else None
    if not raws:
        return []
    classes = set(map(type, raws))
    if kind is not None and len(classes) == 1:
        (cls,) = classes
        fast = _FAST.get((kind, cls))
        if fast is not None:
            out = fast(raws, attr, column.rules.trim)
            if out is not None:
                return out
    return _each(raws, convert, column.spec.source)


def _each(raws: list[Any], convert: Callable[[Any], Any], source: str) -> list[Any]:
    """Cell by cell, as `prepare_row` does (a missing column, then the converter)."""
    out: list[Any] = []
    for raw in raws:
        if raw is _MISSING:
            out.append(
                _Failed(
                    RowProblem(INVALID_VALUE, f"source column {source!r} is missing from the row")
                )
            )
            continue
        try:
            out.append(convert(raw))
        except RowProblem as problem:
            out.append(_Failed(problem))
    return out


# ---- bulk checks: each returns the column's values, or None when it cannot vouch for all of
# them (the column then goes cell by cell through the converter, which decides)


def _strings(raws: list[str], attr: AttributeMetadata, trim: bool) -> list[Any] | None:
    texts = list(map(str.strip, raws)) if trim else raws
    limit = attr.max_length if attr.max_length is not None and attr.max_length > 0 else None
    lengths = list(map(len, texts))
    if min(lengths) == 0 or (limit is not None and max(lengths) > limit):
        return None  # empty or too long somewhere: the converter says what each becomes
    return texts


def _integers(raws: list[int], attr: AttributeMetadata, trim: bool) -> list[Any] | None:
    if not _within(min(raws), max(raws), attr):
        return None
    return raws


def _doubles(raws: list[float], attr: AttributeMetadata, trim: bool) -> list[Any] | None:
    if not all(map(math.isfinite, raws)):
        return None
    out = raws if attr.precision is None else list(map(round, raws, repeat(attr.precision)))
    if not _within(min(out), max(out), attr):
        return None
    return out


def _decimals(raws: list[float], attr: AttributeMetadata, trim: bool) -> list[Any] | None:
    """Floats for a decimal column: the converter takes `Decimal(repr(value))` at the column's
    precision. A value whose repr already has no more decimals than that is unchanged by it,
    so it is sent as the float itself (a whole one as an int, as the converter does)."""
    precision = attr.precision
    # up to 10 decimals (Dataverse's most) a value under 1e16 stays within Decimal's 28 digits
    if precision is None or precision > 10 or not _integral_bounds(attr):
        return None
    pattern = _PLAIN_DECIMALS.get(precision)
    if pattern is None:
        pattern = _PLAIN_DECIMALS.setdefault(
            precision, re.compile(rf"(?:-?[0-9]+\.[0-9]{{1,{precision}}},)*")
        )
    if pattern.fullmatch(",".join(map(repr, raws)) + ",") is None:
        return None
    if not _within(min(raws), max(raws), attr):
        return None
    return [int(value) if value.is_integer() else value for value in raws]


def _dates(raws: list[str], attr: AttributeMetadata, trim: bool) -> list[Any] | None:
    """ISO dates for a date-only column (the converter strips whatever the rules say)."""
    texts = list(map(str.strip, raws))
    joined = "".join(texts)
    if min(map(len, texts)) == 0 or "T" in joined or " " in joined:
        return None
    try:
        return list(map(dt.date.isoformat, map(dt.date.fromisoformat, texts)))
    except ValueError:
        return None


def _within(low: Any, high: Any, attr: AttributeMetadata) -> bool:
    return (attr.min_value is None or low >= attr.min_value) and (
        attr.max_value is None or high <= attr.max_value
    )


def _integral_bounds(attr: AttributeMetadata) -> bool:
    """Bounds a float compares with as its shortest decimal (`Decimal(repr(x))`) does: whole
    numbers a double holds exactly (a float and its repr are on the same side of them)."""
    return all(
        bound is None or (float(bound).is_integer() and abs(bound) < 2**53)
        for bound in (attr.min_value, attr.max_value)
    )


_FAST: dict[tuple[Coercion, type], Callable[[list, AttributeMetadata, bool], list | None]] = {
    (Coercion.STRING, str): _strings,
    (Coercion.INTEGER, int): _integers,
    (Coercion.FLOAT, float): _doubles,
    (Coercion.DECIMAL, float): _decimals,
    (Coercion.DATE, str): _dates,
}
