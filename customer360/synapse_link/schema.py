"""Arrow and Spark schemas for exported tables (CDM data type → column type)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from customer360.synapse_link.model import Attribute, EntityModel

# Columns every read adds after the model columns.
SOURCE_FILE_COLUMN = "_source_file"  # path relative to the export root
SOURCE_LINE_COLUMN = "_source_line"  # 1-based physical line where the record starts
EXPORT_FOLDER_COLUMN = "_export_folder"  # incremental folder name, "" for the root layout
INGESTION_COLUMNS = (SOURCE_FILE_COLUMN, SOURCE_LINE_COLUMN, EXPORT_FOLDER_COLUMN)

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def arrow_type(attribute: Attribute) -> pa.DataType:
    """The Arrow type of one attribute (timestamps are microseconds, UTC)."""
    data_type = attribute.data_type
    if data_type in ("guid", "string"):
        return pa.string()
    if data_type == "int32":
        return pa.int32()
    if data_type == "int64":
        return pa.int64()
    if data_type == "decimal":
        precision, scale = attribute.decimal_precision_scale
        return pa.decimal128(precision, scale)
    if data_type == "double":
        return pa.float64()
    if data_type == "boolean":
        return pa.bool_()
    if data_type in ("dateTime", "dateTimeOffset"):
        return TIMESTAMP_TYPE
    raise ValueError(f"attribute {attribute.name!r}: unsupported data type {data_type!r}")


def arrow_schema(entity: EntityModel, *, include_ingestion_columns: bool = False) -> pa.Schema:
    """The Arrow schema of an entity; optionally with ``_source_file``, ``_source_line``,
    ``_export_folder`` appended (the shape ``read_entity`` returns)."""
    fields = [pa.field(a.name, arrow_type(a), nullable=True) for a in entity.attributes]
    if include_ingestion_columns:
        fields += _ingestion_arrow_fields()
    return pa.schema(fields)


def spark_schema(entity: EntityModel, *, include_ingestion_columns: bool = False) -> Any:
    """The ``pyspark.sql.types.StructType`` of an entity (pyspark is imported lazily)."""
    from pyspark.sql import types as T

    def spark_type(attribute: Attribute) -> Any:
        data_type = attribute.data_type
        if data_type in ("guid", "string"):
            return T.StringType()
        if data_type == "int32":
            return T.IntegerType()
        if data_type == "int64":
            return T.LongType()
        if data_type == "decimal":
            precision, scale = attribute.decimal_precision_scale
            return T.DecimalType(precision, scale)
        if data_type == "double":
            return T.DoubleType()
        if data_type == "boolean":
            return T.BooleanType()
        return T.TimestampType()  # dateTime / dateTimeOffset, stored as UTC instants

    fields = [T.StructField(a.name, spark_type(a), True) for a in entity.attributes]
    if include_ingestion_columns:
        fields += [
            T.StructField(SOURCE_FILE_COLUMN, T.StringType(), True),
            T.StructField(SOURCE_LINE_COLUMN, T.LongType(), True),
            T.StructField(EXPORT_FOLDER_COLUMN, T.StringType(), True),
        ]
    return T.StructType(fields)


def _ingestion_arrow_fields() -> list[pa.Field]:
    return [
        pa.field(SOURCE_FILE_COLUMN, pa.string(), nullable=True),
        pa.field(SOURCE_LINE_COLUMN, pa.int64(), nullable=True),
        pa.field(EXPORT_FOLDER_COLUMN, pa.string(), nullable=True),
    ]
