"""Changing table definitions: create/delete tables, add/delete columns and alternate keys.

Requests (create-update-entity-definitions-using-web-api.md, create-update-column-definitions-
using-web-api.md, define-alternate-keys-entity.md): `POST EntityDefinitions` (one table),
`POST CreateEntities` (the action Microsoft's Python SDK sends), `DELETE EntityDefinitions(id)`,
`POST EntityDefinitions(id)/Attributes`, `DELETE …/Attributes(id)`, `POST …/Keys`,
`DELETE …/Keys(id)`. Each change edits the table's schema-file spec, re-parses it (the same
validation as the schema file) and is kept in `<dataverse>/schema_changes.json`, so created
tables survive a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from customer360.emulator import errors
from customer360.emulator.messages import ApiResponse, empty_response
from customer360.emulator.metadata import metadata_id
from customer360.emulator.metadata_query import (
    column_from_predicate,
    table_from_predicate,
)
from customer360.emulator.odata_literals import Segment
from customer360.emulator.schema import Schema, SchemaError, Table
from customer360.emulator.store import Store

CHANGES_FILE = "schema_changes.json"
DUPLICATE_NAME = "0x80044363"  # "…is not unique" on metadata names
SIMPLE_TYPES = {
    "StringAttributeMetadata": "String",
    "MemoAttributeMetadata": "Memo",
    "IntegerAttributeMetadata": "Integer",
    "BigIntAttributeMetadata": "BigInt",
    "DecimalAttributeMetadata": "Decimal",
    "MoneyAttributeMetadata": "Money",
    "DoubleAttributeMetadata": "Double",
    "BooleanAttributeMetadata": "Boolean",
    "DateTimeAttributeMetadata": "DateTime",
    "PicklistAttributeMetadata": "Picklist",
    "FileAttributeMetadata": "File",
}


def apply_saved_changes(schema: Schema, directory: Path) -> None:
    """Re-apply the tables created or changed through the API (before the store loads)."""
    path = directory / CHANGES_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text("utf-8"))
    for name in saved.get("deleted", []):
        if name in schema.tables:
            schema.drop_table(name)
    for name, spec in saved.get("tables", {}).items():
        schema.put_table(name, spec)


def _label_text(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    user = value.get("UserLocalizedLabel")
    if isinstance(user, dict) and user.get("Label"):
        return str(user["Label"])
    for item in value.get("LocalizedLabels") or []:
        if isinstance(item, dict) and item.get("Label"):
            return str(item["Label"])
    return None


def _payload_error(detail: str) -> errors.DataverseError:
    return errors.bad_request(detail, errors.INVALID_ARGUMENT)


def column_spec(payload: dict) -> tuple[str, dict]:
    """An attribute definition (`*AttributeMetadata` JSON) → (logical name, column spec)."""
    kind = str(payload.get("@odata.type", "")).rsplit(".", 1)[-1].removeprefix("Complex")
    col_type = SIMPLE_TYPES.get(kind)
    if col_type is None:
        raise errors.DataverseError(
            400,
            errors.NOT_SUPPORTED,
            f"Creating a column of type '{kind or 'unknown'}' is not supported by the local "
            "Dataverse emulator.",
        )
    schema_name = payload.get("SchemaName")
    if not isinstance(schema_name, str) or "_" not in schema_name:
        raise _payload_error(
            f"The SchemaName '{schema_name}' must start with a customization prefix (new_…)."
        )
    spec: dict = {"type": col_type, "schema_name": schema_name}
    text = _label_text(payload.get("DisplayName"))
    if text:
        spec["display_name"] = text
    required = (payload.get("RequiredLevel") or {}).get("Value", "None")
    spec["required"] = required if required != "SystemRequired" else "ApplicationRequired"
    if col_type in ("String", "Memo"):
        spec["max_length"] = int(
            payload.get("MaxLength") or (100 if col_type == "String" else 2000)
        )
    for source, target in (("MinValue", "min"), ("MaxValue", "max"), ("Precision", "precision")):
        if payload.get(source) is not None:
            spec[target] = payload[source]
    if col_type == "DateTime":
        spec["format"] = "DateOnly" if payload.get("Format") == "DateOnly" else "DateAndTime"
    if col_type == "Picklist":
        options = (payload.get("OptionSet") or {}).get("Options") or []
        spec["options"] = {str(o["Value"]): _label_text(o.get("Label")) or "" for o in options}
        if not spec["options"]:
            raise _payload_error(f"The choice column '{schema_name}' needs options.")
    return schema_name.lower(), spec


class MetadataWriter:
    """Applies definition changes to the live schema and store, and saves them."""

    def __init__(
        self, schema: Schema, store: Store, directory: Path, on_change: Callable[[], None]
    ) -> None:
        self.schema = schema
        self.store = store
        self.directory = directory
        self.on_change = on_change  # drop caches that hold the old table objects

    # ---- persistence ----------------------------------------------------------------------
    def _save(self, changed: str | None = None, deleted: str | None = None) -> None:
        path = self.directory / CHANGES_FILE
        saved = json.loads(path.read_text("utf-8")) if path.exists() else {}
        tables = saved.setdefault("tables", {})
        gone = saved.setdefault("deleted", [])
        if changed is not None:
            tables[changed] = self.schema.specs[changed]
            if changed in gone:
                gone.remove(changed)
        if deleted is not None:
            tables.pop(deleted, None)
            gone.append(deleted)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, indent=1), "utf-8")
        tmp.replace(path)

    def _put(self, name: str, spec: dict) -> Table:
        try:
            table = self.schema.put_table(name, spec)
        except SchemaError as exc:
            raise _payload_error(str(exc)) from None
        self.store.register_table(table)
        self._save(changed=name)
        self.on_change()
        return table

    # ---- tables ---------------------------------------------------------------------------
    def create_entities(self, body: object, api_url: str) -> ApiResponse:
        entities = body.get("Entities") if isinstance(body, dict) else None
        if not isinstance(entities, list) or not entities:
            raise _payload_error("CreateEntities needs a non-empty 'Entities' list.")
        created = [self.create_entity(e) for e in entities]
        return empty_response(204, {"OData-EntityId": f"{api_url}EntityDefinitions({created[0]})"})

    def create_entity(self, payload: object) -> str:
        if not isinstance(payload, dict):
            raise _payload_error("The request body must be an EntityMetadata object.")
        schema_name = payload.get("SchemaName")
        if not isinstance(schema_name, str) or "_" not in schema_name:
            raise _payload_error(
                f"The SchemaName '{schema_name}' must start with a customization prefix (new_…)."
            )
        name = schema_name.lower()
        if name in self.schema.tables:
            raise errors.DataverseError(
                400, DUPLICATE_NAME, f"An entity with the name {name} already exists."
            )
        columns: dict[str, dict] = {}
        primary_name = None
        for attribute in payload.get("Attributes") or []:
            col_name, spec = column_spec(attribute)
            if attribute.get("IsPrimaryName"):
                primary_name = col_name
                spec["required"] = "ApplicationRequired"
            columns[col_name] = spec
        if primary_name is None:
            raise _payload_error("A table needs one attribute with IsPrimaryName = true.")
        spec = {
            "entity_set": f"{name}s" if not name.endswith("s") else f"{name}es",
            "primary_id": f"{name}id",
            "primary_name": primary_name,
            "object_type_code": 10000 + len(self.schema.tables) + 1000,
            "ownership": payload.get("OwnershipType") or "UserOwned",
            "is_custom": True,
            "change_tracking": bool(payload.get("ChangeTrackingEnabled", False)),
            "bulk_messages": True,
            "schema_name": schema_name,
            "display_name": _label_text(payload.get("DisplayName")) or schema_name,
            "columns": columns,
            "states": [
                {"value": 0, "name": "Active", "default_status": 1, "statuses": {"1": "Active"}},
                {
                    "value": 1,
                    "name": "Inactive",
                    "default_status": 2,
                    "statuses": {"2": "Inactive"},
                },
            ],
        }
        self._put(name, spec)
        return metadata_id(name)

    def delete_entity(self, table: Table) -> ApiResponse:
        if not table.is_custom:
            raise errors.DataverseError(
                400, errors.NOT_SUPPORTED, f"The entity {table.logical_name} cannot be deleted."
            )
        self.schema.drop_table(table.logical_name)
        self.store.drop_table(table.logical_name)
        self._save(deleted=table.logical_name)
        self.on_change()
        return empty_response(204)

    # ---- columns and keys -----------------------------------------------------------------
    def add_column(self, table: Table, payload: object, api_url: str) -> ApiResponse:
        if not isinstance(payload, dict):
            raise _payload_error("The request body must be an AttributeMetadata object.")
        name, spec = column_spec(payload)
        if name in table.columns:
            raise errors.DataverseError(
                400,
                DUPLICATE_NAME,
                f"An attribute with the name {name} already exists on {table.logical_name}.",
            )
        table_spec = json.loads(json.dumps(self.schema.specs[table.logical_name]))
        table_spec["columns"][name] = spec
        self._put(table.logical_name, table_spec)
        url = f"{api_url}EntityDefinitions({metadata_id(table.logical_name)})/Attributes("
        return empty_response(
            204, {"OData-EntityId": f"{url}{metadata_id(table.logical_name, name)})"}
        )

    def delete_column(self, table: Table, predicate: str) -> ApiResponse:
        column = column_from_predicate(table, predicate)
        spec = json.loads(json.dumps(self.schema.specs[table.logical_name]))
        used = any(column.name in key.attributes for key in table.keys)
        if column.name not in spec["columns"] or column.name == table.primary_name or used:
            raise errors.DataverseError(
                400,
                errors.NOT_SUPPORTED,
                f"The attribute {column.name} is a system, primary or key attribute and cannot "
                "be deleted.",
            )
        del spec["columns"][column.name]
        self._put(table.logical_name, spec)
        return empty_response(204)

    def add_key(self, table: Table, payload: object, api_url: str) -> ApiResponse:
        if not isinstance(payload, dict) or not isinstance(payload.get("SchemaName"), str):
            raise _payload_error("The request body must be an EntityKeyMetadata with SchemaName.")
        attributes = [str(a).lower() for a in payload.get("KeyAttributes") or []]
        spec = json.loads(json.dumps(self.schema.specs[table.logical_name]))
        keys = spec.setdefault("keys", [])
        if any(k["name"].lower() == payload["SchemaName"].lower() for k in keys):
            raise errors.DataverseError(
                400, DUPLICATE_NAME, f"A key named {payload['SchemaName']} already exists."
            )
        keys.append({"name": payload["SchemaName"], "attributes": attributes})
        if not attributes:
            raise _payload_error("An alternate key needs KeyAttributes.")
        self._check_unique(table, attributes)
        self._put(table.logical_name, spec)
        key_id = metadata_id(table.logical_name, "key", payload["SchemaName"])
        url = f"{api_url}EntityDefinitions(LogicalName='{table.logical_name}')/Keys({key_id})"
        return empty_response(204, {"OData-EntityId": url})

    def _check_unique(self, table: Table, attributes: list[str]) -> None:
        """Dataverse fails the key's index job on duplicates; here the POST fails at once."""
        seen: set[tuple] = set()
        for row in self.store.data(table.logical_name).rows.values():
            values = tuple(row.get(a) for a in attributes)
            if None in values:
                continue
            if values in seen:
                raise errors.DataverseError(
                    400,
                    errors.DUPLICATE_RECORD_ENTITY_KEY,
                    f"The key cannot be created: records with duplicate values of "
                    f"{', '.join(attributes)} exist in {table.logical_name}.",
                )
            seen.add(values)

    def delete_key(self, table: Table, predicate: str) -> ApiResponse:
        spec = json.loads(json.dumps(self.schema.specs[table.logical_name]))
        wanted = predicate.strip().strip("'").lower()
        before = len(spec.get("keys", []))
        spec["keys"] = [
            k
            for k in spec.get("keys", [])
            if metadata_id(table.logical_name, "key", k["name"]) != wanted
            and f"logicalname='{k['name'].lower()}'" != predicate.replace(" ", "").lower()
        ]
        if len(spec["keys"]) == before:
            raise errors.DataverseError(
                404, errors.OBJECT_DOES_NOT_EXIST, f"Could not find key {predicate}."
            )
        self._put(table.logical_name, spec)
        return empty_response(204)

    # ---- routing --------------------------------------------------------------------------
    def handle(
        self, method: str, segments: list[Segment], body: object, api_url: str
    ) -> ApiResponse:
        """POST/DELETE under `EntityDefinitions`."""
        first, rest = segments[0], segments[1:]
        if first.predicate is None:
            if method == "POST" and not rest:
                new_id = self.create_entity(body)
                return empty_response(
                    204, {"OData-EntityId": f"{api_url}EntityDefinitions({new_id})"}
                )
            raise errors.no_resource(f"{api_url}EntityDefinitions")
        table = table_from_predicate(self.schema, first.predicate)
        if not rest and method == "DELETE":
            return self.delete_entity(table)
        if len(rest) == 1 and rest[0].name == "Attributes":
            if method == "POST" and rest[0].predicate is None:
                return self.add_column(table, body, api_url)
            if method == "DELETE" and rest[0].predicate is not None:
                return self.delete_column(table, rest[0].predicate)
        if len(rest) == 1 and rest[0].name == "Keys":
            if method == "POST" and rest[0].predicate is None:
                return self.add_key(table, body, api_url)
            if method == "DELETE" and rest[0].predicate is not None:
                return self.delete_key(table, rest[0].predicate)
        if method in ("PUT", "PATCH"):
            raise errors.DataverseError(
                400,
                errors.NOT_SUPPORTED,
                "Updating table or column definitions is not supported by the local Dataverse "
                "emulator; delete and re-create the column.",
            )
        raise errors.no_resource(f"{api_url}EntityDefinitions(...)")
