"""SQL over Arrow tables in memory (DuckDB): set algebra on tables too small for Spark's
overheads and too large for Python loops."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa


def arrow_query(sql: str, params: Sequence[object] = (), **tables: pa.Table) -> pa.Table:
    """Run `sql` (with `?` parameters) with each keyword's Arrow table visible under its name."""
    con = duckdb.connect()
    try:
        # Timestamps come back labelled UTC (the lake's rule), whatever the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql, params=list(params) or None).to_arrow_table()
    finally:
        con.close()


def sql_name(name: str) -> str:
    """`name` as a quoted SQL identifier: any column or table name, safely."""
    return '"' + name.replace('"', '""') + '"'


def sql_text(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
