"""Register Delta tables as DuckDB views so `SELECT * FROM gold.customer_profile` works by name.

Each view reads exactly the Parquet files of the table's current Delta snapshot (partition values
added back as typed constants), so it shows the current version after overwrites, partition
replaces and vacuum. Re-register after every write (the lakedb asset does, by automation). The
DuckDB `delta` extension would read the log itself but must be downloaded at run time, which an
offline machine cannot do; the file-list view needs nothing but the duckdb wheel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from customer360.lakehouse.arrow_sql import sql_name, sql_text


@dataclass(frozen=True)
class TableRegistration:
    name: str
    uri: str
    description: str = ""
    column_comments: Mapping[str, str] = field(default_factory=dict)


_DUCKDB_TYPES = {
    "string": "VARCHAR", "large_string": "VARCHAR", "int64": "BIGINT", "int32": "INTEGER",
    "int16": "SMALLINT", "int8": "TINYINT", "double": "DOUBLE", "float": "FLOAT",
    "bool": "BOOLEAN", "date32[day]": "DATE",
}  # fmt: skip


def _duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    return _DUCKDB_TYPES.get(str(t), "VARCHAR")


def _view_sql(schema_name: str, reg: TableRegistration, storage_options) -> str:
    dt = DeltaTable(reg.uri, storage_options=storage_options)
    arrow_schema = pa.schema(dt.schema().to_arrow())
    partition_by = list(dt.metadata().partition_columns)
    actions = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    base = dt.table_uri.rstrip("/")
    if base.startswith("file://"):
        base = base[len("file://") :]
    groups: dict[tuple, list[str]] = {}
    for a in actions:
        key = tuple(a.get(f"partition.{c}") for c in partition_by)
        groups.setdefault(key, []).append(f"{base}/{unquote(a['path'])}")
    target = f"{sql_name(schema_name)}.{sql_name(reg.name)}"
    if not groups:  # an empty table still has its columns
        select = ", ".join(
            f"CAST(NULL AS {_duckdb_type(f.type)}) AS {sql_name(f.name)}" for f in arrow_schema
        )
        return f"CREATE OR REPLACE VIEW {target} AS SELECT {select} WHERE false"
    parts = []
    for key, files in groups.items():
        file_list = "[" + ", ".join(sql_text(f) for f in files) + "]"
        values = dict(zip(partition_by, key, strict=True))
        select = []
        for f in arrow_schema:
            if f.name in values:
                v = values[f.name]
                literal = "NULL" if v is None else sql_text(str(v))
                select.append(f"CAST({literal} AS {_duckdb_type(f.type)}) AS {sql_name(f.name)}")
            else:
                select.append(sql_name(f.name))
        parts.append(
            f"SELECT {', '.join(select)} FROM read_parquet({file_list}, union_by_name = true)"
        )
    return f"CREATE OR REPLACE VIEW {target} AS " + " UNION ALL ".join(parts)


def register_tables(
    db_path: str | Path,
    schema_name: str,
    tables: Sequence[TableRegistration],
    storage_options: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """(Re)create one view per table with its description and column comments, in a single
    transaction; returns the row count each view now answers with."""
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(db_path)) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {sql_name(schema_name)}")
        for reg in tables:
            con.execute(_view_sql(schema_name, reg, dict(storage_options or {}) or None))
            target = f"{sql_name(schema_name)}.{sql_name(reg.name)}"
            if reg.description:
                con.execute(f"COMMENT ON VIEW {target} IS {sql_text(reg.description)}")
            for column, comment in reg.column_comments.items():
                con.execute(f"COMMENT ON COLUMN {target}.{sql_name(column)} IS {sql_text(comment)}")
        con.execute("COMMIT")
        for reg in tables:
            target = f"{sql_name(schema_name)}.{sql_name(reg.name)}"
            counts[reg.name] = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    return counts
