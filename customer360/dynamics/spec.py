"""The publish spec: one readable configuration per target table.

Build it in Python (`PublishSpec(...)`) or load it from a dict / YAML text (`load_spec`,
`load_spec_yaml`). Loading checks the shape and names the offending field; checks that need the
target's metadata (does the column exist, is the key a defined alternate key) happen when the
engine compiles the spec against EntityDefinitions (see `plan.py`).

Example (YAML)::

    table: crc33_customer
    entity_set: crc33_customers
    mode: upsert                 # insert | upsert | update | append | delete
    key: {strategy: business_key, columns: {crc33_cid: cid}}
    defaults: {trim: true, length_policy: error, null_policy: ignore}
    columns:
      crc33_firstname: FirstName
      crc33_email: {source: Email, length_policy: truncate}
      crc33_gender: {source: Gender, option_labels: true}
    state: {statecode: {source: Status}, statuscode: {source: Reason}}
    owner: {source: OwnerEmail, by: key, key_attribute: internalemailaddress}
    change_detection: true
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

#: Namespace for deterministic record ids: uuid5(namespace, "<table>|<key segment>").
DEFAULT_ID_NAMESPACE = uuid.UUID("6f1c2a8e-3d4b-5c6d-8e9f-0a1b2c3d4e5f")


class SpecError(ValueError):
    """A publish spec is malformed; the message names the field and the problem."""


class Mode(StrEnum):
    INSERT = "insert"  # create new records; keys already in the target are not touched
    UPSERT = "upsert"  # create or update by key
    UPDATE = "update"  # update listed columns of records that must exist
    APPEND = "append"  # bulk create without reading the target; micro-batch fallback on error
    DELETE = "delete"  # deactivate (statecode/statuscode) or, with hard=True, delete


class KeyStrategy(StrEnum):
    PRIMARY_ID = "primary_id"  # the source carries the target's GUID
    BUSINESS_KEY = "business_key"  # the source carries alternate-key column values


class LengthPolicy(StrEnum):
    ERROR = "error"
    TRUNCATE = "truncate"


class NullPolicy(StrEnum):
    IGNORE = "ignore"  # a null source value leaves the target column as it is
    CLEAR = "clear"  # a null source value clears the target column


class Coercion(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    GUID = "guid"
    CHOICE = "choice"


class OwnerType(StrEnum):
    SYSTEMUSER = "systemuser"
    TEAM = "team"


class LookupBy(StrEnum):
    ID = "id"
    KEY = "key"


@dataclass(frozen=True)
class Rules:
    """Sanitisation defaults; each column may override any of them."""

    trim: bool = True
    length_policy: LengthPolicy = LengthPolicy.ERROR
    null_policy: NullPolicy = NullPolicy.IGNORE


@dataclass(frozen=True)
class LookupSpec:
    """A lookup column: the source value names a record of `table` by id or by key.

    `navigation` is the single-valued navigation property used in `@odata.bind` (for example
    `parentcustomerid_account`); `attribute` the lookup attribute whose `_<attribute>_value`
    holds the current GUID (defaults to the column's target name).
    """

    table: str  # logical name of the referenced table, e.g. account
    navigation: str
    by: LookupBy = LookupBy.ID
    key_attribute: str | None = None
    attribute: str | None = None


@dataclass(frozen=True)
class ColumnSpec:
    """One target column fed from one source column, with optional rule overrides."""

    target: str
    source: str
    trim: bool | None = None
    length_policy: LengthPolicy | None = None
    null_policy: NullPolicy | None = None
    coerce: Coercion | None = None  # None: from the target attribute's type
    #: True: translate labels through the metadata option set; a mapping: explicit labels
    option_labels: bool | Mapping[str, int] = False
    lookup: LookupSpec | None = None


@dataclass(frozen=True)
class KeySpec:
    """How a source row finds its target record.

    `columns` maps target attribute → source column. For `primary_id` it has exactly one entry,
    the primary id attribute; for `business_key` the attributes of one alternate key.
    """

    strategy: KeyStrategy
    columns: Mapping[str, str]


@dataclass(frozen=True)
class StateValue:
    """A state/status value: from a source column, or a constant (int value or label)."""

    source: str | None = None
    constant: int | str | None = None


@dataclass(frozen=True)
class StateSpec:
    statecode: StateValue
    statuscode: StateValue | None = None  # None: the statecode's default status


@dataclass(frozen=True)
class OwnerSpec:
    """The owner column: resolved to a systemuser or a team, by GUID or by a key attribute."""

    source: str
    owner_type: OwnerType = OwnerType.SYSTEMUSER
    by: LookupBy = LookupBy.ID
    key_attribute: str | None = None  # e.g. internalemailaddress / domainname, or team name


@dataclass(frozen=True)
class DeleteSpec:
    """`mode: delete`: soft (deactivate) unless `hard`; soft uses these state values."""

    hard: bool = False
    statecode: int = 1
    statuscode: int | None = None  # None: the default status of `statecode`


@dataclass(frozen=True)
class PublishSpec:
    table: str  # logical name, e.g. crc33_customer
    entity_set: str  # e.g. crc33_customers
    mode: Mode
    key: KeySpec
    columns: tuple[ColumnSpec, ...] = ()
    defaults: Rules = field(default_factory=Rules)
    state: StateSpec | None = None
    owner: OwnerSpec | None = None
    delete: DeleteSpec = field(default_factory=DeleteSpec)
    change_detection: bool = True
    id_namespace: uuid.UUID = DEFAULT_ID_NAMESPACE
    #: rows per write request; None = the engine default for the primitive
    batch_size: int | None = None

    def __post_init__(self) -> None:
        _check_spec(self)

    def rules_for(self, column: ColumnSpec) -> Rules:
        """The effective rules of one column (its overrides on top of `defaults`)."""
        d = self.defaults
        return Rules(
            trim=d.trim if column.trim is None else column.trim,
            length_policy=column.length_policy or d.length_policy,
            null_policy=column.null_policy or d.null_policy,
        )

    @property
    def source_columns(self) -> list[str]:
        """Every source column the spec reads, in a stable order without repeats."""
        names: list[str] = list(self.key.columns.values())
        names += [c.source for c in self.columns]
        if self.state:
            names += [
                v.source for v in (self.state.statecode, self.state.statuscode) if v and v.source
            ]
        if self.owner:
            names.append(self.owner.source)
        return list(dict.fromkeys(names))


def _check_spec(spec: PublishSpec) -> None:
    where = f"publish spec for {spec.table!r}"
    if not spec.table or not spec.entity_set:
        raise SpecError(f"{where}: table and entity_set are required")
    if not spec.key.columns:
        raise SpecError(f"{where}: key.columns must name at least one column")
    if spec.key.strategy is KeyStrategy.PRIMARY_ID and len(spec.key.columns) != 1:
        raise SpecError(f"{where}: key strategy primary_id takes exactly one column")
    targets = [c.target for c in spec.columns]
    dupes = sorted({t for t in targets if targets.count(t) > 1})
    if dupes:
        raise SpecError(f"{where}: columns map the target column(s) {dupes} more than once")
    clash = sorted(set(targets) & set(spec.key.columns))
    if clash:
        raise SpecError(f"{where}: key column(s) {clash} must not also be listed in columns")
    if spec.mode is Mode.UPDATE and not spec.columns and not spec.state and not spec.owner:
        raise SpecError(f"{where}: mode update needs at least one column, state or owner")
    if spec.batch_size is not None and not 1 <= spec.batch_size <= 1000:
        raise SpecError(f"{where}: batch_size must be between 1 and 1000, got {spec.batch_size}")
    if spec.owner and spec.owner.by is LookupBy.KEY and not spec.owner.key_attribute:
        raise SpecError(f"{where}: owner.by=key needs owner.key_attribute")
    for c in spec.columns:
        if c.lookup and c.lookup.by is LookupBy.KEY and not c.lookup.key_attribute:
            raise SpecError(f"{where}: column {c.target!r}: lookup.by=key needs key_attribute")
    if spec.state:
        v = spec.state.statecode
        if (v.source is None) == (v.constant is None):
            raise SpecError(f"{where}: state.statecode needs exactly one of source or constant")


# --------------------------------------------------------------------------- loading


def load_spec(data: Mapping[str, Any]) -> PublishSpec:
    """Build a spec from a dict (as parsed from YAML/JSON). Raises SpecError naming the field."""
    if not isinstance(data, Mapping):
        raise SpecError(f"a publish spec must be a mapping, got {type(data).__name__}")
    allowed = {f.name for f in fields(PublishSpec)}
    unknown = sorted(set(data) - allowed)
    table = data.get("table", "?")
    if unknown:
        raise SpecError(f"publish spec for {table!r}: unknown field(s) {unknown}")
    for required in ("table", "entity_set", "mode", "key"):
        if required not in data:
            raise SpecError(f"publish spec for {table!r}: missing required field {required!r}")
    where = f"publish spec for {table!r}"
    try:
        return PublishSpec(
            table=_str(data["table"], "table", where),
            entity_set=_str(data["entity_set"], "entity_set", where),
            mode=_enum(Mode, data["mode"], "mode", where),
            key=_key(data["key"], where),
            columns=_columns(data.get("columns", {}), where),
            defaults=_rules(data.get("defaults", {}), where),
            state=_state(data.get("state"), where),
            owner=_owner(data.get("owner"), where),
            delete=_delete(data.get("delete", {}), where),
            change_detection=_bool(data.get("change_detection", True), "change_detection", where),
            id_namespace=uuid.UUID(str(data.get("id_namespace", DEFAULT_ID_NAMESPACE))),
            batch_size=data.get("batch_size"),
        )
    except SpecError:
        raise
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None


def load_spec_yaml(source: str | Path) -> PublishSpec:
    """Load a spec from YAML text or a `.yaml`/`.yml` file path."""
    import yaml  # PyYAML ships with Dagster; imported lazily so the engine does not need it

    if isinstance(source, Path) or (
        isinstance(source, str) and source.endswith((".yaml", ".yml")) and "\n" not in source
    ):
        path = Path(source)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from None
        try:
            return load_spec(data)
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise SpecError(f"publish spec: not valid YAML: {exc}") from None
    return load_spec(data)


def _str(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: {name} must be a non-empty string, got {value!r}")
    return value.strip()


def _bool(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def _enum(kind: type[StrEnum], value: Any, name: str, where: str) -> Any:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        allowed = " | ".join(m.value for m in kind)
        raise SpecError(f"{where}: {name} must be one of {allowed}, got {value!r}") from None


def _mapping(value: Any, name: str, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: {name} must be a mapping, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SpecError(f"{where}: {name} has unknown field(s) {unknown}")
    return value


def _key(value: Any, where: str) -> KeySpec:
    m = _mapping(value, "key", where, {"strategy", "columns"})
    columns = m.get("columns")
    if isinstance(columns, str):
        columns = {columns: columns}
    if isinstance(columns, list):
        columns = {c: c for c in columns}
    if not isinstance(columns, Mapping) or not columns:
        raise SpecError(f"{where}: key.columns must map target attribute to source column")
    return KeySpec(
        strategy=_enum(KeyStrategy, m.get("strategy", "business_key"), "key.strategy", where),
        columns={
            _str(k, "key column", where): _str(v, "key source", where) for k, v in columns.items()
        },
    )


def _rules(value: Any, where: str) -> Rules:
    m = _mapping(value, "defaults", where, {"trim", "length_policy", "null_policy"})
    return Rules(
        trim=_bool(m.get("trim", True), "defaults.trim", where),
        length_policy=_enum(LengthPolicy, m.get("length_policy", "error"), "length_policy", where),
        null_policy=_enum(NullPolicy, m.get("null_policy", "ignore"), "null_policy", where),
    )


_COLUMN_FIELDS = {
    "source",
    "trim",
    "length_policy",
    "null_policy",
    "coerce",
    "option_labels",
    "lookup",
}


def _columns(value: Any, where: str) -> tuple[ColumnSpec, ...]:
    if isinstance(value, list):  # [{target: x, source: y, ...}, ...]
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or "target" not in item:
                raise SpecError(f"{where}: columns[{i}] must be a mapping with a 'target'")
            rest = {k: v for k, v in item.items() if k != "target"}
            items.append((item["target"], rest))
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise SpecError(f"{where}: columns must be a mapping target → source, got {value!r}")
    out = []
    for target, raw in items:
        target = _str(target, "column target", where)
        here = f"{where}: column {target!r}"
        if isinstance(raw, str):
            out.append(ColumnSpec(target=target, source=raw.strip()))
            continue
        m = _mapping(raw, f"column {target!r}", where, _COLUMN_FIELDS)
        labels = m.get("option_labels", False)
        if isinstance(labels, Mapping):
            labels = {str(k): int(v) for k, v in labels.items()}
        elif not isinstance(labels, bool):
            raise SpecError(f"{here}: option_labels must be true/false or a label → value map")
        out.append(
            ColumnSpec(
                target=target,
                source=_str(m.get("source", target), "source", here),
                trim=None if m.get("trim") is None else _bool(m["trim"], "trim", here),
                length_policy=(
                    None
                    if m.get("length_policy") is None
                    else _enum(LengthPolicy, m["length_policy"], "length_policy", here)
                ),
                null_policy=(
                    None
                    if m.get("null_policy") is None
                    else _enum(NullPolicy, m["null_policy"], "null_policy", here)
                ),
                coerce=None
                if m.get("coerce") is None
                else _enum(Coercion, m["coerce"], "coerce", here),
                option_labels=labels,
                lookup=_lookup(m["lookup"], here) if m.get("lookup") is not None else None,
            )
        )
    return tuple(out)


def _lookup(value: Any, where: str) -> LookupSpec:
    m = _mapping(
        value, "lookup", where, {"table", "navigation", "by", "key_attribute", "attribute"}
    )
    for required in ("table", "navigation"):
        if required not in m:
            raise SpecError(f"{where}: lookup needs {required!r}")
    return LookupSpec(
        table=_str(m["table"], "lookup.table", where),
        navigation=_str(m["navigation"], "lookup.navigation", where),
        by=_enum(LookupBy, m.get("by", "id"), "lookup.by", where),
        key_attribute=m.get("key_attribute"),
        attribute=m.get("attribute"),
    )


def _state_value(value: Any, name: str, where: str) -> StateValue:
    if isinstance(value, bool):
        raise SpecError(f"{where}: state.{name} must be a number, a label or {{source: column}}")
    if isinstance(value, int | str):
        return StateValue(constant=value)
    m = _mapping(value, f"state.{name}", where, {"source", "constant"})
    return StateValue(source=m.get("source"), constant=m.get("constant"))


def _state(value: Any, where: str) -> StateSpec | None:
    if value is None:
        return None
    m = _mapping(value, "state", where, {"statecode", "statuscode"})
    if "statecode" not in m:
        raise SpecError(f"{where}: state needs statecode")
    status = m.get("statuscode")
    return StateSpec(
        statecode=_state_value(m["statecode"], "statecode", where),
        statuscode=None if status is None else _state_value(status, "statuscode", where),
    )


def _owner(value: Any, where: str) -> OwnerSpec | None:
    if value is None:
        return None
    if isinstance(value, str):
        return OwnerSpec(source=value)
    m = _mapping(value, "owner", where, {"source", "owner_type", "by", "key_attribute"})
    if "source" not in m:
        raise SpecError(f"{where}: owner needs source")
    return OwnerSpec(
        source=_str(m["source"], "owner.source", where),
        owner_type=_enum(OwnerType, m.get("owner_type", "systemuser"), "owner.owner_type", where),
        by=_enum(LookupBy, m.get("by", "id"), "owner.by", where),
        key_attribute=m.get("key_attribute"),
    )


def _delete(value: Any, where: str) -> DeleteSpec:
    m = _mapping(value, "delete", where, {"hard", "statecode", "statuscode"})
    return DeleteSpec(
        hard=_bool(m.get("hard", False), "delete.hard", where),
        statecode=int(m.get("statecode", 1)),
        statuscode=None if m.get("statuscode") is None else int(m["statuscode"]),
    )
