"""Create, retrieve, update, upsert and delete with Dataverse's rules (no HTTP here).

Used by single requests, `$batch` parts and the *Multiple messages alike, so all three validate,
resolve keys and bind lookups the same way. Every write goes through the store inside the
caller's transaction; a DataverseError anywhere rolls the whole transaction back.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from customer360.emulator import errors
from customer360.emulator.annotations import Wanted, annotated
from customer360.emulator.odata_literals import (
    GUID_RE,
    LiteralError,
    parse_key_predicate,
    split_path,
)
from customer360.emulator.schema import STRING_TYPES, Column, Key, Schema, Table
from customer360.emulator.store import Store
from customer360.emulator.values import (
    coerce_literal,
    coerce_payload_value,
    column_coercer,
    to_json_value,
)

CONCURRENCY_MISMATCH = "0x80060882"
SERVICE_PREFIX = "/api/data/v9.2/"
#: `set(name=123)` / `/set(name='text')`: one key part, nothing quoted, escaped or nested
_SIMPLE_KEY_URL = re.compile(r"/?([A-Za-z_]\w*)\(([A-Za-z_]\w*)=(?:(-?\d{1,18})|'([^'%/(),=]*)')\)")
_WHOLE_TYPES = frozenset({"Integer", "BigInt", "Picklist", "State", "Status"})


@dataclass(frozen=True)
class Caller:
    """The authenticated principal: an application user mapped to a systemuser."""

    systemuserid: str
    name: str
    client_id: str


@dataclass
class Locator:
    """A record reference from a URL: primary key or alternate key values."""

    table: Table
    record_id: str | None = None
    key: Key | None = None
    key_values: tuple = ()

    def url_values(self) -> dict[str, object]:
        if self.key is None:
            return {}
        attributes = self.key.attributes
        if len(attributes) == 1:
            return {attributes[0]: self.key_values[0]}
        return dict(zip(attributes, self.key_values, strict=True))

    def not_found(self) -> errors.DataverseError:
        if self.key is not None:
            return errors.not_found_by_key(self.table.logical_name)
        return errors.not_found(self.table.logical_name, str(self.record_id))


@dataclass
class RequestContext:
    """Per-request state: who, when, what was touched and the modelled server cost."""

    caller: Caller
    now: str
    check_conflict: Callable[[str, str], None] | None = None
    touched: set[tuple[str, str]] = field(default_factory=set)
    records_written: int = 0
    records_read: int = 0
    cost_ms: float = 0.0

    def touch(self, table: str, record_id: str) -> None:
        if self.check_conflict is not None:
            self.check_conflict(table, record_id)
        self.touched.add((table, record_id))


_GUIDS = random.Random()


_VERSION_4 = ~((0xF000 << 64) | (0xC000 << 48)), (0x4000 << 64) | (0x8000 << 48)


def new_guid() -> str:
    """A random version-4 GUID from a PRNG (os.urandom per record is needlessly slow),
    formatted directly: the version and variant bits set as `uuid.UUID(int=…, version=4)`
    sets them, without building a UUID object per record."""
    clear, set_bits = _VERSION_4
    h = f"{(_GUIDS.getrandbits(128) & clear) | set_bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_etag(header: str) -> int | None:
    """`W/"123"` → 123; anything else → None."""
    text = header.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    return int(text) if text.isdigit() else None


def format_etag(version: int) -> str:
    return f'W/"{version}"'


class DataService:
    """Record operations over one store, with the emulator's schema and business unit."""

    def __init__(
        self,
        schema: Schema,
        store: Store,
        business_unit_id: str,
        enforce_application_required: bool = False,
    ) -> None:
        self.schema = schema
        self.store = store
        self.business_unit_id = business_unit_id
        self.enforce_application_required = enforce_application_required
        self._coercer_cache: dict[tuple[str, bool], dict] = {}
        self._required_cache: dict[tuple[str, bool], list[str]] = {}
        self._new_row_cache: dict[str, dict[str, object]] = {}

    def forget_tables(self) -> None:
        """A table definition changed: drop what was derived from the old one."""
        self._coercer_cache.clear()
        self._required_cache.clear()
        self._new_row_cache.clear()

    # ---- locating records -----------------------------------------------------------------
    def table_for_set(self, entity_set: str) -> Table:
        table = self.schema.by_entity_set.get(entity_set)
        if table is None:
            raise errors.segment_not_found(entity_set)
        return table

    def locator(self, table: Table, predicate: str) -> Locator:
        """Parse the key predicate of `set(<predicate>)` for this table."""
        try:
            parsed = parse_key_predicate(predicate)
        except LiteralError as exc:
            raise errors.bad_request(str(exc), errors.QUERY_NOT_SUPPORTED) from None
        if parsed.primary is not None:
            if parsed.primary.kind != "guid":
                raise errors.invalid_key(table.logical_name)
            return Locator(table, record_id=str(parsed.primary.value))
        names = parsed.parts
        if len(names) == 1 and table.primary_id in names:
            literal = names[table.primary_id]
            if literal.kind != "guid":
                raise errors.invalid_key(table.logical_name)
            return Locator(table, record_id=str(literal.value))
        columns = {}
        for name in names:
            column = table.query_names.get(name)
            if column is None:
                raise errors.invalid_key(table.logical_name)
            columns[column.name] = name
        for key in table.keys:
            if set(key.attributes) == set(columns):
                values = []
                for attr in key.attributes:
                    column = table.columns[attr]
                    try:
                        values.append(coerce_literal(table, column, names[columns[attr]]))
                    except errors.DataverseError:
                        raise errors.invalid_key(table.logical_name) from None
                return Locator(table, key=key, key_values=tuple(values))
        raise errors.invalid_key(table.logical_name)

    def locator_from_url(self, url: str, expected: Table | None = None) -> Locator:
        """`/accounts(...)`, `accounts(...)` or an absolute URL → Locator."""
        simple = _SIMPLE_KEY_URL.fullmatch(url)
        if simple is not None:
            found = self._simple_locator(*simple.groups(), expected)
            if found is not None:
                return found
        path = url
        marker = path.find(SERVICE_PREFIX)
        if marker >= 0:
            path = path[marker + len(SERVICE_PREFIX) :]
        # A URL in a body (`@odata.id`, `@odata.bind`) is percent-encoded like a request path:
        # decode it the same way before reading the key (quotes inside literals stay doubled).
        path = unquote(path.lstrip("/"))
        try:
            segments = split_path(path)
        except LiteralError as exc:
            raise errors.bad_request(str(exc), errors.QUERY_NOT_SUPPORTED) from None
        if len(segments) != 1 or segments[0].predicate is None:
            raise errors.bad_request(f"Invalid record URL '{url}'.", errors.INVALID_ARGUMENT)
        table = self.table_for_set(segments[0].name)
        if expected is not None and table is not expected:
            raise errors.bad_request(
                f"The record URL '{url}' does not refer to a {expected.logical_name} record.",
                errors.INVALID_ARGUMENT,
            )
        return self.locator(table, segments[0].predicate)

    def _simple_locator(
        self, entity_set: str, name: str, number: str | None, text: str | None, expected
    ) -> Locator | None:
        """`set(name=123)` or `set(name='text')` by a one-column alternate key, read without
        the general parser: what every UpsertMultiple target of a bulk load carries. None when
        anything is unusual (the general path then decides, with its errors)."""
        table = self.schema.by_entity_set.get(entity_set)
        if table is None or (expected is not None and table is not expected):
            return None
        column = table.query_names.get(name)
        if column is None or name == table.primary_id:
            return None
        if number is not None:
            if column.type not in _WHOLE_TYPES:
                return None
            value: object = int(number)
        elif column.type in STRING_TYPES:
            value = text
        else:
            return None
        for key in table.keys:
            if key.attributes == (column.name,):
                return Locator(table, key=key, key_values=(value,))
        return None

    def find(self, locator: Locator) -> str | None:
        table = locator.table
        if locator.record_id is not None:
            rid = locator.record_id
            return rid if rid in self.store.data(table.logical_name).rows else None
        assert locator.key is not None
        return self.store.find_by_key(table.logical_name, locator.key, locator.key_values)

    def retrieve(self, ctx: RequestContext, locator: Locator) -> dict:
        record_id = self.find(locator)
        if record_id is None:
            raise locator.not_found()
        ctx.records_read += 1
        return self.store.get(locator.table.logical_name, record_id)  # type: ignore[return-value]

    # ---- payloads ---------------------------------------------------------------------------
    def _coercers(self, table: Table, for_create: bool) -> dict:
        """Per-table map column → validator for the writable columns (cached). A string
        column maps to its max length (an int), checked inline: the hot path of bulk loads."""
        key = (table.logical_name, for_create)
        found = self._coercer_cache.get(key)
        if found is None:
            found = {
                c.name: (
                    c.max_length
                    if c.type in STRING_TYPES and c.max_length is not None
                    else column_coercer(table, c)
                )
                for c in table.columns.values()
                if not c.is_lookup and not c.read_only and (for_create or not c.create_only)
            }
            self._coercer_cache[key] = found
        return found

    def prepare(self, table: Table, body: dict, for_create: bool) -> dict[str, object]:
        """Validate a JSON body; return stored-form changes (lookups as `col` + `col@type`)."""
        if not isinstance(body, dict):
            raise errors.payload_error(table.entity_set, "The payload must be a JSON object.")
        coercers = self._coercers(table, for_create)
        changes: dict[str, object] = {}
        for name, value in body.items():
            coerce = coercers.get(name)
            if coerce is not None:
                if value is None:
                    changes[name] = None
                elif coerce.__class__ is int:
                    if value.__class__ is not str or len(value) > coerce:
                        value = coerce_payload_value(table, table.columns[name], value)
                    changes[name] = value
                else:
                    changes[name] = coerce(value)
                continue
            if name.endswith("@odata.bind"):
                self._bind(table, name[: -len("@odata.bind")], value, changes)
                continue
            if "@" in name:
                continue  # instance annotations (@odata.type, FormattedValue...) are ignored
            column = table.columns.get(name)
            if column is None:
                raise errors.invalid_property(name, table.logical_name)
            if column.is_lookup:
                raise errors.payload_error(
                    table.entity_set,
                    "A 'PrimitiveValue' node with non-null value was found when trying to read "
                    f"the value of the navigation property '{name}'; however, a 'StartArray' "
                    "node, a 'StartObject' node, or a 'PrimitiveValue' node with null value was "
                    "expected.",
                )
            # Read-only columns, or create-only ones on update: Dataverse ignores the value.
        return changes

    def _bind(self, table: Table, nav_name: str, value: object, changes: dict) -> None:
        nav = table.navigations.get(nav_name)
        if nav is None:
            column = table.columns.get(nav_name)
            if column is not None and column.type == "Customer":
                raise errors.payload_error(
                    table.entity_set,
                    f"An undeclared property '{nav_name}' which only has property annotations "
                    "in the payload but no property value was found in the payload. In OData, "
                    "only declared navigation properties and declared named streams can be "
                    "represented as properties without values.",
                )
            raise errors.invalid_property(nav_name, table.logical_name)
        if value is None:
            if nav.column == "ownerid":
                raise errors.DataverseError(
                    400, errors.INVALID_OWNER_ID, "The owner ID is invalid or missing."
                )
            changes[nav.column] = None
            changes[f"{nav.column}@type"] = None
            return
        if not isinstance(value, str):
            raise errors.DataverseError(
                400,
                errors.INVALID_URL_FOR_BIND,
                f"Invalid url value '{value}' for lookup property '{nav_name}'.",
            )
        try:
            target = self.locator_from_url(value)
        except errors.DataverseError:
            raise errors.DataverseError(
                400,
                errors.INVALID_URL_FOR_BIND,
                f"Invalid url value '{value}' for lookup property '{nav_name}'.",
            ) from None
        if target.table.logical_name not in nav.targets:
            if nav.column == "ownerid":
                raise errors.DataverseError(
                    400, errors.INVALID_OWNER_ID, "The owner ID is invalid or missing."
                )
            raise errors.DataverseError(
                400,
                errors.INVALID_URL_FOR_BIND,
                f"Invalid url value '{value}' for lookup property '{nav_name}'.",
            )
        target_id = self.find(target)
        if target_id is None:
            raise target.not_found()
        if nav.column == "ownerid" and target.table.logical_name == "team":
            team = self.store.get("team", target_id) or {}
            if team.get("teamtype") == 1:  # access teams cannot own records
                raise errors.DataverseError(
                    400, errors.INVALID_OWNER_ID, "The owner ID is invalid or missing."
                )
        changes[nav.column] = target_id
        changes[f"{nav.column}@type"] = target.table.logical_name

    # ---- rules shared by create and update ----------------------------------------------------
    def _apply_state(self, table: Table, current_state: int | None, changes: dict) -> None:
        if not table.has_states or ("statecode" not in changes and "statuscode" not in changes):
            return
        state_code = changes.get("statecode", current_state)
        if "statecode" in changes and "statuscode" not in changes:
            state = table.states.get(state_code)  # type: ignore[arg-type]
            if state is None:
                raise _state_error()
            changes["statuscode"] = state.default_status
            return
        state = table.states.get(state_code)  # type: ignore[arg-type]
        status = changes["statuscode"]
        if state is None or status not in state.statuses:
            raise _state_error()
        changes["statecode"] = state_code

    def _check_keys(self, table: Table, record_id: str, row: dict) -> None:
        for key in table.keys:
            holder = self.store.key_owner(table.logical_name, key, row)
            if holder is not None and holder != record_id:
                shown = ", ".join(str(row.get(a)) for a in key.attributes)
                attrs = ", ".join(key.attributes)
                raise errors.DataverseError(
                    412,
                    errors.DUPLICATE_RECORD_ENTITY_KEY,
                    f"Entity Key {key.name} violated. A record with the same value for {attrs} "
                    f"already exists ({shown}). A duplicate record cannot be created.",
                )

    def _owner_columns(self, row: dict) -> None:
        owner_type = row.get("ownerid@type")
        row["owninguser"] = row["ownerid"] if owner_type == "systemuser" else None
        row["owningteam"] = row["ownerid"] if owner_type == "team" else None

    # ---- writes ----------------------------------------------------------------------------
    def create(
        self,
        ctx: RequestContext,
        table: Table,
        changes: dict[str, object],
        record_id: str | None = None,
    ) -> dict:
        name = table.logical_name
        given_id = changes.pop(table.primary_id, None)
        record_id = str(given_id or record_id or new_guid()).lower()
        ctx.touch(name, record_id)
        if self.store.get(name, record_id) is not None:
            raise errors.DataverseError(
                412, errors.DUPLICATE_RECORD, "Cannot insert duplicate key."
            )
        if "statecode" in changes or "statuscode" in changes:
            self._apply_state(table, 0 if table.has_states else None, changes)
        # the columns every new record starts with (first state, caller as owner), in order
        row: dict[str, object] = {table.primary_id: record_id, **self._new_row(table)}
        user_owned = "ownerid" in row
        if user_owned:
            row["ownerid"] = ctx.caller.systemuserid
        row.update(changes)
        if user_owned:
            self._owner_columns(row)
        self._check_required(table, row)
        override = row.get("overriddencreatedon")
        row["createdon"] = override or ctx.now
        row["modifiedon"] = ctx.now
        row["createdby"] = ctx.caller.systemuserid
        row["modifiedby"] = ctx.caller.systemuserid
        _compute(table, row)
        self._check_keys(table, record_id, row)
        row["versionnumber"] = self.store.next_version()
        self.store.put(name, record_id, row)
        ctx.records_written += 1
        return row

    def _new_row(self, table: Table) -> dict[str, object]:
        """A new record's starting columns after its id (worked out once per table): the
        first state with its default status, and ownership (the owner is the caller)."""
        found = self._new_row_cache.get(table.logical_name)
        if found is None:
            found = {}
            if table.has_states:
                first = min(table.states)
                found["statecode"] = first
                found["statuscode"] = table.states[first].default_status
            if table.user_owned:
                found["ownerid"] = None
                found["ownerid@type"] = "systemuser"
                found["owningbusinessunit"] = self.business_unit_id
            self._new_row_cache[table.logical_name] = found
        return found

    def _check_required(self, table: Table, row: dict) -> None:
        for name in self._required_columns(table):
            if row.get(name) is None:
                raise errors.DataverseError(
                    400,
                    errors.REQUIRED_FIELD_MISSING,
                    f"Required field '{name}' is missing for entity '{table.logical_name}'.",
                )

    def _required_columns(self, table: Table) -> list[str]:
        key = (table.logical_name, self.enforce_application_required)
        found = self._required_cache.get(key)
        if found is None:
            levels = {"SystemRequired"}
            if self.enforce_application_required:
                levels.add("ApplicationRequired")
            found = [
                c.name
                for c in table.columns.values()
                if c.required in levels and not c.read_only and c.name != table.primary_id
            ]
            self._required_cache[key] = found
        return found

    def update(
        self,
        ctx: RequestContext,
        table: Table,
        record_id: str,
        changes: dict[str, object],
        expected_version: int | None = None,
    ) -> dict:
        name = table.logical_name
        ctx.touch(name, record_id)
        old = self.store.get(name, record_id)
        if old is None:
            raise errors.not_found(name, record_id)
        if expected_version is not None and old["versionnumber"] != expected_version:
            raise _version_mismatch()
        changes.pop(table.primary_id, None)
        self._apply_state(table, old.get("statecode"), changes)  # type: ignore[arg-type]
        row = dict(old)
        row.update(changes)
        if table.user_owned and "ownerid" in changes:
            self._owner_columns(row)
        self._check_required(table, row)
        row["modifiedon"] = ctx.now
        row["modifiedby"] = ctx.caller.systemuserid
        _compute(table, row)
        if any(a in changes for key in table.keys for a in key.attributes):
            self._check_keys(table, record_id, row)
        row["versionnumber"] = self.store.next_version()
        self.store.put(name, record_id, row)
        ctx.records_written += 1
        return row

    def upsert(
        self,
        ctx: RequestContext,
        locator: Locator,
        changes: dict[str, object],
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[dict, bool]:
        """PATCH semantics: update if the record exists, else create. Returns (row, created)."""
        table = locator.table
        record_id = self.find(locator)
        if if_match is not None:
            if record_id is None:
                raise locator.not_found()
            expected = None if if_match.strip() == "*" else parse_etag(if_match)
            if if_match.strip() != "*" and expected is None:
                raise _version_mismatch()
            return self.update(
                ctx, table, record_id, _without_keys(changes, locator), expected
            ), False
        if if_none_match is not None and if_none_match.strip() == "*" and record_id is not None:
            raise errors.DataverseError(
                412, errors.DUPLICATE_RECORD, "A record with matching key values already exists."
            )
        if record_id is not None:
            return self.update(ctx, table, record_id, _without_keys(changes, locator)), False
        for column, value in locator.url_values().items():
            changes.setdefault(column, value)  # body values win over the URL's key values
        return self.create(ctx, table, changes, record_id=locator.record_id), True

    def delete(self, ctx: RequestContext, locator: Locator, if_match: str | None = None) -> None:
        record_id = self.find(locator)
        if record_id is None:
            raise locator.not_found()
        ctx.touch(locator.table.logical_name, record_id)
        if if_match is not None and if_match.strip() != "*":
            row = self.store.get(locator.table.logical_name, record_id)
            if row is None or parse_etag(if_match) != row["versionnumber"]:
                raise _version_mismatch()
        self.store.delete(locator.table.logical_name, record_id, ctx.now)
        ctx.records_written += 1


def _without_keys(changes: dict, locator: Locator) -> dict:
    """Upsert strips the key columns from the body before Update (upsert docs)."""
    keys = locator.key.attributes if locator.key is not None else (locator.table.primary_id,)
    for name in keys:
        changes.pop(name, None)
    return changes


def _compute(table: Table, row: dict) -> None:
    """Computed columns Dataverse maintains itself (contact full name)."""
    if table.logical_name != "contact":
        return
    fullname = table.columns.get("fullname")
    if fullname is not None and fullname.read_only:
        parts = [row.get("firstname"), row.get("lastname")]
        row["fullname"] = " ".join(p for p in parts if p) or None


def _state_error() -> errors.DataverseError:
    return errors.DataverseError(
        400,
        errors.INVALID_STATE_STATUS,
        "State code is invalid or state code is valid but status code is invalid for a "
        "specified state code.",
    )


def _version_mismatch() -> errors.DataverseError:
    return errors.DataverseError(
        412,
        CONCURRENCY_MISMATCH,
        "The version of the existing record doesn't match the RowVersion property provided.",
    )


# ---- JSON representation -------------------------------------------------------------------
def representation(
    table: Table,
    row: dict,
    columns: list[Column] | None = None,
    annotate: Wanted | bool | None = None,
) -> dict:
    """A record as the Web API returns it (etag, selected columns, PK always present)."""
    out: dict[str, object] = {"@odata.etag": format_etag(row["versionnumber"])}
    for column in columns if columns is not None else list(table.columns.values()):
        if annotate:
            out.update(annotated(table, column, row, column.value_name, annotate))
        else:
            out[column.value_name] = to_json_value(column, row.get(column.name))
    if table.primary_id not in out:
        out[table.primary_id] = row[table.primary_id]
    return out


def is_guid(text: str) -> bool:
    return bool(GUID_RE.fullmatch(text))
