"""Stage 2b: classify a prepared row against its target record (create, update, unchanged…).

Pure: the target record (or None when it does not exist / was not read) and the resolved lookup
GUIDs are passed in. Change detection compares normalised values (`values.comparable`) so that
`12.5` and `12.50`, `"1990-01-02"` and a date, `""` and null count as equal; only changed columns
are put in an update.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple

from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.plan import SYSTEM_COLUMNS, LookupPlan, TablePlan
from customer360.dynamics.prepare import PreparedRow
from customer360.dynamics.spec import KeyStrategy, LookupBy, Mode
from customer360.dynamics.values import (
    INVALID_OWNER_ID,
    LOOKUP_NOT_FOUND,
    RECORD_EXISTS,
    RECORD_NOT_FOUND,
    REQUIRED_FIELD_MISSING,
    RowProblem,
    comparable,
)

#: (table, by, reference) → GUID of the referenced record, or None when it does not exist
Resolved = Mapping[tuple[str, LookupBy, Any], uuid.UUID | None]


class Verdict(StrEnum):
    WRITE = "write"
    UNCHANGED = "unchanged"
    ABSENT = "absent"  # delete mode, and the record is not in Dataverse: nothing to do
    INVALID = "invalid"


class Classification(NamedTuple):
    """What to do with one row (a named tuple: one is made per source row)."""

    verdict: Verdict
    op: Operation | None = None
    problem: RowProblem | None = None


def lookup_ref(plan: LookupPlan, ref: Any) -> tuple[str, LookupBy, Any]:
    return (plan.table, plan.by, ref)


def classify(
    plan: TablePlan,
    row: PreparedRow,
    target: Mapping[str, Any] | None,
    resolved: Resolved,
    *,
    enforce_application_required: bool = True,
) -> Classification:
    """Decide what (if anything) to send for `row`. `target` is None when the record does not
    exist or the target was not read (append, blind upsert)."""
    try:
        binds = _binds(row, resolved)
        return _classify(plan, row, target, binds, enforce_application_required)
    except RowProblem as problem:
        return Classification(Verdict.INVALID, problem=problem)


def _binds(row: PreparedRow, resolved: Resolved) -> dict[str, tuple[LookupPlan, uuid.UUID | None]]:
    out: dict[str, tuple[LookupPlan, uuid.UUID | None]] = {}
    for value_attribute, (lookup, ref) in row.lookups.items():
        if ref is None:
            out[value_attribute] = (lookup, None)
            continue
        guid = resolved.get(lookup_ref(lookup, ref))
        if guid is None:
            code = INVALID_OWNER_ID if lookup.navigation == "ownerid" else LOOKUP_NOT_FOUND
            raise RowProblem(code, f"{lookup.navigation}: no {lookup.table} matches {ref!s}")
        out[value_attribute] = (lookup, guid)
    return out


def _bind_payload(binds: Mapping[str, tuple[LookupPlan, uuid.UUID | None]]) -> dict[str, Any]:
    return {
        f"{lookup.navigation}@odata.bind": (
            None if guid is None else f"/{lookup.entity_set}({guid})"
        )
        for lookup, guid in binds.values()
    }


def _classify(
    plan: TablePlan,
    row: PreparedRow,
    target: Mapping[str, Any] | None,
    binds: Mapping[str, tuple[LookupPlan, uuid.UUID | None]],
    enforce_application_required: bool,
) -> Classification:
    spec = plan.spec
    mode = spec.mode
    if mode is Mode.DELETE:
        return _delete(plan, row, target)
    if mode is Mode.APPEND or (target is None and mode in (Mode.INSERT, Mode.UPSERT)):
        if mode is Mode.UPSERT and not plan.reads_target:
            return _write(_upsert(plan, row, binds))
        return _write(_create(plan, row, binds, enforce_application_required))
    if target is None:  # update of a record that does not exist
        raise RowProblem(
            RECORD_NOT_FOUND, f"no {plan.meta.logical_name} record has key {row.key_text}"
        )
    changes = _changes(plan, row, target, binds, full=not spec.change_detection)
    if not changes:
        return Classification(Verdict.UNCHANGED)
    if mode is Mode.INSERT:
        raise RowProblem(
            RECORD_EXISTS,
            f"a {plan.meta.logical_name} record with key {row.key_text} already exists "
            f"and differs in {sorted(_names(changes))}",
        )
    return _write(
        Operation(
            kind=OpKind.UPDATE,
            key_text=row.key_text,
            row_number=row.row_number,
            payload=changes,
            row=row.row,
            record_id=str(target[plan.primary_id]),
            key=dict(row.key),
        )
    )


def _write(op: Operation) -> Classification:
    return Classification(Verdict.WRITE, op=op)


def _names(changes: Mapping[str, Any]) -> list[str]:
    return [name.removesuffix("@odata.bind") for name in changes]


def _create(
    plan: TablePlan,
    row: PreparedRow,
    binds: Mapping[str, tuple[LookupPlan, uuid.UUID | None]],
    enforce_application_required: bool,
) -> Operation:
    record_id = row.record_id or plan.deterministic_id(row.key_text)
    payload: dict[str, Any] = {plan.primary_id: str(record_id)}
    if plan.spec.key.strategy is KeyStrategy.BUSINESS_KEY:
        payload.update({name: _json_key(v) for name, v in row.key.items()})
    payload.update({k: v for k, v in row.values.items() if v is not None})
    payload.update({k: v for k, v in _bind_payload(binds).items() if v is not None})
    if row.state is not None:
        payload["statecode"], payload["statuscode"] = row.state
    _check_required(plan, payload, enforce_application_required)
    return Operation(
        kind=OpKind.CREATE,
        key_text=row.key_text,
        row_number=row.row_number,
        payload=payload,
        row=row.row,
        record_id=str(record_id),
        key=dict(row.key),
    )


def _upsert(
    plan: TablePlan, row: PreparedRow, binds: Mapping[str, tuple[LookupPlan, uuid.UUID | None]]
) -> Operation:
    payload: dict[str, Any] = dict(row.values)  # key columns travel in the URL, not the body
    if binds:
        payload.update(_bind_payload(binds))
    key = dict(row.key)
    return upsert_op(row.key_text, row.row_number, row.row, key, row.record_id, payload, row.state)


def upsert_op(
    key_text: str,
    row_number: int,
    row: dict[str, Any],
    key: dict[str, Any],
    record_id: uuid.UUID | None,
    payload: dict[str, Any],
    state: tuple[int, int] | None,
) -> Operation:
    """The upsert of one row by its key (`payload`: its values and binds, owned by the op)."""
    if state is not None:
        payload["statecode"], payload["statuscode"] = state
    return Operation(
        kind=OpKind.UPSERT,
        key_text=key_text,
        row_number=row_number,
        payload=payload,
        row=row,
        record_id=str(record_id) if record_id else None,
        key=key,
    )


def _changes(
    plan: TablePlan,
    row: PreparedRow,
    target: Mapping[str, Any],
    binds: Mapping[str, tuple[LookupPlan, uuid.UUID | None]],
    *,
    full: bool,
) -> dict[str, Any]:
    attrs = plan.meta.attributes
    changes: dict[str, Any] = {}
    for name, value in row.values.items():
        if full or comparable(value, attrs.get(name)) != comparable(
            target.get(name), attrs.get(name)
        ):
            changes[name] = value
    for value_attribute, (lookup, guid) in binds.items():
        current = target.get(value_attribute)
        same = (guid is None and current in (None, "")) or (
            guid is not None and current is not None and str(current).lower() == str(guid)
        )
        if full or not same:
            changes[f"{lookup.navigation}@odata.bind"] = (
                None if guid is None else f"/{lookup.entity_set}({guid})"
            )
    if row.state is not None:
        current_state = (_int(target.get("statecode")), _int(target.get("statuscode")))
        if full or current_state != row.state:
            changes["statecode"], changes["statuscode"] = row.state
    return changes


def _delete(plan: TablePlan, row: PreparedRow, target: Mapping[str, Any] | None) -> Classification:
    spec = plan.spec
    if target is None:
        # deactivating or deleting a record that does not exist: the desired state holds
        return Classification(Verdict.ABSENT)
    if spec.delete.hard:
        return _write(
            Operation(
                kind=OpKind.DELETE,
                key_text=row.key_text,
                row_number=row.row_number,
                payload={},
                row=row.row,
                record_id=str(target[plan.primary_id]),
                key=dict(row.key),
            )
        )
    statecode = spec.delete.statecode
    statuscode = spec.delete.statuscode or plan.meta.default_status(statecode)
    current = (_int(target.get("statecode")), _int(target.get("statuscode")))
    if spec.change_detection and current == (statecode, statuscode):
        return Classification(Verdict.UNCHANGED)
    return _write(
        Operation(
            kind=OpKind.UPDATE,
            key_text=row.key_text,
            row_number=row.row_number,
            payload={"statecode": statecode, "statuscode": statuscode},
            row=row.row,
            record_id=str(target[plan.primary_id]),
            key=dict(row.key),
        )
    )


def _check_required(plan: TablePlan, payload: Mapping[str, Any], enforce_application: bool) -> None:
    missing = []
    for name, attr in plan.meta.attributes.items():
        if not attr.required or name in SYSTEM_COLUMNS or name == plan.primary_id:
            continue
        if not attr.valid_for_create:
            continue
        if attr.required_level == "ApplicationRequired" and not enforce_application:
            continue
        if payload.get(name) is None and payload.get(f"{name}@odata.bind") is None:
            missing.append(name)
    if missing:
        raise RowProblem(REQUIRED_FIELD_MISSING, f"required column(s) {missing} have no value")


def _json_key(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
