"""`$expand` of single-valued navigation properties (query-data-web-api.md "Join tables").

`$expand=primarycontactid($select=fullname),ownerid` on a record or a collection adds the related
record (or null) under the navigation property's name, with the nested `$select` (the only nested
option served). A lookup column `x` is navigable as `x`; a customer lookup per target as
`x_account` / `x_contact`. Collection-valued navigation properties and nested `$filter`,
`$orderby`, `$top` or `$expand` get Dataverse's 400, never an answer without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from customer360.emulator import errors
from customer360.emulator.odata_literals import split_outside_quotes
from customer360.emulator.operations import representation
from customer360.emulator.schema import Column, Schema, Table
from customer360.emulator.store import Store


@dataclass(frozen=True)
class Expansion:
    name: str  # navigation property
    column: Column  # the lookup column on the expanded table
    targets: tuple[str, ...]  # tables the related record may be in
    select: tuple[str, ...] | None


def _navigations(table: Table) -> dict[str, tuple[Column, tuple[str, ...]]]:
    out: dict[str, tuple[Column, tuple[str, ...]]] = {}
    for column in table.columns.values():
        if not column.is_lookup:
            continue
        if column.type == "Customer":
            for target in column.targets:
                out[f"{column.name}_{target}"] = (column, (target,))
        else:
            out[column.name] = (column, column.targets)
    return out


def parse_expand(table: Table, text: str) -> list[Expansion]:
    navigations = _navigations(table)
    found: list[Expansion] = []
    for part in split_outside_quotes(text, ","):
        part = part.strip()
        if not part:
            continue
        name, paren, inner = part.partition("(")
        name = name.strip()
        if name not in navigations:
            raise errors.property_not_found(name, table.logical_name)
        select = None
        if paren:
            if not inner.endswith(")"):
                raise errors.bad_request(
                    f"Syntax error in $expand '{text}'.", errors.QUERY_NOT_SUPPORTED
                )
            for option in split_outside_quotes(inner[:-1], ";"):
                key, _, value = option.partition("=")
                if key.strip() != "$select":
                    raise errors.bad_request(
                        f"The nested query option {key.strip()} in $expand is not supported by "
                        "the local Dataverse emulator.",
                        errors.QUERY_NOT_SUPPORTED,
                    )
                select = tuple(n.strip() for n in value.split(",") if n.strip())
        column, targets = navigations[name]
        found.append(Expansion(name, column, targets, select))
    return found


def expand_into(
    payload: dict, row: dict, expansions: list[Expansion], schema: Schema, store: Store
) -> None:
    """Add each expanded record (or None) to one record's JSON payload."""
    for expansion in expansions:
        value = row.get(expansion.column.name)
        target = row.get(f"{expansion.column.name}@type") or expansion.targets[0]
        if value is None or target not in expansion.targets:
            payload[expansion.name] = None
            continue
        related_table = schema.tables.get(str(target))
        related = store.get(str(target), str(value)) if related_table is not None else None
        if related is None or related_table is None:
            payload[expansion.name] = None
            continue
        columns = None
        if expansion.select is not None:
            columns = []
            for name in expansion.select:
                column = related_table.query_names.get(name)
                if column is None:
                    raise errors.property_not_found(name, related_table.logical_name)
                columns.append(column)
        payload[expansion.name] = representation(related_table, related, columns)
