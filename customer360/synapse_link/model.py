"""The CDM ``model.json`` of a Synapse Link for Dataverse export: entities, attributes, types.

Synapse Link writes a CDM "model.json v1" document at the root of the container (or of each
incremental folder) and one single-entity copy per table under
``Microsoft.Athena.TrickleFeedService/<table>-model.json``. The attribute order in that document is
the column order of the headerless CSV files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# CDM data types Synapse Link uses for Dataverse tables (reference/dataverse.md §8).
CDM_DATA_TYPES = frozenset(
    {
        "guid",
        "string",
        "int32",
        "int64",
        "decimal",
        "double",
        "boolean",
        "dateTime",
        "dateTimeOffset",
    }
)
DATETIME_TYPES = frozenset({"dateTime", "dateTimeOffset"})

# A decimal attribute without the is.dataFormat.numeric.shaped trait gets this precision/scale.
DEFAULT_DECIMAL_PRECISION = 38
DEFAULT_DECIMAL_SCALE = 18

ID_COLUMN = "Id"
SINK_CREATED_ON = "SinkCreatedOn"
SINK_MODIFIED_ON = "SinkModifiedOn"
VERSION_NUMBER = "versionnumber"
IS_DELETE = "IsDelete"
CREATED_ON = "createdon"
MODIFIED_ON = "modifiedon"
# Columns written as ``M/d/yyyy h:mm:ss tt``; every other datetime is ISO 8601 with 7 digits.
SINK_TIMESTAMP_COLUMNS = frozenset({SINK_CREATED_ON, SINK_MODIFIED_ON})

PARTITION_GRANULARITY_ANNOTATION = "Athena:PartitionGranularity"
PARTITION_GRANULARITIES = frozenset({"Year", "Month"})

_NUMERIC_TRAIT = "is.dataFormat.numeric.shaped"
_CONSTRAINED_TRAIT = "is.constrained"


class SynapseLinkFormatError(ValueError):
    """The export does not follow the Synapse Link format (bad model.json, layout, ...)."""


@dataclass(frozen=True)
class Attribute:
    """One column of an exported table, in CSV column order."""

    name: str
    data_type: str
    max_length: int = -1
    precision: int | None = None
    scale: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("attribute name must not be empty")
        if self.data_type not in CDM_DATA_TYPES:
            raise ValueError(
                f"attribute {self.name!r}: unsupported CDM data type {self.data_type!r} "
                f"(supported: {', '.join(sorted(CDM_DATA_TYPES))})"
            )
        if self.data_type == "decimal":
            precision, scale = self.decimal_precision_scale
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise ValueError(
                    f"attribute {self.name!r}: invalid decimal({precision},{scale}) "
                    "(need 1 <= precision <= 38 and 0 <= scale <= precision)"
                )

    @property
    def decimal_precision_scale(self) -> tuple[int, int]:
        """Precision and scale, with the documented default decimal(38,18) when unset."""
        precision = DEFAULT_DECIMAL_PRECISION if self.precision is None else self.precision
        scale = DEFAULT_DECIMAL_SCALE if self.scale is None else self.scale
        return precision, scale


@dataclass(frozen=True)
class EntityModel:
    """One exported table: its attributes in CSV column order and its partitioning."""

    name: str
    attributes: tuple[Attribute, ...]
    partition_granularity: str = "Year"
    # Entity annotations other than Athena:PartitionGranularity (e.g. Athena:InitialSyncState).
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    # Partition names listed in the model.json (e.g. "2021"); readers list the folder instead.
    partitions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"invalid entity name {self.name!r}")
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "partitions", tuple(self.partitions))
        seen: set[str] = set()
        for attribute in self.attributes:
            key = attribute.name.lower()  # Spark and SQL resolve names case-insensitively
            if key in seen:
                raise ValueError(f"entity {self.name!r}: duplicate attribute {attribute.name!r}")
            seen.add(key)

    @property
    def column_names(self) -> list[str]:
        return [attribute.name for attribute in self.attributes]

    def attribute(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(f"entity {self.name!r} has no attribute {name!r}")

    def has_attribute(self, name: str) -> bool:
        return any(attribute.name == name for attribute in self.attributes)

    def with_added_attributes(self, *attributes: Attribute) -> EntityModel:
        """The same table with columns appended at the end, as Synapse Link adds new columns."""
        return EntityModel(
            name=self.name,
            attributes=self.attributes + tuple(attributes),
            partition_granularity=self.partition_granularity,
            annotations=dict(self.annotations),
            partitions=self.partitions,
        )

    def is_prefix_of(self, newer: EntityModel) -> bool:
        """True when ``newer`` only appends columns to this model (older files stay readable)."""
        if len(newer.attributes) < len(self.attributes):
            return False
        return all(
            (old.name, old.data_type) == (new.name, new.data_type)
            for old, new in zip(self.attributes, newer.attributes, strict=False)
        )

    @classmethod
    def for_dataverse_table(
        cls,
        name: str,
        business_attributes: Sequence[Attribute],
        *,
        partition_granularity: str = "Year",
    ) -> EntityModel:
        """The model Synapse Link exports for a Dataverse table with these columns.

        Column order follows the exports in reference/dataverse.md §8: ``Id, SinkCreatedOn,
        SinkModifiedOn``, the table's own columns, then ``versionnumber, createdon, modifiedon``
        (when the table has them) and ``IsDelete`` last. ``createdon``/``modifiedon`` are columns
        of the table, so pass them in ``business_attributes`` with their types.
        To add a column to an existing export later, use :meth:`with_added_attributes`.
        """
        reserved = {ID_COLUMN, SINK_CREATED_ON, SINK_MODIFIED_ON, VERSION_NUMBER, IS_DELETE}
        trailing_names = (CREATED_ON, MODIFIED_ON)
        body: list[Attribute] = []
        trailing: dict[str, Attribute] = {}
        for attribute in business_attributes:
            if attribute.name in reserved:
                raise ValueError(
                    f"table {name!r}: {attribute.name!r} is a column Synapse Link adds itself"
                )
            if attribute.name in trailing_names:
                trailing[attribute.name] = attribute
            else:
                body.append(attribute)
        attributes = [
            Attribute(ID_COLUMN, "guid"),
            Attribute(SINK_CREATED_ON, "dateTime"),
            Attribute(SINK_MODIFIED_ON, "dateTime"),
            *body,
            Attribute(VERSION_NUMBER, "int64"),
            *(trailing[n] for n in trailing_names if n in trailing),
            Attribute(IS_DELETE, "boolean"),
        ]
        return cls(
            name=name,
            attributes=tuple(attributes),
            partition_granularity=partition_granularity,
        )


# ---------------------------------------------------------------------------------------------
# model.json parsing


def parse_model_json(text: str | bytes) -> dict[str, EntityModel]:
    """Parse a CDM model.json (root, incremental folder or TrickleFeedService manifest).

    Returns the entities keyed by name. Raises :class:`SynapseLinkFormatError` naming the entity
    and attribute when the document is not a valid Synapse Link model.
    """
    document = _load_json(text)
    entities = document.get("entities")
    if not isinstance(entities, list):
        raise SynapseLinkFormatError("model.json has no 'entities' list")
    result: dict[str, EntityModel] = {}
    for position, raw_entity in enumerate(entities):
        entity = _parse_entity(raw_entity, position)
        if entity.name in result:
            raise SynapseLinkFormatError(f"model.json lists entity {entity.name!r} twice")
        result[entity.name] = entity
    return result


def model_annotations(text: str | bytes) -> dict[str, str]:
    """The model-level (not entity-level) annotations of a model.json, as name → value."""
    return _annotations(_load_json(text).get("annotations"), "model.json")


def _load_json(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SynapseLinkFormatError(f"model.json is not UTF-8: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SynapseLinkFormatError(f"model.json is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SynapseLinkFormatError("model.json must be a JSON object")
    return document


def _annotations(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise SynapseLinkFormatError(f"{where}: 'annotations' must be a list")
    result: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or "name" not in item:
            raise SynapseLinkFormatError(f"{where}: annotation without a name: {item!r}")
        value = item.get("value")
        result[str(item["name"])] = "" if value is None else str(value)
    return result


def _parse_entity(raw: Any, position: int) -> EntityModel:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SynapseLinkFormatError(f"model.json entity #{position} has no name")
    name = raw["name"]
    where = f"model.json entity {name!r}"
    raw_attributes = raw.get("attributes")
    if not isinstance(raw_attributes, list) or not raw_attributes:
        raise SynapseLinkFormatError(f"{where} has no attributes")
    attributes = tuple(_parse_attribute(item, where) for item in raw_attributes)
    annotations = _annotations(raw.get("annotations"), where)
    granularity = annotations.pop(PARTITION_GRANULARITY_ANNOTATION, "Year") or "Year"
    partitions = tuple(
        str(item["name"])
        for item in raw.get("partitions") or []
        if isinstance(item, dict) and "name" in item
    )
    try:
        return EntityModel(
            name=name,
            attributes=attributes,
            partition_granularity=granularity,
            annotations=annotations,
            partitions=partitions,
        )
    except ValueError as exc:
        raise SynapseLinkFormatError(f"{where}: {exc}") from None


def _parse_attribute(raw: Any, where: str) -> Attribute:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SynapseLinkFormatError(f"{where}: attribute without a name: {raw!r}")
    name = raw["name"]
    data_type = raw.get("dataType")
    max_length = raw.get("maxLength", -1)
    precision = scale = None
    for trait in raw.get("cdm:traits") or []:
        if not isinstance(trait, dict):
            continue
        arguments = {
            arg.get("name"): arg.get("value")
            for arg in trait.get("arguments") or []
            if isinstance(arg, dict)
        }
        if trait.get("traitReference") == _NUMERIC_TRAIT:
            precision = _as_int(arguments.get("precision"), f"{where}.{name} precision")
            scale = _as_int(arguments.get("scale"), f"{where}.{name} scale")
        elif trait.get("traitReference") == _CONSTRAINED_TRAIT and "maximumLength" in arguments:
            max_length = arguments["maximumLength"]
    try:
        return Attribute(
            name=name,
            data_type=str(data_type),
            max_length=_as_int(max_length, f"{where}.{name} maxLength") or -1,
            precision=precision,
            scale=scale,
        )
    except ValueError as exc:
        raise SynapseLinkFormatError(f"{where}: {exc}") from None


def _as_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SynapseLinkFormatError(f"{where} is not an integer: {value!r}") from None


# ---------------------------------------------------------------------------------------------
# model.json writing


def entity_to_json(
    entity: EntityModel,
    *,
    default_annotations: Mapping[str, str] | None = None,
    partition_locations: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The ``LocalEntity`` JSON object for one entity, as Synapse Link writes it.

    ``default_annotations`` are written unless the entity has its own value for them.
    """
    annotations = {PARTITION_GRANULARITY_ANNOTATION: entity.partition_granularity}
    annotations.update(default_annotations or {})
    annotations.update(entity.annotations)
    return {
        "$type": "LocalEntity",
        "name": entity.name,
        "description": entity.name,
        "annotations": [{"name": k, "value": v} for k, v in annotations.items()],
        "attributes": [_attribute_to_json(a) for a in entity.attributes],
        "partitions": [
            {"name": name, "location": location} for name, location in partition_locations
        ],
    }


def model_json_document(
    entities: Iterable[dict[str, Any]], *, annotations: Mapping[str, str] | None = None
) -> str:
    """A complete model.json text from ``entity_to_json`` objects."""
    document: dict[str, Any] = {"name": "cdm", "description": "cdm", "version": "1.0"}
    if annotations:
        document["annotations"] = [{"name": k, "value": v} for k, v in annotations.items()]
    document["entities"] = list(entities)
    return json.dumps(document, indent=2, ensure_ascii=False)


def _attribute_to_json(attribute: Attribute) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": attribute.name,
        "dataType": attribute.data_type,
        "maxLength": attribute.max_length,
    }
    if attribute.data_type == "string" and attribute.max_length > 0:
        result["cdm:traits"] = [
            {
                "traitReference": _CONSTRAINED_TRAIT,
                "arguments": [{"name": "maximumLength", "value": attribute.max_length}],
            }
        ]
    if attribute.data_type == "decimal" and (
        attribute.precision is not None or attribute.scale is not None
    ):
        precision, scale = attribute.decimal_precision_scale
        result["cdm:traits"] = [
            {
                "traitReference": _NUMERIC_TRAIT,
                "arguments": [
                    {"name": "precision", "value": precision},
                    {"name": "scale", "value": scale},
                ],
            }
        ]
    return result
