"""Schema rules shared by both write paths: UTC timestamps, evolution, and clear type errors."""

from __future__ import annotations

import pyarrow as pa


class SchemaMismatchError(ValueError):
    """Raised before any file is written when incoming data cannot go into an existing table."""


def normalize_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """Store every timestamp as microsecond UTC `timestamp` (never timestamp_ntz) and strings
    as plain `string` (Spark hands out `large_string` on some versions)."""
    return pa.schema([_normalize_field(f) for f in schema], metadata=schema.metadata)


def _normalize_field(field: pa.Field) -> pa.Field:
    t = field.type
    if pa.types.is_timestamp(t):
        t = pa.timestamp("us", tz="UTC")
    elif pa.types.is_large_string(t):
        t = pa.string()
    elif pa.types.is_large_binary(t):
        t = pa.binary()
    return pa.field(field.name, t, nullable=field.nullable, metadata=field.metadata)


def normalize_arrow_table(table: pa.Table) -> pa.Table:
    target = normalize_arrow_schema(table.schema)
    if target.equals(table.schema, check_metadata=False):
        return table
    # A naive timestamp from Spark is already UTC wall time (the session time zone is UTC).
    columns = []
    for column, field in zip(table.columns, target, strict=True):
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit)).cast(pa.timestamp("us"))
            column = pa.compute.assume_timezone(column, "UTC")
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)


def check_compatible(table_uri: str, existing: pa.Schema, incoming: pa.Schema) -> list[str]:
    """Return the names of new columns; raise SchemaMismatchError on an incompatible change.

    Rules: a column keeps its type for life (only nullability may relax); new columns must be
    nullable; columns missing from the incoming data are written as nulls.
    """
    existing_by_name = {f.name: f for f in existing}
    new_columns: list[str] = []
    for field in incoming:
        old = existing_by_name.get(field.name)
        if old is None:
            new_columns.append(field.name)
            continue
        if not _same_type(old.type, field.type):
            raise SchemaMismatchError(
                f"table {table_uri}: column {field.name!r} is {old.type} in the table but "
                f"{field.type} in the data; the table was left unchanged"
            )
    for name in set(existing_by_name) - {f.name for f in incoming}:
        if not existing_by_name[name].nullable:
            raise SchemaMismatchError(
                f"table {table_uri}: column {name!r} is required but missing from the data"
            )
    return new_columns


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    a, b = _normalize_field(pa.field("x", a)).type, _normalize_field(pa.field("x", b)).type
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        return all(
            b.get_field_index(f.name) >= 0 and _same_type(f.type, b.field(f.name).type) for f in a
        )
    if pa.types.is_list(a) and pa.types.is_list(b):
        return _same_type(a.value_type, b.value_type)
    return a.equals(b)


def delta_schema_to_arrow(delta_schema) -> pa.Schema:
    """delta-rs 1.x hands out an arro3 schema; convert it to a pyarrow one."""
    return normalize_arrow_schema(pa.schema(delta_schema.to_arrow()))


def conform_to_table(data: pa.Table, table_schema: pa.Schema) -> pa.Table:
    """Table columns first, in table order (missing ones as nulls), then the new columns; so an
    older-shaped batch can be written into an evolved table."""
    columns, fields = [], []
    for field in table_schema:
        if field.name in data.column_names:
            columns.append(data[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(data.num_rows, field.type))
        fields.append(field.with_nullable(True) if field.name not in data.column_names else field)
    for field in data.schema:
        if field.name not in table_schema.names:
            columns.append(data[field.name])
            fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
