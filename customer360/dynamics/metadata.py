"""Target table metadata parsed from `EntityDefinitions` (types, lengths, keys, option sets).

Parsing is tolerant of both shapes Dataverse serves: labels as `Label.UserLocalizedLabel.Label`
or `Label.LocalizedLabels[0].Label`, required level as `{"Value": ...}` or a bare string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Attribute types as Dataverse names them (`AttributeType`).
STRING_TYPES = frozenset({"String", "Memo", "EntityName"})
INTEGER_TYPES = frozenset({"Integer", "BigInt"})
DECIMAL_TYPES = frozenset({"Decimal", "Money"})
FLOAT_TYPES = frozenset({"Double"})
CHOICE_TYPES = frozenset({"Picklist", "State", "Status"})
LOOKUP_TYPES = frozenset({"Lookup", "Owner", "Customer"})


@dataclass(frozen=True)
class OptionMetadata:
    value: int
    label: str | None
    state: int | None = None  # Status options: the statecode this status belongs to
    default_status: int | None = None  # State options: the default statuscode


@dataclass(frozen=True)
class AttributeMetadata:
    logical_name: str
    attribute_type: str
    max_length: int | None = None
    required_level: str = "None"  # None | Recommended | ApplicationRequired | SystemRequired
    valid_for_create: bool = True
    valid_for_update: bool = True
    date_only: bool = False
    min_value: float | None = None
    max_value: float | None = None
    precision: int | None = None
    options: tuple[OptionMetadata, ...] = ()
    targets: tuple[str, ...] = ()  # lookup target tables

    def option_value(self, label: str) -> int | None:
        """The value of the option whose label equals `label` (exact first, then casefold)."""
        for opt in self.options:
            if opt.label == label:
                return opt.value
        folded = label.casefold()
        for opt in self.options:
            if opt.label is not None and opt.label.casefold() == folded:
                return opt.value
        return None

    @property
    def required(self) -> bool:
        return self.required_level in ("ApplicationRequired", "SystemRequired")

    @property
    def option_values(self) -> frozenset[int]:
        return frozenset(o.value for o in self.options)


@dataclass(frozen=True)
class EntityMetadata:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    attributes: Mapping[str, AttributeMetadata]
    keys: Mapping[str, tuple[str, ...]]  # key name → attributes (only usable keys)
    change_tracking: bool = False
    bulk_messages: frozenset[str] = field(default_factory=frozenset)

    def attribute(self, name: str) -> AttributeMetadata | None:
        return self.attributes.get(name)

    def has_key(self, columns: Sequence[str]) -> bool:
        wanted = set(columns)
        return any(set(attrs) == wanted for attrs in self.keys.values())

    @property
    def state(self) -> AttributeMetadata | None:
        return self.attributes.get("statecode")

    @property
    def status(self) -> AttributeMetadata | None:
        return self.attributes.get("statuscode")

    def default_status(self, statecode: int) -> int | None:
        state = self.state
        if state:
            for opt in state.options:
                if opt.value == statecode and opt.default_status is not None:
                    return opt.default_status
        status = self.status
        if status:  # fall back to the first status of that state
            for opt in status.options:
                if opt.state == statecode:
                    return opt.value
        return None

    def valid_state_pair(self, statecode: int, statuscode: int) -> bool:
        status = self.status
        if status is None or not status.options:
            return True  # nothing to check against
        return any(o.value == statuscode and o.state == statecode for o in status.options)


def entity_definition_path(logical_name: str) -> str:
    """Relative URL that fetches one table's definition with attributes and keys."""
    from customer360.dynamics.odata import string_literal

    return f"EntityDefinitions(LogicalName={string_literal(logical_name)})?$expand=Attributes,Keys"


def parse_entity_definition(data: Mapping[str, Any]) -> EntityMetadata:
    """Parse the JSON of `EntityDefinitions(LogicalName='x')?$expand=Attributes,Keys`."""
    try:
        logical_name = data["LogicalName"]
        attributes = {a["LogicalName"]: parse_attribute(a) for a in data.get("Attributes") or []}
        keys = {}
        for key in data.get("Keys") or []:
            status = key.get("EntityKeyIndexStatus", "Active")
            if status not in ("Active", None):
                continue  # an index still building cannot be used in URLs yet
            keys[key.get("LogicalName") or ",".join(key["KeyAttributes"])] = tuple(
                key["KeyAttributes"]
            )
        return EntityMetadata(
            logical_name=logical_name,
            entity_set=data["EntitySetName"],
            primary_id=data["PrimaryIdAttribute"],
            primary_name=data.get("PrimaryNameAttribute"),
            attributes=attributes,
            keys=keys,
            change_tracking=bool(data.get("ChangeTrackingEnabled", False)),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"unexpected EntityDefinitions payload: missing {exc}") from None


def parse_attribute(a: Mapping[str, Any]) -> AttributeMetadata:
    attribute_type = a.get("AttributeType") or _type_from_odata(a.get("@odata.type", ""))
    required = a.get("RequiredLevel")
    if isinstance(required, Mapping):
        required = required.get("Value")
    fmt = str(a.get("Format") or a.get("DateTimeBehavior", {}) or "")
    behavior = a.get("DateTimeBehavior")
    if isinstance(behavior, Mapping):
        behavior = behavior.get("Value")
    options = _options(a)
    return AttributeMetadata(
        logical_name=a["LogicalName"],
        attribute_type=str(attribute_type),
        max_length=_int_or_none(a.get("MaxLength")),
        required_level=str(required or "None"),
        valid_for_create=a.get("IsValidForCreate", True) is not False,
        valid_for_update=a.get("IsValidForUpdate", True) is not False,
        date_only=fmt == "DateOnly" or behavior == "DateOnly",
        min_value=_float_or_none(a.get("MinValue")),
        max_value=_float_or_none(a.get("MaxValue")),
        precision=_int_or_none(a.get("Precision")),
        options=options,
        targets=tuple(a.get("Targets") or ()),
    )


def _type_from_odata(odata_type: str) -> str:
    # "#Microsoft.Dynamics.CRM.StringAttributeMetadata" → "String"
    name = odata_type.rsplit(".", 1)[-1]
    return name.removesuffix("AttributeMetadata") or "String"


def _options(a: Mapping[str, Any]) -> tuple[OptionMetadata, ...]:
    option_set = a.get("OptionSet") or a.get("GlobalOptionSet") or {}
    raw = option_set.get("Options") if isinstance(option_set, Mapping) else None
    if raw is None:
        raw = a.get("Options") or []
    return tuple(
        OptionMetadata(
            value=int(o["Value"]),
            label=_label(o.get("Label")),
            state=_int_or_none(o.get("State")),
            default_status=_int_or_none(o.get("DefaultStatus")),
        )
        for o in raw
    )


def _label(label: Any) -> str | None:
    if label is None or isinstance(label, str):
        return label
    user = label.get("UserLocalizedLabel")
    if isinstance(user, Mapping) and user.get("Label") is not None:
        return str(user["Label"])
    for localized in label.get("LocalizedLabels") or []:
        if localized.get("Label") is not None:
            return str(localized["Label"])
    return None


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def _float_or_none(v: Any) -> float | None:
    return None if v is None else float(v)
