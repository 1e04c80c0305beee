"""model.json parsing/writing, the Dataverse system columns, Arrow and Spark schemas."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from synapse_link_fixtures import ACCOUNT_COLUMNS, ACCOUNT_MODEL_JSON

from customer360.synapse_link import (
    Attribute,
    EntityModel,
    SynapseLinkFormatError,
    arrow_schema,
    parse_model_json,
    spark_schema,
)
from customer360.synapse_link.model import entity_to_json, model_json_document


def test_parse_model_json_reads_attributes_traits_and_annotations():
    entities = parse_model_json(ACCOUNT_MODEL_JSON)

    account = entities["account"]
    assert list(entities) == ["account"]
    assert account.column_names == ACCOUNT_COLUMNS
    assert account.attribute("name") == Attribute("name", "string", max_length=160)
    assert account.attribute("revenue") == Attribute("revenue", "decimal", precision=38, scale=6)
    assert account.partition_granularity == "Year"
    assert account.annotations == {
        "Athena:InitialSyncState": "Completed",
        "Athena:InitialSyncDataCompletedTime": "1/1/2020 0:00:00 PM",
    }
    assert account.partitions == ("2020",)


def test_parse_model_json_accepts_bytes_with_bom():
    entities = parse_model_json(b"\xef\xbb\xbf" + ACCOUNT_MODEL_JSON.encode())
    assert entities["account"].column_names == ACCOUNT_COLUMNS


def test_decimal_without_trait_defaults_to_38_18():
    text = json.dumps(
        {"entities": [{"name": "t", "attributes": [{"name": "amount", "dataType": "decimal"}]}]}
    )
    amount = parse_model_json(text)["t"].attribute("amount")

    assert (amount.precision, amount.scale) == (None, None)
    assert amount.decimal_precision_scale == (38, 18)
    assert arrow_schema(parse_model_json(text)["t"]).field("amount").type == pa.decimal128(38, 18)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"entities": {}}', "no 'entities' list"),
        ('{"entities": [{"name": "t", "attributes": []}]}', "entity 't' has no attributes"),
        (
            '{"entities": [{"name": "t", "attributes": [{"name": "x", "dataType": "blob"}]}]}',
            "unsupported CDM data type 'blob'",
        ),
        (
            '{"entities": [{"name": "t", "attributes": [{"name": "x", "dataType": "string"},'
            '{"name": "X", "dataType": "string"}]}]}',
            "duplicate attribute 'X'",
        ),
    ],
)
def test_parse_model_json_rejects_invalid_documents_with_a_clear_message(document, message):
    with pytest.raises(SynapseLinkFormatError, match=message):
        parse_model_json(document)


def test_model_json_round_trips_through_the_writer_form():
    account = parse_model_json(ACCOUNT_MODEL_JSON)["account"]
    text = model_json_document([entity_to_json(account, partition_locations=[("2020", "x")])])

    again = parse_model_json(text)["account"]
    assert again == account.__class__(
        name="account",
        attributes=account.attributes,
        partition_granularity="Year",
        annotations=account.annotations,
        partitions=("2020",),
    )


def test_for_dataverse_table_adds_system_columns_in_synapse_link_order():
    model = EntityModel.for_dataverse_table(
        "crc33_thing",
        [
            Attribute("createdon", "dateTimeOffset"),
            Attribute("crc33_name", "string", 100),
            Attribute("statecode", "int32"),
            Attribute("modifiedon", "dateTime"),
            Attribute("statuscode", "int32"),
        ],
        partition_granularity="Month",
    )

    assert model.column_names == [
        "Id",
        "SinkCreatedOn",
        "SinkModifiedOn",
        "crc33_name",
        "statecode",
        "statuscode",
        "versionnumber",
        "createdon",
        "modifiedon",
        "IsDelete",
    ]
    assert [a.data_type for a in model.attributes[:3]] == ["guid", "dateTime", "dateTime"]
    assert model.attribute("versionnumber").data_type == "int64"
    assert model.attribute("IsDelete").data_type == "boolean"
    assert model.partition_granularity == "Month"


def test_for_dataverse_table_refuses_system_column_names():
    with pytest.raises(ValueError, match="'IsDelete' is a column Synapse Link adds itself"):
        EntityModel.for_dataverse_table("t", [Attribute("IsDelete", "boolean")])


def test_added_attributes_go_last_and_keep_the_old_model_a_prefix():
    old = EntityModel.for_dataverse_table("t", [Attribute("a", "string")])
    new = old.with_added_attributes(Attribute("b", "int32"))

    assert new.column_names == [*old.column_names, "b"]
    assert old.is_prefix_of(new)
    assert not new.is_prefix_of(old)
    retyped = EntityModel("t", (Attribute("Id", "string"), *old.attributes[1:]))
    assert not old.is_prefix_of(retyped)


def test_arrow_schema_maps_every_cdm_type():
    account = parse_model_json(ACCOUNT_MODEL_JSON)["account"]
    utc = pa.timestamp("us", tz="UTC")

    schema = arrow_schema(account, include_ingestion_columns=True)

    assert [(f.name, f.type) for f in schema] == [
        ("Id", pa.string()),
        ("SinkCreatedOn", utc),
        ("SinkModifiedOn", utc),
        ("name", pa.string()),
        ("revenue", pa.decimal128(38, 6)),
        ("ratio", pa.float64()),
        ("employees", pa.int32()),
        ("versionnumber", pa.int64()),
        ("createdon", utc),
        ("modifiedon", utc),
        ("IsDelete", pa.bool_()),
        ("_source_file", pa.string()),
        ("_source_line", pa.int64()),
        ("_export_folder", pa.string()),
    ]
    assert arrow_schema(account).names == ACCOUNT_COLUMNS


def test_spark_schema_maps_every_cdm_type():
    from pyspark.sql import types as T

    account = parse_model_json(ACCOUNT_MODEL_JSON)["account"]

    schema = spark_schema(account, include_ingestion_columns=True)

    assert [(f.name, f.dataType) for f in schema.fields] == [
        ("Id", T.StringType()),
        ("SinkCreatedOn", T.TimestampType()),
        ("SinkModifiedOn", T.TimestampType()),
        ("name", T.StringType()),
        ("revenue", T.DecimalType(38, 6)),
        ("ratio", T.DoubleType()),
        ("employees", T.IntegerType()),
        ("versionnumber", T.LongType()),
        ("createdon", T.TimestampType()),
        ("modifiedon", T.TimestampType()),
        ("IsDelete", T.BooleanType()),
        ("_source_file", T.StringType()),
        ("_source_line", T.LongType()),
        ("_export_folder", T.StringType()),
    ]
