"""The lake database: every gold table registered by name (DuckDB file under the lake root)."""

from pathlib import Path

import dagster as dg

from assets.gold import DESCRIPTIONS as PROFILE_DESCRIPTIONS
from assets.gold import PROFILE_KEY, SEGMENTS_KEY
from assets.unified import CANDIDATES_KEY, MATCH_PAIRS_KEY, SOURCE_LINK_KEY
from assets.unified import DESCRIPTIONS as IDENTITY_DESCRIPTIONS
from customer360.lakedb import TableRegistration, register_tables
from resources.lakehouse import LakehouseResource

LAKEDB_KEY = dg.AssetKey(["lakedb", "gold"])
GOLD_TABLES = (PROFILE_KEY, SEGMENTS_KEY, SOURCE_LINK_KEY, MATCH_PAIRS_KEY, CANDIDATES_KEY)
DESCRIPTIONS = {**PROFILE_DESCRIPTIONS, **IDENTITY_DESCRIPTIONS}
LAKEDB_FILE = "lakedb.duckdb"

#: Column comments shown to SQL clients (columns not listed get their Delta type as comment).
COLUMN_DOCS = {
    "unified_customer_id": "the person's stable id (uuid5 of the anchor record; carried forward)",
    "customer_id": "Dataverse Id (crc33_customerid) of the person's primary Dataverse record",
    "cid": "customer number of the primary Dataverse record (alternate key crc33_cid)",
    "dataverse_cids": "customer numbers of every Dataverse record of this person",
    "sources": "the sources this person has records in",
    "record_count": "number of source records merged into this profile",
    "source_records": "source/key of every record merged into this profile",
    "survivorship": "attribute group → source/key of the record that supplied it",
    "last_modified_at": "newest modification time among the person's records",
    "created_on": "earliest creation date among the person's records",
    "churn_probability": "calibrated churn probability of the riskiest linked KKBox member",
    "churn_risk_band": "risk band of that probability against the chosen threshold",
    "source": "source system of the record (dataverse or a configured CSV source)",
    "source_key": "the record's key in its source (cid for dataverse)",
    "rule": "match rule that linked the record (or the pair); null for a one-record profile",
    "score": "the rule's score (weighted similarity, 0..1)",
    "is_anchor": "this record's source/key names the profile's id",
    "email": "e-mail, trimmed and lower-cased",
    "telephone": "telephone as entered",
    "telephone_e164": "telephone in E.164 where it could be made unambiguous",
    "postcode": "postcode as text (leading zeros kept)",
    "country_code": "ISO 3166-1 alpha-2 country",
    "gender": "female, male, non_binary or other",
    "age": "whole years at as_of",
    "age_band": "age band from segments.yaml",
    "tenure_years": "years since the person's first record was created, at as_of",
    "total_spend": "sum of monthly spend",
    "avg_monthly_spend": "average spend per month with finance data",
    "total_income": "sum of monthly income",
    "avg_monthly_income": "average income per month with finance data",
    "spend_to_income_ratio": "total_spend / total_income",
    "months_active": "months with spend > 0",
    "value_segment": "value segment (first matching rule in segments.yaml)",
    "life_stage_segment": "life-stage segment (first matching rule in segments.yaml)",
    "dq_duplicate_email": "another unified customer (a different person) has the same e-mail",
    "dq_missing_lastname": "last name is blank",
    "dq_missing_city": "city is blank",
    "dq_phone_not_e164": "telephone present but not convertible to E.164",
    "dq_no_finance": "no finance rows for this customer",
    "as_of": "latest Synapse Link export time in the data (pins age and tenure)",
    "segment_type": "value_segment, life_stage_segment, age_band or extra",
    "segment": "segment name",
}


def lakedb_path(lakehouse: LakehouseResource) -> Path:
    if "://" in lakehouse.root_uri:
        raise dg.Failure("the embedded DuckDB lake database needs a local lake root")
    return Path(lakehouse.root_uri) / LAKEDB_FILE


@dg.asset(
    key=LAKEDB_KEY,
    deps=list(GOLD_TABLES),
    group_name="lakedb",
    kinds={"duckdb", "delta"},
    automation_condition=dg.AutomationCondition.eager(),
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
        registrations.append(TableRegistration(name, dt.table_uri, DESCRIPTIONS[key], columns))
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
