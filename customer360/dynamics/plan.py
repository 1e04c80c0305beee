"""Compile a publish spec against the target's metadata into a `TablePlan`.

Everything that can be checked once per run is checked here (columns exist and are writable, the
key is a defined alternate key, lookups point at real tables, state values are valid), so that a
mistake in the spec fails before the first row is read, with a message naming the spec field.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from customer360.dynamics.metadata import LOOKUP_TYPES, AttributeMetadata, EntityMetadata
from customer360.dynamics.spec import (
    ColumnSpec,
    KeyStrategy,
    LookupBy,
    Mode,
    OwnerType,
    PublishSpec,
    Rules,
    SpecError,
)

#: Columns Dataverse fills itself; never required from the source on create.
SYSTEM_COLUMNS = frozenset(
    {
        "statecode",
        "statuscode",
        "ownerid",
        "owninguser",
        "owningteam",
        "owningbusinessunit",
        "createdon",
        "modifiedon",
        "createdby",
        "modifiedby",
        "versionnumber",
        "overriddencreatedon",
    }
)

OWNER_TABLES = {OwnerType.SYSTEMUSER: "systemuser", OwnerType.TEAM: "team"}


@dataclass(frozen=True)
class LookupPlan:
    """How to resolve and bind one lookup (or the owner)."""

    table: str
    entity_set: str
    primary_id: str
    navigation: str  # property name before `@odata.bind`
    value_attribute: str  # `_<attr>_value` holding the current GUID when read back
    by: LookupBy
    key_attribute: str | None
    key_attr: AttributeMetadata | None  # metadata of key_attribute on the referenced table


@dataclass(frozen=True)
class ColumnPlan:
    spec: ColumnSpec
    attr: AttributeMetadata
    rules: Rules
    lookup: LookupPlan | None = None

    @property
    def target(self) -> str:
        return self.spec.target


@dataclass(frozen=True)
class TablePlan:
    spec: PublishSpec
    meta: EntityMetadata
    columns: tuple[ColumnPlan, ...]
    key_attrs: Mapping[str, AttributeMetadata]  # target key attribute → metadata
    owner: LookupPlan | None
    use_bulk: Mapping[str, bool]  # "CreateMultiple" / "UpdateMultiple" / "UpsertMultiple"

    @property
    def entity_set(self) -> str:
        return self.meta.entity_set

    @property
    def primary_id(self) -> str:
        return self.meta.primary_id

    @property
    def reads_target(self) -> bool:
        """Stage 1 fetches target rows unless nothing depends on them (append; blind upsert)."""
        if self.spec.mode is Mode.APPEND:
            return False
        if self.spec.mode is Mode.UPSERT:
            return self.spec.change_detection
        return True

    @property
    def reads_per_chunk(self) -> bool:
        """Whether a chunk's rows need reads before they can be classified (existing records,
        lookup or owner references): the chunk is then the unit of stages 1-2; otherwise rows
        stream to stage 3 a batch at a time."""
        return self.reads_target or self.owner is not None or any(c.lookup for c in self.columns)

    def select(self) -> list[str]:
        """Target columns to read back: the id, the key and only what the spec maps."""
        names = [self.primary_id, *self.key_attrs]
        for c in self.columns:
            names.append(c.lookup.value_attribute if c.lookup else c.target)
        if self.spec.state or self.spec.mode is Mode.DELETE:
            names += ["statecode", "statuscode"]
        if self.owner:
            names.append(self.owner.value_attribute)
        return list(dict.fromkeys(names))

    def deterministic_id(self, key_text: str) -> uuid.UUID:
        """The id a created record gets: same target + business key → same GUID, every run."""
        return uuid.uuid5(self.spec.id_namespace, f"{self.meta.logical_name}|{key_text}")


def compile_plan(
    spec: PublishSpec,
    meta: EntityMetadata,
    related: Mapping[str, EntityMetadata] | None = None,
) -> TablePlan:
    """Check `spec` against `meta` (and the metadata of tables it looks up) and compile it."""
    related = related or {}
    where = f"publish spec for {spec.table!r}"
    if meta.entity_set != spec.entity_set:
        raise SpecError(
            f"{where}: entity_set {spec.entity_set!r} does not match the table's entity set "
            f"{meta.entity_set!r}"
        )
    key_attrs = _key_attributes(spec, meta, where)
    columns = tuple(_column_plan(spec, meta, column, related, where) for column in spec.columns)
    owner = None
    if spec.owner:
        table = OWNER_TABLES[spec.owner.owner_type]
        owner = _lookup_plan(
            table,
            "ownerid",
            "_ownerid_value",
            spec.owner.by,
            spec.owner.key_attribute,
            related,
            f"{where}: owner",
        )
    _check_state(spec, meta, where)
    bulk = meta.bulk_messages
    return TablePlan(
        spec=spec,
        meta=meta,
        columns=columns,
        key_attrs=key_attrs,
        owner=owner,
        use_bulk={m: m in bulk for m in ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")},
    )


def _key_attributes(
    spec: PublishSpec, meta: EntityMetadata, where: str
) -> dict[str, AttributeMetadata]:
    """Target key attribute → metadata; the key must be the primary id or an alternate key."""
    if spec.key.strategy is KeyStrategy.PRIMARY_ID:
        (name,) = spec.key.columns
        if name != meta.primary_id:
            raise SpecError(
                f"{where}: key strategy primary_id must use {meta.primary_id!r}, got {name!r}"
            )
        return {name: meta.attribute(name) or AttributeMetadata(name, "Uniqueidentifier")}
    if not meta.has_key(list(spec.key.columns)):
        defined = {k: list(v) for k, v in meta.keys.items()}
        raise SpecError(
            f"{where}: key columns {sorted(spec.key.columns)} are not an active alternate key "
            f"of {meta.logical_name} (defined: {defined})"
        )
    return {name: _attribute(meta, name, where) for name in spec.key.columns}


def _column_plan(
    spec: PublishSpec,
    meta: EntityMetadata,
    column: ColumnSpec,
    related: Mapping[str, EntityMetadata],
    where: str,
) -> ColumnPlan:
    attr = _attribute(meta, column.target, where)
    if column.target in SYSTEM_COLUMNS:
        raise SpecError(f"{where}: column {column.target!r} is managed by the state/owner sections")
    lookup = None
    if column.lookup or attr.attribute_type in LOOKUP_TYPES:
        if column.lookup is None:
            raise SpecError(f"{where}: column {column.target!r} is a lookup; give lookup:")
        lookup = _lookup_plan(
            column.lookup.table,
            column.lookup.navigation,
            f"_{column.lookup.attribute or column.target}_value",
            column.lookup.by,
            column.lookup.key_attribute,
            related,
            f"{where}: column {column.target!r}",
        )
    if spec.mode is Mode.UPDATE and not attr.valid_for_update:
        raise SpecError(f"{where}: column {column.target!r} cannot be updated")
    return ColumnPlan(column, attr, spec.rules_for(column), lookup)


def _check_state(spec: PublishSpec, meta: EntityMetadata, where: str) -> None:
    if not (spec.state or spec.mode is Mode.DELETE):
        return
    if meta.state is None:
        raise SpecError(f"{where}: {meta.logical_name} has no statecode column")
    if spec.mode is Mode.DELETE and not spec.delete.hard:
        code = spec.delete.statecode
        status = spec.delete.statuscode or meta.default_status(code)
        if status is None or not meta.valid_state_pair(code, status):
            raise SpecError(
                f"{where}: delete.statecode={code}, statuscode={status} is not a valid pair"
            )


def _attribute(meta: EntityMetadata, name: str, where: str) -> AttributeMetadata:
    attr = meta.attribute(name)
    if attr is None:
        raise SpecError(f"{where}: {meta.logical_name} has no column {name!r}")
    return attr


def _lookup_plan(
    table: str,
    navigation: str,
    value_attribute: str,
    by: LookupBy,
    key_attribute: str | None,
    related: Mapping[str, EntityMetadata],
    where: str,
) -> LookupPlan:
    target = related.get(table)
    if target is None:
        raise SpecError(f"{where}: metadata of the referenced table {table!r} is not available")
    key_attr = None
    if by is LookupBy.KEY:
        key_attr = target.attribute(key_attribute or "")
        if key_attr is None:
            raise SpecError(f"{where}: {table} has no column {key_attribute!r} to look up by")
    return LookupPlan(
        table=table,
        entity_set=target.entity_set,
        primary_id=target.primary_id,
        navigation=navigation,
        value_attribute=value_attribute,
        by=by,
        key_attribute=key_attribute,
        key_attr=key_attr,
    )
