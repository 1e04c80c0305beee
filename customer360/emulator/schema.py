"""Table metadata for the emulator: columns, keys, state/status pairs, lookups.

Loaded from a JSON schema file (the packaged `schema.json` by default). Like Dataverse, the loader
adds the system columns every table has (createdon, modifiedon, versionnumber, ...), the owner
columns of user-owned tables and statecode/statuscode when the table declares states.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

STRING_TYPES = frozenset({"String", "Memo"})
INTEGER_TYPES = frozenset({"Integer", "BigInt"})
DECIMAL_TYPES = frozenset({"Decimal", "Money"})
LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
OPTION_TYPES = frozenset({"Picklist", "State", "Status"})
KNOWN_TYPES = (
    STRING_TYPES
    | INTEGER_TYPES
    | DECIMAL_TYPES
    | LOOKUP_TYPES
    | OPTION_TYPES
    | {"Uniqueidentifier", "Double", "Boolean", "DateTime", "File"}
)
REQUIRED_LEVELS = ("None", "Recommended", "ApplicationRequired", "SystemRequired")

# Edm type names used in payload errors and EntityDefinitions.
EDM_TYPES = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "Integer": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Decimal": "Edm.Decimal",
    "Money": "Edm.Decimal",
    "Double": "Edm.Double",
    "Boolean": "Edm.Boolean",
    "Uniqueidentifier": "Edm.Guid",
    "DateTime": "Edm.DateTimeOffset",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "Lookup": "Edm.Guid",
    "Customer": "Edm.Guid",
    "Owner": "Edm.Guid",
    "File": "Edm.Guid",
}


class SchemaError(ValueError):
    """The schema file is malformed; the message names the file, table and column."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    max_length: int | None = None
    required: str = "None"
    read_only: bool = False
    create_only: bool = False
    date_format: str | None = None  # "DateOnly" | "DateAndTime" for DateTime columns
    precision: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    options: dict[int, str] | None = None
    targets: tuple[str, ...] = ()
    schema_name: str | None = None  # as created (`new_Price`); None = the logical name
    display_name: str | None = None

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    @property
    def value_name(self) -> str:
        """Name the Web API uses for the column in JSON (`_x_value` for lookups)."""
        return f"_{self.name}_value" if self.is_lookup else self.name

    @property
    def edm_type(self) -> str:
        if self.type == "DateTime" and self.date_format == "DateOnly":
            return "Edm.Date"
        return EDM_TYPES[self.type]


@dataclass(frozen=True)
class Key:
    name: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class State:
    value: int
    name: str
    default_status: int
    statuses: dict[int, str]


@dataclass(frozen=True)
class Navigation:
    """A single-valued navigation property usable with `@odata.bind`."""

    name: str
    column: str
    targets: tuple[str, ...]


@dataclass
class Table:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    object_type_code: int
    ownership: str
    is_custom: bool
    change_tracking: bool
    bulk_messages: bool
    columns: dict[str, Column]
    keys: tuple[Key, ...]
    states: dict[int, State]
    schema_name: str | None = None
    display_name: str | None = None
    navigations: dict[str, Navigation] = field(default_factory=dict)
    # `_x_value` and plain names → column, for $select / $filter / $orderby.
    query_names: dict[str, Column] = field(default_factory=dict)

    @property
    def has_states(self) -> bool:
        return bool(self.states)

    @property
    def user_owned(self) -> bool:
        return self.ownership == "UserOwned"

    def status_to_state(self, status: int) -> int | None:
        for state in self.states.values():
            if status in state.statuses:
                return state.value
        return None


@dataclass
class Schema:
    tables: dict[str, Table]
    by_entity_set: dict[str, Table]
    # The schema-file form of every table, so a metadata change (a created table, an added
    # column or key) can be applied to the spec, re-parsed and persisted.
    specs: dict[str, dict] = field(default_factory=dict)
    source: str = "schema"

    def table(self, logical_name: str) -> Table:
        return self.tables[logical_name]

    def put_table(self, logical_name: str, spec: dict) -> Table:
        """Add or replace one table from its spec (validated like the schema file)."""
        table = _parse_table(self.source, logical_name, spec)
        for col in table.columns.values():
            for target in col.targets:
                if target not in self.tables and target != logical_name:
                    raise SchemaError(
                        f"{self.source}: table {logical_name!r} column {col.name!r} "
                        f"targets unknown table {target!r}"
                    )
        old = self.tables.get(logical_name)
        if old is not None:
            self.by_entity_set.pop(old.entity_set, None)
        self.tables[logical_name] = table
        self.by_entity_set[table.entity_set] = table
        self.specs[logical_name] = spec
        return table

    def drop_table(self, logical_name: str) -> None:
        table = self.tables.pop(logical_name)
        self.by_entity_set.pop(table.entity_set, None)
        self.specs.pop(logical_name, None)


def _system_columns(spec: dict, has_states: bool) -> dict[str, Column]:
    cols: dict[str, Column] = {
        "createdon": Column("createdon", "DateTime", date_format="DateAndTime", read_only=True),
        "modifiedon": Column("modifiedon", "DateTime", date_format="DateAndTime", read_only=True),
        "overriddencreatedon": Column(
            "overriddencreatedon", "DateTime", date_format="DateAndTime", create_only=True
        ),
        "createdby": Column("createdby", "Lookup", targets=("systemuser",), read_only=True),
        "modifiedby": Column("modifiedby", "Lookup", targets=("systemuser",), read_only=True),
        "versionnumber": Column("versionnumber", "BigInt", read_only=True),
    }
    if spec.get("ownership") == "UserOwned":
        cols["ownerid"] = Column(
            "ownerid", "Owner", targets=("systemuser", "team"), required="SystemRequired"
        )
        cols["owninguser"] = Column("owninguser", "Lookup", targets=("systemuser",), read_only=True)
        cols["owningteam"] = Column("owningteam", "Lookup", targets=("team",), read_only=True)
        cols["owningbusinessunit"] = Column(
            "owningbusinessunit", "Uniqueidentifier", read_only=True
        )
    if has_states:
        cols["statecode"] = Column("statecode", "State", required="SystemRequired")
        cols["statuscode"] = Column("statuscode", "Status")
    return cols


def _parse_column(where: str, name: str, spec: dict) -> Column:
    col_type = spec.get("type")
    if col_type not in KNOWN_TYPES:
        raise SchemaError(f"{where}: column {name!r} has unknown type {col_type!r}")
    required = spec.get("required", "None")
    if required not in REQUIRED_LEVELS:
        raise SchemaError(f"{where}: column {name!r} has unknown required level {required!r}")
    max_length = spec.get("max_length")
    if col_type in STRING_TYPES and not isinstance(max_length, int):
        raise SchemaError(f"{where}: string column {name!r} needs an integer max_length")
    options = None
    if col_type == "Picklist":
        raw = spec.get("options")
        if not isinstance(raw, dict) or not raw:
            raise SchemaError(f"{where}: picklist column {name!r} needs options")
        options = {int(k): str(v) for k, v in raw.items()}
    targets = tuple(spec.get("targets", ()))
    if col_type in LOOKUP_TYPES and not targets:
        raise SchemaError(f"{where}: lookup column {name!r} needs targets")
    date_format = None
    if col_type == "DateTime":
        date_format = spec.get("format", "DateAndTime")
        if date_format not in ("DateOnly", "DateAndTime"):
            raise SchemaError(f"{where}: column {name!r} has unknown date format {date_format!r}")
    return Column(
        name=name,
        type=col_type,
        max_length=max_length,
        required=required,
        read_only=bool(spec.get("read_only", False)),
        create_only=bool(spec.get("create_only", False)),
        date_format=date_format,
        precision=spec.get("precision"),
        min_value=spec.get("min"),
        max_value=spec.get("max"),
        options=options,
        targets=targets,
        schema_name=spec.get("schema_name"),
        display_name=spec.get("display_name"),
    )


def _parse_table(source: str, logical_name: str, spec: dict) -> Table:
    where = f"{source}: table {logical_name!r}"
    for required_key in ("entity_set", "primary_id", "columns"):
        if required_key not in spec:
            raise SchemaError(f"{where}: missing {required_key!r}")
    states: dict[int, State] = {}
    for raw in spec.get("states", []):
        statuses = {int(k): str(v) for k, v in raw["statuses"].items()}
        if raw["default_status"] not in statuses:
            raise SchemaError(f"{where}: default_status of state {raw['value']} not in statuses")
        states[int(raw["value"])] = State(
            int(raw["value"]), raw["name"], int(raw["default_status"]), statuses
        )
    columns: dict[str, Column] = {
        spec["primary_id"]: Column(spec["primary_id"], "Uniqueidentifier", create_only=True)
    }
    for name, col_spec in spec["columns"].items():
        columns[name] = _parse_column(where, name, col_spec)
    for name, col in _system_columns(spec, bool(states)).items():
        columns.setdefault(name, col)
    keys = []
    for raw in spec.get("keys", []):
        attrs = tuple(raw["attributes"])
        for attr in attrs:
            if attr not in columns:
                raise SchemaError(f"{where}: key {raw['name']!r} uses unknown column {attr!r}")
        keys.append(Key(raw["name"], attrs))
    table = Table(
        logical_name=logical_name,
        entity_set=spec["entity_set"],
        primary_id=spec["primary_id"],
        primary_name=spec.get("primary_name"),
        object_type_code=int(spec.get("object_type_code", 10000)),
        ownership=spec.get("ownership", "UserOwned"),
        is_custom=bool(spec.get("is_custom", True)),
        change_tracking=bool(spec.get("change_tracking", True)),
        bulk_messages=bool(spec.get("bulk_messages", True)),
        columns=columns,
        keys=tuple(keys),
        states=states,
        schema_name=spec.get("schema_name"),
        display_name=spec.get("display_name"),
    )
    for col in columns.values():
        table.query_names[col.name] = col
        table.query_names[col.value_name] = col
        if col.is_lookup and not col.read_only:
            if col.type == "Customer":
                for target in col.targets:
                    nav = f"{col.name}_{target}"
                    table.navigations[nav] = Navigation(nav, col.name, (target,))
            else:
                table.navigations[col.name] = Navigation(col.name, col.name, col.targets)
    return table


def load_schema(path: str | Path | None = None) -> Schema:
    """Load a schema file (default: the packaged schema.json)."""
    if path is None:
        text = resources.files("customer360.emulator").joinpath("schema.json").read_text("utf-8")
        source = "customer360/emulator/schema.json"
    else:
        source = str(path)
        text = Path(path).read_text("utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{source}: not valid JSON ({exc})") from None
    specs = dict(raw["tables"])
    tables = {name: _parse_table(source, name, spec) for name, spec in specs.items()}
    for table in tables.values():
        for col in table.columns.values():
            for target in col.targets:
                if target not in tables:
                    raise SchemaError(
                        f"{source}: table {table.logical_name!r} column {col.name!r} "
                        f"targets unknown table {target!r}"
                    )
    return Schema(
        tables=tables,
        by_entity_set={t.entity_set: t for t in tables.values()},
        specs=specs,
        source=source,
    )
