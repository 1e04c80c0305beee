"""The lake database: every gold table registered by name (DuckDB file under the lake root)."""

from pathlib import Path

import dagster as dg

from assets.keys import (
    CANDIDATES_KEY,
    LAKEDB_KEY,
    MATCH_PAIRS_KEY,
    PROFILE_KEY,
    SEGMENTS_KEY,
    SOURCE_LINK_KEY,
)
from assets.refresh import EAGER
from assets.table_docs import TABLE_DESCRIPTIONS
from customer360.column_docs import COLUMN_DOCS
from customer360.lake_database import TableRegistration, register_tables
from resources.lakehouse import LakehouseResource

GOLD_TABLES = (PROFILE_KEY, SEGMENTS_KEY, SOURCE_LINK_KEY, MATCH_PAIRS_KEY, CANDIDATES_KEY)
LAKEDB_FILE = "lakedb.duckdb"


def lakedb_path(lakehouse: LakehouseResource) -> Path:
    if "://" in lakehouse.root_uri:
        raise dg.Failure("the embedded DuckDB lake database needs a local lake root")
    return Path(lakehouse.root_uri) / LAKEDB_FILE


@dg.asset(
    key=LAKEDB_KEY,
    deps=list(GOLD_TABLES),
    group_name="lakedb",
    kinds={"duckdb", "delta"},
    automation_condition=EAGER,
    description="Registers every gold table in the lake database (schema `gold`) so SQL clients "
    "query it by name: `SELECT * FROM gold.customer_profile` returns the current Delta version.",
    check_specs=[dg.AssetCheckSpec("views_match_delta", asset=LAKEDB_KEY, blocking=True)],
)
def lakedb_gold(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    registrations = []
    for key in GOLD_TABLES:
        name = key.path[-1]
        dt = lakehouse.lake.table("gold", name)
        columns = {
            field.name: COLUMN_DOCS.get(field.name, str(field.type)) for field in dt.schema().fields
        }
        registrations.append(
            TableRegistration(name, dt.table_uri, TABLE_DESCRIPTIONS[key], columns)
        )
    path = lakedb_path(lakehouse)
    counts = register_tables(path, "gold", registrations)
    expected = {r.name: lakehouse.lake.table("gold", r.name).count() for r in registrations}
    return dg.MaterializeResult(
        metadata={
            "database": dg.MetadataValue.path(str(path)),
            "tables": dg.MetadataValue.json(sorted(f"gold.{r.name}" for r in registrations)),
            "rows_by_table": dg.MetadataValue.json(counts),
            "example_query": dg.MetadataValue.md(
                f"```sql\n-- duckdb {path}\nSELECT * FROM gold.customer_profile LIMIT 10;\n```"
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="views_match_delta",
                passed=counts == expected,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "view_rows": dg.MetadataValue.json(counts),
                    "delta_rows": dg.MetadataValue.json(expected),
                },
            )
        ],
    )
