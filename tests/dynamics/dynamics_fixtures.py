"""Shared builders for the pure unit tests: metadata shaped like a real EntityDefinitions reply."""

from __future__ import annotations

from customer360.dynamics.metadata import EntityMetadata, parse_entity_definition


def _label(text: str) -> dict:
    return {"UserLocalizedLabel": {"Label": text, "LanguageCode": 1033}}


def customer_definition() -> dict:
    def string(name: str, length: int, required: str = "None") -> dict:
        return {
            "@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "LogicalName": name,
            "AttributeType": "String",
            "MaxLength": length,
            "RequiredLevel": {"Value": required},
        }

    return {
        "LogicalName": "crc33_customer",
        "EntitySetName": "crc33_customers",
        "PrimaryIdAttribute": "crc33_customerid",
        "PrimaryNameAttribute": "crc33_name",
        "ChangeTrackingEnabled": True,
        "Attributes": [
            {"LogicalName": "crc33_customerid", "AttributeType": "Uniqueidentifier"},
            {
                "LogicalName": "crc33_cid",
                "AttributeType": "Integer",
                "MinValue": 0,
                "MaxValue": 10**9,
            },
            string("crc33_name", 200, "ApplicationRequired"),
            string("crc33_firstname", 10),
            string("crc33_email", 100),
            {
                "LogicalName": "crc33_totalspend",
                "AttributeType": "Decimal",
                "Precision": 2,
                "MinValue": -1e11,
                "MaxValue": 1e11,
            },
            {
                "LogicalName": "crc33_churnprobability",
                "AttributeType": "Double",
                "Precision": 5,
                "MinValue": 0,
                "MaxValue": 1,
            },
            {"LogicalName": "crc33_dateofbirth", "AttributeType": "DateTime", "Format": "DateOnly"},
            {"LogicalName": "crc33_active", "AttributeType": "Boolean"},
            {
                "LogicalName": "crc33_gendercode",
                "AttributeType": "Picklist",
                "OptionSet": {
                    "Options": [
                        {"Value": 1, "Label": _label("Male")},
                        {"Value": 2, "Label": _label("Female")},
                    ]
                },
            },
            {
                "LogicalName": "statecode",
                "AttributeType": "State",
                "OptionSet": {
                    "Options": [
                        {"Value": 0, "DefaultStatus": 1, "Label": _label("Active")},
                        {"Value": 1, "DefaultStatus": 2, "Label": _label("Inactive")},
                    ]
                },
            },
            {
                "LogicalName": "statuscode",
                "AttributeType": "Status",
                "OptionSet": {
                    "Options": [
                        {"Value": 1, "State": 0, "Label": _label("Active")},
                        {"Value": 2, "State": 1, "Label": _label("Inactive")},
                        {"Value": 3, "State": 1, "Label": _label("Closed")},
                    ]
                },
            },
            {"LogicalName": "ownerid", "AttributeType": "Owner", "Targets": ["systemuser", "team"]},
        ],
        "Keys": [
            {
                "LogicalName": "crc33_cidkey",
                "KeyAttributes": ["crc33_cid"],
                "EntityKeyIndexStatus": "Active",
            },
            {
                "LogicalName": "pending",
                "KeyAttributes": ["crc33_email"],
                "EntityKeyIndexStatus": "Pending",
            },
        ],
    }


def customer_meta(bulk: bool = True) -> EntityMetadata:
    meta = parse_entity_definition(customer_definition())
    if bulk:
        from dataclasses import replace

        meta = replace(
            meta, bulk_messages=frozenset({"CreateMultiple", "UpdateMultiple", "UpsertMultiple"})
        )
    return meta


def systemuser_meta() -> EntityMetadata:
    return parse_entity_definition(
        {
            "LogicalName": "systemuser",
            "EntitySetName": "systemusers",
            "PrimaryIdAttribute": "systemuserid",
            "Attributes": [
                {"LogicalName": "systemuserid", "AttributeType": "Uniqueidentifier"},
                {
                    "LogicalName": "internalemailaddress",
                    "AttributeType": "String",
                    "MaxLength": 100,
                },
            ],
            "Keys": [],
        }
    )
