"""Instance annotations a caller asks for with `Prefer: odata.include-annotations=…`.

`OData.Community.Display.V1.FormattedValue` on choices, yes/no, lookups (the referenced record's
primary name), money, numbers and dates, and on lookups `Microsoft.Dynamics.CRM.lookuplogicalname`
and `…associatednavigationproperty` (query-data-web-api.md "Formatted values", "Lookup property
data"). Formats follow an en-US user: `$1,234.50`, `1,234`, `10/14/2024 3:45 PM`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from customer360.emulator.schema import Column, Table
from customer360.emulator.values import to_json_value

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_TABLE = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"
Names = Callable[[str, str], "str | None"]  # (table, id) → primary name


@dataclass(frozen=True)
class Wanted:
    formatted: bool
    lookups: bool
    names: Names | None = None


def _matches(pattern: str, name: str) -> bool:
    pattern = pattern.strip()
    if pattern.startswith("-"):
        return False
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def wanted(prefer: dict[str, str], names: Names | None = None) -> Wanted | None:
    """Which annotations the `Prefer` header asks for (None: none)."""
    spec = prefer.get("odata.include-annotations")
    if not spec:
        return None
    patterns = [p for p in spec.split(",") if p.strip()]
    formatted = any(_matches(p, FORMATTED) for p in patterns)
    lookups = any(_matches(p, LOOKUP_TABLE) for p in patterns)
    if not formatted and not lookups:
        return None
    return Wanted(formatted, lookups, names)


def _number(value: object, places: int) -> str:
    return f"{Decimal(str(value)):,.{places}f}"


def _datetime(column: Column, text: str) -> str:
    if column.date_format == "DateOnly":
        day = dt.date.fromisoformat(text[:10])
        return f"{day.month}/{day.day}/{day.year}"
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d} {suffix}"


def formatted_value(table: Table, column: Column, row: dict, names: Names | None) -> str | None:
    value = row.get(column.name)
    if value is None:
        return None
    kind = column.type
    if kind == "Picklist" and column.options:
        return column.options.get(value)  # type: ignore[arg-type]
    if kind == "State":
        state = table.states.get(value)  # type: ignore[arg-type]
        return state.name if state else None
    if kind == "Status":
        for state in table.states.values():
            if value in state.statuses:
                return state.statuses[value]  # type: ignore[index]
        return None
    if kind == "Boolean":
        return "Yes" if value else "No"
    if kind == "Money":
        return f"${_number(value, column.precision or 2)}"
    if kind == "Decimal" or kind == "Double":
        return _number(value, column.precision if column.precision is not None else 2)
    if kind in ("Integer", "BigInt"):
        return f"{value:,}"
    if kind == "DateTime":
        return _datetime(column, str(value))
    if column.is_lookup and names is not None:
        target = row.get(f"{column.name}@type") or column.targets[0]
        return names(str(target), str(value))
    return None


def annotated(
    table: Table, column: Column, row: dict, name: str, annotate: Wanted | bool | None
) -> dict[str, object]:
    """`{name: value}` plus the annotations asked for (True = lookup table names only)."""
    value = row.get(column.name)
    out: dict[str, object] = {name: to_json_value(column, value)}
    if not annotate or value is None:
        return out
    lookups = annotate is True or (isinstance(annotate, Wanted) and annotate.lookups)
    if isinstance(annotate, Wanted) and annotate.formatted:
        text = formatted_value(table, column, row, annotate.names)
        if text is not None:
            out[f"{name}@{FORMATTED}"] = text
    if lookups and column.is_lookup:
        target = row.get(f"{column.name}@type") or column.targets[0]
        out[f"{name}@{NAVIGATION}"] = (
            column.name if len(column.targets) == 1 else (f"{column.name}_{target}")
        )
        out[f"{name}@{LOOKUP_TABLE}"] = target
    return out
