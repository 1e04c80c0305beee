"""Stage 2a: one source row → a `PreparedRow` (key, sanitised wire values, lookups, state).

Pure: no I/O. Lookup references are collected here and resolved by the engine in bulk (one query
per distinct chunk of values), then bound in `classify.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from customer360.dynamics.metadata import AttributeMetadata
from customer360.dynamics.odata import KeyValue, key_segment
from customer360.dynamics.plan import LookupPlan, TablePlan
from customer360.dynamics.spec import KeyStrategy, LookupBy, NullPolicy, Rules, StateValue
from customer360.dynamics.values import (
    INVALID_STATE_STATUS,
    INVALID_VALUE,
    MISSING_KEY,
    RowProblem,
    converter,
    to_wire,
    whole_number,
)

_KEY_RULES = Rules(trim=True)
_MISSING = object()  # a source column absent from the row (None is a value: null)


@dataclass
class PreparedRow:
    row_number: int
    row: dict[str, Any]
    key: dict[str, KeyValue]
    key_text: str
    match_text: str = ""  # the key as Dataverse compares it (see `match_text`)
    record_id: uuid.UUID | None = None  # the source's GUID (primary_id strategy)
    values: dict[str, Any] = field(default_factory=dict)  # attribute → wire value (None: clear)
    #: value attribute (`_x_value`) → (plan, reference); reference None means clear the lookup
    lookups: dict[str, tuple[LookupPlan, Any]] = field(default_factory=dict)
    state: tuple[int, int] | None = None


def key_value(value: Any, attr: AttributeMetadata) -> KeyValue:
    """A key part as the Web API compares it (integers stay integers, text is trimmed)."""
    wire = to_wire(value, attr, _KEY_RULES)
    if wire is None:
        raise RowProblem(MISSING_KEY, f"key column {attr.logical_name!r} is empty")
    if isinstance(wire, float):
        raise RowProblem(INVALID_VALUE, f"key column {attr.logical_name!r}: {wire!r} is not exact")
    return wire


def match_text(key: Mapping[str, KeyValue], key_text: str | None = None) -> str:
    """The key as Dataverse compares it: alternate keys on text columns ignore letter case
    (`CaseKey` and `casekey` name one record), so text parts are case-folded. A primary id
    is its GUID's text (as `extract_key` gives it). `key_text`, when given, must be the key's
    `key_segment` (as `extract_key` returns it): a key without text parts then is its own
    match text, with no second encoding."""
    if len(key) == 1:
        only = next(iter(key.values()))
        if isinstance(only, uuid.UUID):
            return str(only)
        if key_text is not None and not isinstance(only, str):
            return key_text
    elif key_text is not None and not any(isinstance(v, str) for v in key.values()):
        return key_text
    return key_segment({k: v.casefold() if isinstance(v, str) else v for k, v in key.items()})


def raw_key_text(plan: TablePlan, row: Mapping[str, Any]) -> str:
    """The key exactly as the source wrote it (blanks kept): tells a true duplicate from two
    keys that differ only in blanks."""
    columns = plan.spec.key.columns
    if len(columns) == 1:
        (source,) = columns.values()
        return repr((row.get(source),))
    return repr(tuple(row.get(source) for source in columns.values()))


def extract_key(plan: TablePlan, row: Mapping[str, Any]) -> tuple[dict[str, KeyValue], str]:
    """(key attribute → value, canonical key text). Raises RowProblem for a missing/bad key."""
    spec = plan.spec
    if spec.key.strategy is KeyStrategy.PRIMARY_ID:
        ((attribute, source),) = spec.key.columns.items()
        raw = row.get(source)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise RowProblem(MISSING_KEY, f"key column {source!r} is empty")
        try:
            guid = uuid.UUID(str(raw).strip())
        except ValueError:
            raise RowProblem(
                INVALID_VALUE, f"key column {source!r}: {raw!r} is not a GUID"
            ) from None
        return {attribute: guid}, str(guid)
    columns = spec.key.columns
    if len(columns) == 1:  # the usual key, one whole-number column: no general conversion
        ((attribute, source),) = columns.items()
        number = whole_number(row.get(source), plan.key_attrs[attribute])
        if number is not None:
            return {attribute: number}, f"{attribute}={number}"  # what key_segment gives
    key: dict[str, KeyValue] = {}
    for attribute, source in columns.items():
        if source not in row:
            raise RowProblem(MISSING_KEY, f"key column {source!r} is missing from the source row")
        key[attribute] = key_value(row[source], plan.key_attrs[attribute])
    return key, key_segment(key)


def prepare_row(
    plan: TablePlan,
    row_number: int,
    row: Mapping[str, Any],
    keyed: tuple[dict[str, KeyValue], str, str] | None = None,
) -> PreparedRow:
    """Sanitise and check one source row. Raises RowProblem naming the column.

    `keyed` is (key, key text, match text) when the caller has already extracted the key (stage
    2 does, to claim it run-wide): the key is then not converted a second time."""
    if keyed is None:
        key, key_text = extract_key(plan, row)
        keyed = key, key_text, match_text(key, key_text)
    key, key_text, matched = keyed
    prepared = PreparedRow(
        row_number=row_number, row=dict(row), key=key, key_text=key_text, match_text=matched
    )
    if plan.spec.key.strategy is KeyStrategy.PRIMARY_ID:
        prepared.record_id = next(iter(key.values()))  # type: ignore[assignment]
    values = prepared.values
    for source, target, ignore_null, convert, lookup, rules in column_program(plan):
        raw = row.get(source, _MISSING)
        if raw is _MISSING:
            raise RowProblem(INVALID_VALUE, f"source column {source!r} is missing from the row")
        if lookup is not None:
            ref = _reference(raw, lookup, rules)
            if ref is None and ignore_null:
                continue
            prepared.lookups[lookup.value_attribute] = (lookup, ref)
            continue
        value = convert(raw)
        if value is None and ignore_null:
            continue
        values[target] = value
    if plan.owner:
        ref = _reference(row.get(plan.spec.owner.source), plan.owner, plan.spec.defaults)
        if ref is not None:  # no owner given: Dataverse keeps (or assigns) the caller
            prepared.lookups[plan.owner.value_attribute] = (plan.owner, ref)
    if plan.spec.state:
        prepared.state = resolve_state(plan, row)
    return prepared


_COLUMN_CACHE: dict[int, tuple[TablePlan, tuple]] = {}


def column_program(plan: TablePlan) -> tuple:
    """(source, target, ignore null, converter, lookup or None, rules) per column, worked out
    once per plan: prepare_row runs for every source row and these never change during a
    publish."""
    found = _COLUMN_CACHE.get(id(plan))
    if found is not None and found[0] is plan:
        return found[1]
    columns = tuple(
        (
            c.spec.source,
            c.target,
            c.rules.null_policy is NullPolicy.IGNORE,
            converter(c.attr, c.rules, c.spec.coerce, c.spec.option_labels),
            c.lookup or None,
            c.rules,
        )
        for c in plan.columns
    )
    if len(_COLUMN_CACHE) > 64:  # plans are few per process; never let this grow
        _COLUMN_CACHE.clear()
    _COLUMN_CACHE[id(plan)] = (plan, columns)
    return columns


def _reference(raw: Any, lookup: LookupPlan, rules: Rules) -> Any:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if lookup.by is LookupBy.ID:
        try:
            return uuid.UUID(str(raw).strip())
        except ValueError:
            raise RowProblem(INVALID_VALUE, f"{lookup.navigation}: {raw!r} is not a GUID") from None
    assert lookup.key_attr is not None
    return key_value(raw, lookup.key_attr)


def resolve_state(plan: TablePlan, row: Mapping[str, Any]) -> tuple[int, int]:
    """(statecode, statuscode) for a row; labels allowed; the pair is checked."""
    meta = plan.meta
    spec = plan.spec.state
    assert spec is not None
    statecode = _state_number(spec.statecode, row, meta.state, "statecode")
    if spec.statuscode is None:
        statuscode = meta.default_status(statecode)
        if statuscode is None:
            raise RowProblem(INVALID_STATE_STATUS, f"statecode {statecode} has no default status")
    else:
        statuscode = _state_number(spec.statuscode, row, meta.status, "statuscode")
    if not meta.valid_state_pair(statecode, statuscode):
        raise RowProblem(
            INVALID_STATE_STATUS,
            f"statuscode {statuscode} is not valid for statecode {statecode}",
        )
    return statecode, statuscode


def _state_number(
    value: StateValue, row: Mapping[str, Any], attr: AttributeMetadata | None, name: str
) -> int:
    raw = row.get(value.source) if value.source else value.constant
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise RowProblem(INVALID_STATE_STATUS, f"{name} is empty")
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, float) and raw.is_integer():
        number = int(raw)
    else:
        text = str(raw).strip()
        found = attr.option_value(text) if attr else None
        if found is None and text.lstrip("-").isdigit():
            found = int(text)
        if found is None:
            raise RowProblem(INVALID_STATE_STATUS, f"{name} {text!r} is not a known label")
        number = found
    if attr and attr.options and number not in attr.option_values:
        raise RowProblem(INVALID_STATE_STATUS, f"{name} {number} is not a valid value")
    return number
