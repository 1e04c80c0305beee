"""Spark SQL written once, run by DuckDB: sqlglot transpiles the rule expressions (match keys,
blocking keys) so the one-machine engine computes exactly what Spark computes."""

from __future__ import annotations

from functools import cache

import sqlglot


@cache
def duckdb_sql(spark_sql: str) -> str:
    """`spark_sql` (an expression or a query) in DuckDB's dialect."""
    return sqlglot.transpile(spark_sql, read="spark", write="duckdb")[0]
