"""Stage 2, pre-process: sanitise and validate each row, claim its key run-wide (duplicates
fail), resolve owner and lookups, and classify it against its existing record (create,
update, unchanged, invalid). Row-level work is in `prepare.py` and `classify.py`; this module
does it a chunk at a time and reports the rows that end here."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from customer360.dynamics import columnar
from customer360.dynamics.classify import Resolved, Verdict, classify, lookup_ref, upsert_op
from customer360.dynamics.context import RunContext
from customer360.dynamics.load import ExistingRecords
from customer360.dynamics.operations import Operation
from customer360.dynamics.outcomes import FailedRow
from customer360.dynamics.plan import TablePlan
from customer360.dynamics.postprocess import Outcomes
from customer360.dynamics.prepare import (
    PreparedRow,
    extract_key,
    match_text,
    prepare_row,
    raw_key_text,
    resolve_state,
)
from customer360.dynamics.reads import resolve_references
from customer360.dynamics.source import KeyClaim, KeyForms, KeyRegistry
from customer360.dynamics.spec import KeyStrategy, LookupBy, Mode
from customer360.dynamics.values import (
    DUPLICATE_SOURCE_KEY,
    KEY_BLANK_COLLISION,
    KEY_CASE_COLLISION,
    RowProblem,
    whole_numbers,
)

LOOKUP_CACHE_SIZE = 200_000  # lookups of a huge table: keep the cache bounded
#: (row number, source row, its key forms, its key) of a row whose key was claimed
Keyed = tuple[int, dict[str, Any], KeyForms, dict]


def _key_problem(claim: KeyClaim, key_text: str) -> RowProblem:
    """Why a row whose key an earlier row of the run already took is not published."""
    if claim is KeyClaim.CASE:
        return RowProblem(
            KEY_CASE_COLLISION,
            f"key {key_text} differs from an earlier row's key only in letter case (or "
            "blanks); Dataverse alternate keys ignore case, so both rows would write one "
            "record: only the first row is published",
        )
    if claim is KeyClaim.BLANKS:
        return RowProblem(
            KEY_BLANK_COLLISION,
            f"key {key_text} equals an earlier row's key once leading/trailing blanks are "
            "trimmed (keys are trimmed before publishing): only the first row is published",
        )
    return RowProblem(
        DUPLICATE_SOURCE_KEY,
        f"key {key_text} appears more than once in the source; only its first "
        "row is published in this run",
    )


def _whole_number_keys(
    plan: TablePlan, chunk: list[dict[str, Any]]
) -> tuple[list[KeyForms], list[dict]] | None:
    """The key forms and keys of a chunk whose key is one whole-number column and whose every
    row has a plain int there, in range (what `extract_key`, `match_text` and `raw_key_text`
    give such a row, a column at a time); None for any other chunk."""
    columns = plan.spec.key.columns
    if plan.spec.key.strategy is not KeyStrategy.BUSINESS_KEY or len(columns) != 1:
        return None
    ((attribute, source),) = columns.items()
    numbers = whole_numbers([row.get(source) for row in chunk], plan.key_attrs[attribute])
    if numbers is None:
        return None
    texts = [f"{attribute}={number}" for number in numbers]  # key_segment's text
    raws = [f"({number},)" for number in numbers]  # repr((number,)) of a plain int
    return list(map(KeyForms, texts, texts, raws)), [{attribute: number} for number in numbers]


class PreProcessor:
    """The run-wide state of stage 2: claimed keys and the lookup cache."""

    def __init__(self, ctx: RunContext, outcomes: Outcomes) -> None:
        self.ctx = ctx
        self.outcomes = outcomes
        self.registry = KeyRegistry()
        self.lookup_cache: OrderedDict[tuple[str, LookupBy, Any], uuid.UUID | None] = OrderedDict()

    def prepare(
        self, plan: TablePlan, chunk: list[dict[str, Any]], numbers: range
    ) -> list[PreparedRow]:
        """Rows with a valid, first-seen key and valid values; the others are reported failed."""
        return self.prepare_claimed(plan, self.claim(plan, chunk, numbers))

    def claim(self, plan: TablePlan, chunk: list[dict[str, Any]], numbers: range) -> list[Keyed]:
        """Extract and claim the keys of a chunk's rows, run-wide and all at once (one
        registry update per chunk); rows whose key is missing, bad or already taken are
        reported failed here."""
        t0 = time.monotonic()
        whole = _whole_number_keys(plan, chunk)
        if whole is not None:  # the usual key: every row's is a plain int in range
            keyed: list[Keyed] = list(zip(numbers, chunk, *whole, strict=True))
            failed: list[FailedRow] = []
        else:
            keyed, failed = self._extract_keys(plan, chunk, numbers)
        claims = self.registry.claim([forms for _, _, forms, _ in keyed])
        kept = keyed  # the usual chunk: every key is new
        if any(claim is not KeyClaim.NEW for claim in claims):
            kept = []
            for entry, claim in zip(keyed, claims, strict=True):
                if claim is KeyClaim.NEW:
                    kept.append(entry)
                    continue
                number, row, forms, _ = entry
                problem = _key_problem(claim, forms.trimmed)
                failed.append(self.outcomes.row_failure(plan, number, row, problem, forms.trimmed))
        self.outcomes.failed(failed)
        self.ctx.stage("pre_process", t0)
        return kept

    def _extract_keys(
        self, plan: TablePlan, chunk: list[dict[str, Any]], numbers: range
    ) -> tuple[list[Keyed], list[FailedRow]]:
        """Each row's key forms and key, row by row; rows without a usable key fail."""
        keyed: list[Keyed] = []
        failed: list[FailedRow] = []
        for number, row in zip(numbers, chunk, strict=True):
            try:
                key, key_text = extract_key(plan, row)
            except RowProblem as problem:
                failed.append(self.outcomes.row_failure(plan, number, row, problem, None))
                continue
            forms = KeyForms(match_text(key, key_text), key_text, raw_key_text(plan, row))
            keyed.append((number, row, forms, key))
        return keyed, failed

    def prepare_claimed(self, plan: TablePlan, keyed: list[Keyed]) -> list[PreparedRow]:
        """Sanitise and check the values of rows whose keys `claim` accepted."""
        t0 = time.monotonic()
        kept: list[PreparedRow] = []
        failed: list[FailedRow] = []
        for number, row, forms, key in keyed:
            try:
                keys = (key, forms.trimmed, forms.match)
                kept.append(prepare_row(plan, number, row, keys))
            except RowProblem as problem:
                failed.append(self.outcomes.row_failure(plan, number, row, problem, forms.trimmed))
        self.outcomes.failed(failed)
        self.ctx.stage("pre_process", t0)
        return kept

    def stream_ops(self, plan: TablePlan, keyed: list[Keyed]) -> list[Operation]:
        """Stages 2a and 2b at once for rows that need no reads (`plan.reads_per_chunk` is
        False): the writes of a slice of claimed rows, their values converted column by column
        (`columnar.py`); bad rows are reported here. Same operations and failures as
        `prepare_claimed` then `classify` with nothing read (which plans `columnar` does not
        take still go through)."""
        if not columnar.supports(plan):
            rows = self.prepare_claimed(plan, keyed)
            return self.classify(plan, rows, {}, {})
        t0 = time.monotonic()
        values, problems = columnar.prepare_values(plan, [row for _, row, _, _ in keyed])
        blind = plan.spec.mode is Mode.UPSERT
        primary = plan.spec.key.strategy is KeyStrategy.PRIMARY_ID
        with_state = plan.spec.state is not None
        ops: list[Operation] = []
        failed: list[FailedRow] = []
        rows: list[PreparedRow] = []
        for i, (number, row, forms, key) in enumerate(keyed):
            cells = values[i]
            try:
                if cells is None:
                    raise problems[i]
                state = resolve_state(plan, row) if with_state else None
            except RowProblem as problem:
                failed.append(self.outcomes.row_failure(plan, number, row, problem, forms.trimmed))
                continue
            record_id = next(iter(key.values())) if primary else None
            if blind:
                ops.append(upsert_op(forms.trimmed, number, row, key, record_id, cells, state))
                continue
            rows.append(
                PreparedRow(
                    number, row, key, forms.trimmed, forms.match, record_id, cells, {}, state
                )
            )
        self.outcomes.failed(failed)
        self.ctx.stage("pre_process", t0)
        if rows:  # append: creates (deterministic ids, required columns) as `classify` makes them
            ops.extend(self.classify(plan, rows, {}, {}))
        return ops

    async def resolve(self, plan: TablePlan, rows: list[PreparedRow]) -> Resolved:
        """GUIDs of the records the rows' lookups and owners name (None: no such record).
        Raises RequestFailed when Dataverse cannot be read."""
        t0 = time.monotonic()
        cache = self.lookup_cache
        wanted: dict[tuple[str, LookupBy, str | None], tuple[Any, set]] = {}
        for row in rows:
            for lookup, ref in row.lookups.values():
                if ref is None or lookup_ref(lookup, ref) in cache:
                    continue
                group = (lookup.table, lookup.by, lookup.key_attribute)
                wanted.setdefault(group, (lookup, set()))[1].add(ref)
        kw = self.ctx.query_kw()
        for (_table, by, key_attribute), (lookup, refs) in wanted.items():
            column = lookup.primary_id if by is LookupBy.ID else key_attribute
            found = await resolve_references(
                self.ctx.pick,
                lookup.entity_set,
                lookup.primary_id,
                column,
                lookup.key_attr,
                sorted(refs, key=str),
                **kw,
            )
            for ref, guid in found.items():
                cache[lookup_ref(lookup, ref)] = guid
        while len(cache) > LOOKUP_CACHE_SIZE:
            cache.popitem(last=False)
        resolved = {}
        for row in rows:
            for lookup, ref in row.lookups.values():
                if ref is not None:
                    ident = lookup_ref(lookup, ref)
                    resolved[ident] = cache.get(ident)
        self.ctx.stage("pre_process", t0)
        return resolved

    def classify(
        self,
        plan: TablePlan,
        rows: list[PreparedRow],
        existing: ExistingRecords,
        resolved: Mapping,
    ) -> list[Operation]:
        """The writes to send; unchanged and invalid rows are reported here."""
        t0 = time.monotonic()
        ops: list[Operation] = []
        unchanged: list[str] = []
        failed: list[FailedRow] = []
        enforce = self.ctx.options.enforce_application_required
        for row in rows:
            result = classify(
                plan,
                row,
                existing.get(row.match_text),
                resolved,
                enforce_application_required=enforce,
            )
            if result.verdict is Verdict.WRITE:
                ops.append(result.op)
            elif result.verdict is Verdict.UNCHANGED:
                unchanged.append(row.key_text)
            elif result.verdict is Verdict.ABSENT:
                unchanged.append(row.key_text)
                self.ctx.metrics.absent += 1
            else:
                failed.append(
                    self.outcomes.row_failure(
                        plan, row.row_number, row.row, result.problem, row.key_text
                    )
                )
        self.outcomes.unchanged(unchanged)
        self.outcomes.failed(failed)
        self.ctx.stage("pre_process", t0)
        return ops
