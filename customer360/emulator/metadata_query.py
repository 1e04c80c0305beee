"""Reading table definitions: `GET EntityDefinitions…` and `RetrieveMetadataChanges`.

Paths (query-metadata-web-api.md, retrieve-metadata-name-metadataid.md):
`EntityDefinitions[(key)]`, `…/Attributes[(key)][/<type cast>]`, `…/Keys[(key)]`, where a key is
`LogicalName='x'` or the MetadataId, and a type cast such as
`Microsoft.Dynamics.CRM.PicklistAttributeMetadata` narrows attributes to one class. Query options:
`$select`, `$filter` (see metadata_filter) and `$expand` (`Attributes`, `Keys`, `OptionSet`, each
with nested `$select`/`$filter` separated by `;`). Any other option is a 400, never ignored.
"""

from __future__ import annotations

import json

from customer360.emulator import errors
from customer360.emulator.messages import ApiResponse, json_response
from customer360.emulator.metadata import (
    CLASS_FAMILIES,
    METADATA_CLASSES,
    attribute_metadata,
    entity_metadata,
    key_metadata,
    metadata_id,
)
from customer360.emulator.metadata_filter import compile_metadata_filter
from customer360.emulator.odata_literals import (
    LiteralError,
    Segment,
    parse_key_predicate,
    split_outside_quotes,
)
from customer360.emulator.schema import Column, Schema, Table

CAST_PREFIX = "Microsoft.Dynamics.CRM."
METADATA_OPTIONS = {"$select", "$filter", "$expand"}


# ---- query options ------------------------------------------------------------------------------
def metadata_options(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The `$` options of a metadata query; an unsupported one is Dataverse's 400."""
    options: dict[str, str] = {}
    for name, value in pairs:
        if not name.startswith("$"):
            continue
        if name not in METADATA_OPTIONS:
            raise errors.bad_request(
                f"The query parameter {name} is not supported for metadata queries.",
                errors.QUERY_NOT_SUPPORTED,
            )
        options[name] = value
    return options


def _expansions(text: str) -> dict[str, dict[str, str]]:
    """`Attributes($select=A;$filter=…),Keys` → {"Attributes": {"$select": "A", …}, "Keys": {}}."""
    out: dict[str, dict[str, str]] = {}
    for part in split_outside_quotes(text, ","):
        part = part.strip()
        if not part:
            continue
        name, paren, inner = part.partition("(")
        nested: dict[str, str] = {}
        if paren:
            if not inner.endswith(")"):
                raise errors.bad_request(
                    f"Syntax error in $expand '{text}'.", errors.QUERY_NOT_SUPPORTED
                )
            for option in split_outside_quotes(inner[:-1], ";"):
                key, _, value = option.partition("=")
                nested.update(metadata_options([(key.strip(), value.strip())]))
        out[name.strip()] = nested
    return out


def _names(select: str | None) -> list[str] | None:
    return [n.strip() for n in select.split(",") if n.strip()] if select else None


def _project(item: dict, names: list[str] | None) -> dict:
    if names is None:
        return item
    keep = set(names) | {"MetadataId"}
    return {k: v for k, v in item.items() if k in keep or k.startswith("@")}


def _filtered(items: list[dict], text: str | None) -> list[dict]:
    if not text:
        return items
    predicate = compile_metadata_filter(text)
    return [item for item in items if predicate(item)]


def _unknown_property(name: str, type_name: str) -> errors.DataverseError:
    return errors.bad_request(
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'.",
        errors.PROPERTY_NOT_FOUND,
    )


# ---- documents ----------------------------------------------------------------------------------
def _attribute(table: Table, column: Column, options: dict[str, str] | None) -> dict:
    """One attribute; its OptionSet stays unless a `$select` without `$expand=OptionSet`."""
    options = options or {}
    item = attribute_metadata(table, column)
    option_set = item.pop("OptionSet", None)
    item = _project(item, _names(options.get("$select")))
    expand = _expansions(options.get("$expand", ""))
    unknown = set(expand) - {"OptionSet"}
    if unknown:
        raise _unknown_property(sorted(unknown)[0], "AttributeMetadata")
    if option_set is not None and ("OptionSet" in expand or not options.get("$select")):
        item["OptionSet"] = _project(option_set, _names(expand.get("OptionSet", {}).get("$select")))
    return item


def _attributes(table: Table, cast: str | None, options: dict[str, str]) -> list[dict]:
    """Filtered on the whole definition first, then projected (`$select` may leave out the
    property the filter tests)."""
    wanted = None if cast is None else CLASS_FAMILIES.get(cast, {cast})
    columns = [
        c for c in table.columns.values() if wanted is None or METADATA_CLASSES[c.type] in wanted
    ]
    text = options.get("$filter")
    if text:
        predicate = compile_metadata_filter(text)
        columns = [c for c in columns if predicate(attribute_metadata(table, c))]
    return [_attribute(table, c, options) for c in columns]


def _keys(table: Table, options: dict[str, str]) -> list[dict]:
    items = _filtered(key_metadata(table), options.get("$filter"))
    return [_project(k, _names(options.get("$select"))) for k in items]


def _entity(table: Table, bulk: bool, options: dict[str, str]) -> dict:
    item = _project(entity_metadata(table, bulk), _names(options.get("$select")))
    for name, nested in _expansions(options.get("$expand", "")).items():
        if name == "Attributes":
            item["Attributes"] = _attributes(table, None, nested)
        elif name == "Keys":
            item["Keys"] = _keys(table, nested)
        else:
            raise _unknown_property(name, "EntityMetadata")
    return item


def _entities(schema: Schema, bulk: dict[str, bool], options: dict[str, str]) -> list[dict]:
    tables = list(schema.tables.values())
    text = options.get("$filter")
    if text:
        predicate = compile_metadata_filter(text)
        tables = [t for t in tables if predicate(entity_metadata(t, bulk[t.logical_name]))]
    return [_entity(t, bulk[t.logical_name], options) for t in tables]


# ---- routing ------------------------------------------------------------------------------------
def table_from_predicate(schema: Schema, predicate: str) -> Table:
    """`LogicalName='x'` or a MetadataId → the table (404 when there is none)."""
    parsed = _key(predicate, "EntityMetadata")
    if parsed.primary is not None:
        wanted = str(parsed.primary.value)
        for table in schema.tables.values():
            if metadata_id(table.logical_name) == wanted:
                return table
        raise errors.DataverseError(
            404, errors.OBJECT_DOES_NOT_EXIST, f"Could not find entity with id {wanted}."
        )
    table = schema.tables.get(str(parsed.parts["LogicalName"].value).lower())
    if table is None:
        raise errors.DataverseError(
            404,
            errors.OBJECT_DOES_NOT_EXIST,
            f"Could not find an entity with name {parsed.parts['LogicalName'].value} and "
            "metadata id.",
        )
    return table


def column_from_predicate(table: Table, predicate: str) -> Column:
    parsed = _key(predicate, "AttributeMetadata")
    for column in table.columns.values():
        if parsed.primary is not None:
            if metadata_id(table.logical_name, column.name) == str(parsed.primary.value):
                return column
        elif column.name == str(parsed.parts["LogicalName"].value).lower():
            return column
    raise errors.DataverseError(
        404,
        errors.OBJECT_DOES_NOT_EXIST,
        f"Could not find an attribute with {predicate} on entity {table.logical_name}.",
    )


def _key(predicate: str, type_name: str):
    try:
        parsed = parse_key_predicate(predicate)
    except LiteralError as exc:
        raise errors.bad_request(str(exc), errors.QUERY_NOT_SUPPORTED) from None
    if parsed.primary is None and set(parsed.parts) != {"LogicalName"}:
        raise errors.invalid_key(type_name)
    return parsed


def _cast(segment: Segment | None) -> str | None:
    if segment is None:
        return None
    if not segment.name.startswith(CAST_PREFIX) or segment.predicate is not None:
        raise errors.segment_not_found(segment.name)
    name = segment.name[len(CAST_PREFIX) :]
    if name not in CLASS_FAMILIES and name not in METADATA_CLASSES.values():
        raise errors.segment_not_found(segment.name)
    return name


def entity_definitions(
    api_url: str,
    schema: Schema,
    segments: list[Segment],
    pairs: list[tuple[str, str]],
    bulk: dict[str, bool],
) -> ApiResponse:
    """GET on `EntityDefinitions` and everything below it."""
    options = metadata_options(pairs)
    first, rest = segments[0], segments[1:]
    context = f"{api_url}$metadata#EntityDefinitions"
    if first.predicate is None:
        if rest:
            raise errors.segment_not_found(rest[0].name)
        value = _entities(schema, bulk, options)
        return json_response(200, {"@odata.context": context, "value": value})
    table = table_from_predicate(schema, first.predicate)
    if not rest:
        item = {"@odata.context": f"{context}/$entity"}
        item.update(_entity(table, bulk[table.logical_name], options))
        return json_response(200, item)
    owner = f"{context}({metadata_id(table.logical_name)})"
    if rest[0].name == "Attributes" and len(rest) <= 2:
        cast = _cast(rest[1] if len(rest) == 2 else None)
        if rest[0].predicate is None:
            value = _attributes(table, cast, options)
            return json_response(200, {"@odata.context": f"{owner}/Attributes", "value": value})
        column = column_from_predicate(table, rest[0].predicate)
        if cast is not None and METADATA_CLASSES[column.type] not in CLASS_FAMILIES.get(
            cast, {cast}
        ):
            raise errors.bad_request(
                f"The attribute {column.name} is not a {cast}.", errors.INVALID_ARGUMENT
            )
        item = {"@odata.context": f"{owner}/Attributes/$entity"}
        item.update(_attribute(table, column, options))
        return json_response(200, item)
    if rest[0].name == "Keys" and len(rest) == 1:
        if rest[0].predicate is None:
            keys = _keys(table, options)
            return json_response(200, {"@odata.context": f"{owner}/Keys", "value": keys})
        keys = key_metadata(table)
        wanted = _key(rest[0].predicate, "EntityKeyMetadata")
        for key in keys:
            if (wanted.primary is not None and key["MetadataId"] == str(wanted.primary.value)) or (
                wanted.primary is None
                and key["LogicalName"] == str(wanted.parts["LogicalName"].value).lower()
            ):
                return json_response(200, {"@odata.context": f"{owner}/Keys/$entity", **key})
        raise errors.DataverseError(
            404, errors.OBJECT_DOES_NOT_EXIST, f"Could not find key {rest[0].predicate}."
        )
    raise errors.segment_not_found(rest[-1].name)


# ---- RetrieveMetadataChanges --------------------------------------------------------------------
def _condition_matches(item: dict, condition: dict) -> bool:
    name = condition.get("PropertyName")
    operator = condition.get("ConditionOperator", "Equals")
    raw = condition.get("Value")
    value = raw.get("Value") if isinstance(raw, dict) else raw
    actual = item.get(name)
    if isinstance(actual, str) and isinstance(value, str):
        actual, value = actual.casefold(), value.casefold()
    if operator == "Equals":
        return actual == value
    if operator == "NotEquals":
        return actual != value
    if operator in ("In", "NotIn"):
        values = value if isinstance(value, list) else [value]
        values = [v.casefold() if isinstance(v, str) else v for v in values]
        return (actual in values) == (operator == "In")
    raise errors.bad_request(
        f"The condition operator {operator} is not supported by the local Dataverse emulator.",
        errors.QUERY_NOT_SUPPORTED,
    )


def _matches(item: dict, criteria: dict | None) -> bool:
    if not criteria:
        return True
    results = [_condition_matches(item, c) for c in criteria.get("Conditions", [])]
    results += [_matches(item, f) for f in criteria.get("Filters", [])]
    if not results:
        return True
    return any(results) if criteria.get("FilterOperator") == "Or" else all(results)


def _properties(item: dict, query: dict) -> dict:
    names = (query.get("Properties") or {}).get("PropertyNames")
    if not names or (query.get("Properties") or {}).get("AllProperties"):
        return item
    keep = set(names) | {"MetadataId", "@odata.type"}
    return {k: v for k, v in item.items() if k in keep}


def retrieve_metadata_changes(
    api_url: str,
    schema: Schema,
    segment: Segment,
    pairs: list[tuple[str, str]],
    bulk: dict[str, bool],
) -> ApiResponse:
    """`RetrieveMetadataChanges(Query=@p1)?@p1=<EntityQueryExpression JSON>`."""
    aliases = dict(pairs)
    predicate = (segment.predicate or "").strip()
    name, _, alias = predicate.partition("=")
    if name.strip() != "Query":
        raise errors.bad_request("RetrieveMetadataChanges needs a Query parameter.")
    text = aliases.get(alias.strip(), alias.strip())
    try:
        query = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.bad_request(f"The Query parameter is not valid JSON ({exc.msg}).") from None
    if not isinstance(query, dict):
        raise errors.bad_request("The Query parameter must be an EntityQueryExpression.")
    attr_query = query.get("AttributeQuery") or {}
    found = []
    for table in schema.tables.values():
        entity = entity_metadata(table, bulk[table.logical_name])
        if not _matches(entity, query.get("Criteria")):
            continue
        out = _properties(entity, query)
        wanted = (query.get("Properties") or {}).get("PropertyNames") or ["Attributes"]
        if "Attributes" in wanted:
            attrs = [attribute_metadata(table, c) for c in table.columns.values()]
            out["Attributes"] = [
                _properties(a, attr_query) for a in attrs if _matches(a, attr_query.get("Criteria"))
            ]
        found.append(out)
    return json_response(
        200,
        {
            "@odata.context": f"{api_url}$metadata#Microsoft.Dynamics.CRM."
            "RetrieveMetadataChangesResponse",
            "EntityMetadata": found,
            "ServerVersionStamp": "emulator",
            "DeletedMetadata": None,
        },
    )
