"""What the gold tables and their columns hold: the UI's descriptions and the lake database's
table and column comments, written once."""

from assets.keys import (
    CANDIDATES_KEY,
    MATCH_PAIRS_KEY,
    PROFILE_KEY,
    SEGMENTS_KEY,
    SOURCE_LINK_KEY,
)

_PROFILE = (
    "One row per real person (unified_customer_id, stable across runs): surviving identity and "
    "contact, the Dataverse records it covers, finance measures (total and average spend and "
    "income, spend-to-income ratio, months active), tenure, age band, value and life-stage "
    "segments, churn probability and risk band, data-quality flags. Age and tenure are as of the "
    "latest export day (00:00 UTC), so a re-run on the same data gives the same table."
)

TABLE_DESCRIPTIONS = {
    PROFILE_KEY: _PROFILE,
    SEGMENTS_KEY: "unified customer × segment membership (segment_type, segment).",
    SOURCE_LINK_KEY: "Every source record (source, source_key) → its unified_customer_id, with "
    "the rule, score and matched record that linked it, whether it is the profile's anchor, and "
    "the profile's size.",
    MATCH_PAIRS_KEY: "Which rule linked which two records in each profile: one row per matched "
    "pair with its deciding rule, score and every rule that matched it.",
    CANDIDATES_KEY: "Pairs scored between a rule's review threshold and its match threshold, in "
    "different profiles: for a person to confirm or reject.",
}

#: What each column holds, by name (a name means the same in every table): the Description
#: column of `dagster/column_schema` in the UI for every lake write, and the column comments SQL
#: clients see in the lake database (columns not listed get their Delta type as comment).
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
    # Synapse Link export and silver customers (silver drops the crc33_ publisher prefix)
    "Id": "Dataverse record id (GUID) of the customer row",
    "SinkCreatedOn": "when Synapse Link first wrote the row to the lake",
    "SinkModifiedOn": "when Synapse Link last wrote the row (orders versions with versionnumber)",
    "IsDelete": "Synapse Link delete marker: the row records a deletion",
    "versionnumber": "Dataverse row version (rowversion); higher is newer",
    "createdon": "when the record was created in Dataverse",
    "modifiedon": "when the record was last modified in Dataverse",
    "statecode": "Dataverse state (0 active, 1 inactive)",
    "statuscode": "Dataverse status reason",
    "firstname": "first name, trimmed",
    "lastname": "last name, trimmed",
    "name": "full name",
    "country": "country as entered",
    "city": "city, trimmed",
    "state": "state or region",
    "streetaddress": "street address",
    "dateofbirth": "date of birth",
    "loyaltytier": "loyalty tier (a column added mid-stream: null in older versions)",
    "_source_file": "landing file the row was read from",
    "_source_line": "line of the row in that file",
    "_export_folder": "Synapse Link export folder (the partition) the row came from",
    "_ingested_at": "when bronze ingested the row",
    "_partition": "the Dagster partition key that wrote the row",
    "valid_from": "SCD2: this version is valid from (its SinkModifiedOn)",
    "valid_to": "SCD2: the next version's valid_from; null while current",
    "is_current": "SCD2: the newest version of this Id",
    "is_deleted": "SCD2: this version records a deletion",
    "history_key": "Id and version: the history row's key",
    "_merged_at": "when the incremental merge wrote this history row",
    "failed_rules": "validation rules the row breaks (why it is quarantined)",
    # finance
    "month": "calendar month (YYYY-MM)",
    "month_start": "first day of the month",
    "income": "income in the month",
    "spend": "spend in the month",
    "source_file": "finance file the row came from (the latest drop wins)",
    # identity resolution and churn
    "left_source": "source of the pair's first record",
    "left_key": "key of the pair's first record in its source",
    "right_source": "source of the pair's second record",
    "right_key": "key of the pair's second record in its source",
    "matched_rules": "every match rule that linked the pair",
    "threshold": "score at or above which the rule (or the churn model) decides yes",
    "review_threshold": "score from which a pair is shown for review",
    "msno": "KKBox member id",
    "period_start": "first day of the scored month",
    "above_threshold": "churn probability at or above the profit-optimal threshold",
    "risk_band": "churn risk band of the probability",
    "model_version": "version (training time) of the model that scored the row",
}
