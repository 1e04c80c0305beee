"""One executor for the two non-OData query languages: FetchXML and Dataverse's SQL subset.

Both parse into a `Plan`: a root table, its columns, joined tables (inner or outer, by
`from`/`to` attributes), a condition tree over the joined rows, an order and paging. Conditions
compare case-insensitively, as Dataverse's SQL collation does; values arrive as text (FetchXML)
or SQL literals and are converted to each column's stored form first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from customer360.emulator import errors
from customer360.emulator.odata_literals import GUID_RE
from customer360.emulator.schema import STRING_TYPES, Column, Table
from customer360.emulator.store import Store
from customer360.emulator.values import normalize_date, normalize_datetime

Context = dict[str | None, dict | None]  # alias (None = root) → row
Condition = Callable[[Context], bool]
NUMBER_TYPES = {"Integer", "BigInt", "Picklist", "State", "Status"}


def query_error(message: str) -> errors.DataverseError:
    return errors.bad_request(message, errors.QUERY_NOT_SUPPORTED)


@dataclass
class Join:
    table: Table
    alias: str
    from_column: Column  # on the joined table
    to_column: Column  # on the parent
    parent: str | None  # alias of the parent (None = root)
    outer: bool
    columns: list[Column] = field(default_factory=list)


@dataclass
class Plan:
    table: Table
    columns: list[Column] | None  # None: every column
    joins: list[Join] = field(default_factory=list)
    condition: Condition | None = None
    orders: list[tuple[str | None, Column, bool]] = field(default_factory=list)
    top: int | None = None
    distinct: bool = False


def column_of(table: Table, name: str) -> Column:
    column = table.query_names.get(name.lower())
    if column is None:
        raise errors.property_not_found(name, table.logical_name)
    return column


def convert(column: Column, text: object) -> object:
    """A condition value → the column's stored form."""
    if text is None:
        return None
    raw = str(text)
    try:
        if column.type in NUMBER_TYPES:
            return int(raw)
        if column.type in ("Decimal", "Money"):
            return Decimal(raw)
        if column.type == "Double":
            return float(raw)
        if column.type == "Boolean":
            return raw.lower() in ("1", "true")
    except (ValueError, InvalidOperation):
        raise query_error(
            f"The value '{raw}' is not valid for the column '{column.name}' of type {column.type}."
        ) from None
    if column.type == "Uniqueidentifier" or column.is_lookup or column.type == "File":
        found = raw.strip("{}")
        if not GUID_RE.fullmatch(found):
            raise query_error(f"'{raw}' is not a valid Guid for the column '{column.name}'.")
        return found.lower()
    if column.type == "DateTime":
        normalized = (
            normalize_date(raw[:10])
            if column.date_format == "DateOnly"
            else normalize_datetime(raw)
        )
        if normalized is None:
            raise query_error(f"'{raw}' is not a valid date for the column '{column.name}'.")
        return normalized
    return raw


def _fold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _like(pattern: str) -> re.Pattern:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def condition(alias: str | None, column: Column, operator: str, values: list) -> Condition:
    """One comparison; `operator` is FetchXML's name (eq, ne, like, in, null, …)."""
    name = column.name
    is_string = column.type in STRING_TYPES
    op = operator.lower()

    def get(ctx: Context) -> object:
        row = ctx.get(alias)
        return None if row is None else row.get(name)

    if op in ("null", "not-null"):
        wanted = op == "null"
        return lambda ctx: (get(ctx) is None) == wanted
    if op in ("like", "not-like", "begins-with", "ends-with", "not-begin-with", "not-end-with"):
        text = str(values[0]) if values else ""
        pattern = {
            "begins-with": f"{text}%",
            "not-begin-with": f"{text}%",
            "ends-with": f"%{text}",
            "not-end-with": f"%{text}",
        }.get(op, text)
        regex = _like(pattern)
        positive = not op.startswith("not")
        return lambda ctx: (
            ((v := get(ctx)) is not None and bool(regex.fullmatch(str(v)))) == positive
        )
    converted = [convert(column, v) for v in values]
    if is_string:
        converted = [_fold(v) for v in converted]
    if op in ("in", "not-in"):
        wanted_set = set(converted)
        positive = op == "in"
        return lambda ctx: (v := get(ctx)) is not None and (_fold(v) in wanted_set) == positive
    if op in ("between", "not-between"):
        if len(converted) != 2:
            raise query_error(f"The operator '{operator}' needs two values.")
        low, high = converted
        positive = op == "between"
        return lambda ctx: (v := get(ctx)) is not None and (low <= _fold(v) <= high) == positive
    compare = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "neq": lambda a, b: a != b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }.get(op)
    if compare is None:
        raise query_error(
            f"The condition operator '{operator}' is not supported by the local Dataverse."
        )
    if len(converted) != 1:
        raise query_error(f"The operator '{operator}' needs one value.")
    wanted = converted[0]
    if op in ("ne", "neq"):
        return lambda ctx: (v := get(ctx)) is None or compare(_fold(v), wanted)
    return lambda ctx: (v := get(ctx)) is not None and compare(_fold(v), wanted)


def all_of(parts: list[Condition]) -> Condition:
    return lambda ctx: all(p(ctx) for p in parts)


def any_of(parts: list[Condition]) -> Condition:
    return lambda ctx: any(p(ctx) for p in parts)


def _joined(store: Store, plan: Plan) -> list[Context]:
    contexts: list[Context] = [
        {None: row} for row in store.data(plan.table.logical_name).rows.values()
    ]
    for join in plan.joins:
        index: dict[object, list[dict]] = {}
        for row in store.data(join.table.logical_name).rows.values():
            value = row.get(join.from_column.name)
            if value is not None:
                index.setdefault(_fold(value), []).append(row)
        out: list[Context] = []
        for ctx in contexts:
            parent = ctx.get(join.parent)
            key = None if parent is None else parent.get(join.to_column.name)
            matches = index.get(_fold(key), []) if key is not None else []
            if not matches and join.outer:
                out.append({**ctx, join.alias: None})
            out.extend({**ctx, join.alias: match} for match in matches)
        contexts = out
    return contexts


def _sort_key(alias: str | None, column: Column):
    def key(ctx: Context):
        row = ctx.get(alias)
        value = None if row is None else row.get(column.name)
        return (0, "") if value is None else (1, _fold(value))

    return key


def run(store: Store, plan: Plan) -> list[Context]:
    """Every matching joined row, ordered (ties by the root's primary key)."""
    contexts = _joined(store, plan)
    if plan.condition is not None:
        contexts = [ctx for ctx in contexts if plan.condition(ctx)]
    pk = plan.table.primary_id
    contexts.sort(key=lambda ctx: ctx[None][pk])  # type: ignore[index]
    for alias, column, descending in reversed(plan.orders):
        contexts.sort(key=_sort_key(alias, column), reverse=descending)
    return contexts
