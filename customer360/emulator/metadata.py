"""Service document, `$metadata`, `WhoAmI`, minimal `EntityDefinitions` and `sdkmessagefilters`.

`sdkmessagefilters` is how a client asks whether a table supports CreateMultiple/UpdateMultiple/
UpsertMultiple on real Dataverse (bulk-operations.md); EntityDefinitions also carries the
emulator-only instance annotation `@c360.emulator.BulkMessagesSupported` for convenience.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from customer360.emulator.messages import ApiResponse, json_response
from customer360.emulator.odata_filter import compile_filter
from customer360.emulator.operations import representation
from customer360.emulator.query import parse_query
from customer360.emulator.schema import Column, Schema, Table

METADATA_NS = uuid.UUID("5f0c2f0e-8d55-4d8e-9c2b-6a1f0f0c3600")
BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
STANDARD_MESSAGES = ("Create", "Update", "Upsert", "Delete", "Retrieve", "RetrieveMultiple")
ATTRIBUTE_TYPE_NAMES = {
    "String": "StringType",
    "Memo": "MemoType",
    "Integer": "IntegerType",
    "BigInt": "BigIntType",
    "Decimal": "DecimalType",
    "Money": "MoneyType",
    "Double": "DoubleType",
    "Boolean": "BooleanType",
    "Uniqueidentifier": "UniqueidentifierType",
    "DateTime": "DateTimeType",
    "Picklist": "PicklistType",
    "State": "StateType",
    "Status": "StatusType",
    "Lookup": "LookupType",
    "Customer": "CustomerType",
    "Owner": "OwnerType",
    "File": "FileType",
}
METADATA_CLASSES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "File": "FileAttributeMetadata",
}
# A cast segment may name a base class: which concrete classes each one covers.
CLASS_FAMILIES = {
    "AttributeMetadata": set(METADATA_CLASSES.values()),
    "EnumAttributeMetadata": {
        "PicklistAttributeMetadata",
        "StateAttributeMetadata",
        "StatusAttributeMetadata",
        "BooleanAttributeMetadata",
    },
}


def label(text: str | None) -> dict:
    """A Label as Dataverse serves it: every language plus the caller's."""
    if text is None:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    one = {"Label": text, "LanguageCode": 1033, "IsManaged": False}
    return {"LocalizedLabels": [one], "UserLocalizedLabel": dict(one)}


def display_name(name: str) -> str:
    """`crc33_firstname` → `Firstname` (a readable default when the schema has none)."""
    return name.split("_", 1)[-1].replace("_", " ").title()


def metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(METADATA_NS, "/".join(parts)))


def service_document(api_url: str, schema: Schema) -> ApiResponse:
    sets = sorted(t.entity_set for t in schema.tables.values())
    value = [{"name": s, "kind": "EntitySet", "url": s} for s in sets]
    value.append({"name": "sdkmessagefilters", "kind": "EntitySet", "url": "sdkmessagefilters"})
    return json_response(200, {"@odata.context": f"{api_url}$metadata", "value": value})


def csdl(schema: Schema) -> ApiResponse:
    """A small CSDL document: entity types, keys, properties and entity sets."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" '
        'xmlns="http://docs.oasis-open.org/odata/ns/edm">',
    ]
    for table in schema.tables.values():
        lines.append(f'<EntityType Name="{table.logical_name}">')
        lines.append(f'<Key><PropertyRef Name="{table.primary_id}" /></Key>')
        for column in table.columns.values():
            if column.is_lookup:
                lines.append(f'<Property Name="{column.value_name}" Type="Edm.Guid" />')
                continue
            extra = f' MaxLength="{column.max_length}"' if column.max_length else ""
            lines.append(f'<Property Name="{column.name}" Type="{column.edm_type}"{extra} />')
        lines.append("</EntityType>")
    lines.append('<EntityContainer Name="System">')
    for table in schema.tables.values():
        lines.append(
            f'<EntitySet Name="{escape(table.entity_set)}" '
            f'EntityType="Microsoft.Dynamics.CRM.{table.logical_name}" />'
        )
    lines.extend(["</EntityContainer>", "</Schema>", "</edmx:DataServices>", "</edmx:Edmx>"])
    return ApiResponse(
        200,
        {"Content-Type": "application/xml", "OData-Version": "4.0"},
        "\n".join(lines).encode("utf-8"),
    )


def who_am_i(
    api_url: str, user_id: str, business_unit_id: str, organization_id: str
) -> ApiResponse:
    return json_response(
        200,
        {
            "@odata.context": f"{api_url}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": business_unit_id,
            "UserId": user_id,
            "OrganizationId": organization_id,
        },
    )


def attribute_metadata(table: Table, column: Column) -> dict:
    out: dict[str, object] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{METADATA_CLASSES[column.type]}",
        "LogicalName": column.name,
        "SchemaName": column.schema_name or column.name,
        "EntityLogicalName": table.logical_name,
        "MetadataId": metadata_id(table.logical_name, column.name),
        "DisplayName": label(column.display_name or display_name(column.name)),
        "IsCustomAttribute": table.is_custom and "_" in column.name,
        "AttributeType": column.type,
        "AttributeTypeName": {"Value": ATTRIBUTE_TYPE_NAMES[column.type]},
        "IsPrimaryId": column.name == table.primary_id,
        "IsPrimaryName": column.name == table.primary_name,
        "IsValidForCreate": not column.read_only,
        "IsValidForUpdate": not column.read_only and not column.create_only,
        "IsValidForRead": True,
        "RequiredLevel": {
            "Value": column.required,
            "CanBeChanged": column.required != "SystemRequired",
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
    }
    if column.max_length is not None:
        out["MaxLength"] = column.max_length
    if column.precision is not None:
        out["Precision"] = column.precision
    if column.min_value is not None:
        out["MinValue"] = column.min_value
    if column.max_value is not None:
        out["MaxValue"] = column.max_value
    if column.type == "DateTime":
        out["Format"] = column.date_format
        out["DateTimeBehavior"] = {
            "Value": "DateOnly" if column.date_format == "DateOnly" else "UserLocal"
        }
    if column.is_lookup:
        out["Targets"] = list(column.targets)
    options = _options(table, column)
    if options is not None:
        out["OptionSet"] = {"Options": options}
    return out


def _options(table: Table, column: Column) -> list[dict] | None:
    if column.type == "Picklist" and column.options:
        return [{"Value": v, "Label": label(t)} for v, t in column.options.items()]
    if column.type == "State":
        return [
            {"Value": s.value, "DefaultStatus": s.default_status, "Label": label(s.name)}
            for s in table.states.values()
        ]
    if column.type == "Status":
        return [
            {"Value": code, "State": s.value, "Label": label(name)}
            for s in table.states.values()
            for code, name in s.statuses.items()
        ]
    return None


def key_metadata(table: Table) -> list[dict]:
    return [
        {
            "LogicalName": key.name,
            "SchemaName": key.name,
            "EntityLogicalName": table.logical_name,
            "KeyAttributes": list(key.attributes),
            "EntityKeyIndexStatus": "Active",
            "MetadataId": metadata_id(table.logical_name, "key", key.name),
        }
        for key in table.keys
    ]


def entity_metadata(table: Table, bulk_supported: bool) -> dict:
    return {
        "MetadataId": metadata_id(table.logical_name),
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name or table.logical_name,
        "DisplayName": label(table.display_name or display_name(table.logical_name)),
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": table.object_type_code,
        "OwnershipType": table.ownership,
        "IsCustomEntity": table.is_custom,
        "TableType": "Standard",
        "IsPrivate": False,
        "IsActivity": False,
        "ChangeTrackingEnabled": table.change_tracking,
        "IsOptimisticConcurrencyEnabled": True,
        "@c360.emulator.BulkMessagesSupported": bulk_supported,
    }


def message_filter_table() -> Table:
    columns = {
        "sdkmessagefilterid": Column("sdkmessagefilterid", "Uniqueidentifier", read_only=True),
        "primaryobjecttypecode": Column(
            "primaryobjecttypecode", "String", max_length=100, read_only=True
        ),
        "sdkmessageid/name": Column("sdkmessageid/name", "String", max_length=256, read_only=True),
        "iscustomprocessingstepallowed": Column(
            "iscustomprocessingstepallowed", "Boolean", read_only=True
        ),
        "versionnumber": Column("versionnumber", "BigInt", read_only=True),
    }
    table = Table(
        logical_name="sdkmessagefilter",
        entity_set="sdkmessagefilters",
        primary_id="sdkmessagefilterid",
        primary_name=None,
        object_type_code=4607,
        ownership="None",
        is_custom=False,
        change_tracking=False,
        bulk_messages=False,
        columns=columns,
        keys=(),
        states={},
    )
    for column in columns.values():
        table.query_names[column.name] = column
    return table


MESSAGE_FILTERS = message_filter_table()


def message_filters(
    api_url: str, schema: Schema, bulk_supported: dict[str, bool], query: str
) -> ApiResponse:
    rows = []
    for table in schema.tables.values():
        messages = STANDARD_MESSAGES + (BULK_MESSAGES if bulk_supported[table.logical_name] else ())
        for message in messages:
            rows.append(
                {
                    "sdkmessagefilterid": metadata_id("filter", table.logical_name, message),
                    "primaryobjecttypecode": table.logical_name,
                    "sdkmessageid/name": message,
                    "iscustomprocessingstepallowed": True,
                    "versionnumber": 1,
                }
            )
    options = parse_query(MESSAGE_FILTERS, query)
    if options.filter_text:
        predicate = compile_filter(MESSAGE_FILTERS, options.filter_text, options.aliases)
        rows = [r for r in rows if predicate(r)]
    value = [representation(MESSAGE_FILTERS, r, options.select) for r in rows]
    for item in value:
        item.pop("versionnumber", None)
    return json_response(
        200, {"@odata.context": f"{api_url}$metadata#sdkmessagefilters", "value": value}
    )
