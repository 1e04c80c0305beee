"""Stage 1, load: the spec compiled against the table's metadata, the source read in chunks,
and the existing records of each chunk fetched by key (`In` pushdown, `$select` of what the
spec maps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from customer360.dynamics.context import RunContext
from customer360.dynamics.plan import OWNER_TABLES, TablePlan, compile_plan
from customer360.dynamics.prepare import PreparedRow
from customer360.dynamics.reads import (
    fetch_metadata,
    query_by_keys,
    query_by_values,
    record_key_text,
)
from customer360.dynamics.source import SourceRows, iter_chunks
from customer360.dynamics.spec import KeyStrategy, PublishSpec

#: key text → the record as read from Dataverse
ExistingRecords = dict[str, dict[str, Any]]


class Loader:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    async def compile(self, spec: PublishSpec) -> TablePlan:
        """Read the metadata of the table (and of the tables it looks up) and check the spec."""
        kw = self.ctx.read_kw()
        meta = await fetch_metadata(self.ctx.pick, spec.table, **kw)
        related_tables = {c.lookup.table for c in spec.columns if c.lookup}
        if spec.owner:
            related_tables.add(OWNER_TABLES[spec.owner.owner_type])
        related = {}
        for table in sorted(related_tables):
            related[table] = await fetch_metadata(self.ctx.pick, table, **kw)
        return compile_plan(spec, meta, related)

    async def chunks(
        self, source: SourceRows, spec: PublishSpec, first_rows: int | None = None
    ) -> AsyncIterator[tuple[range, list[dict[str, Any]]]]:
        """(row numbers, rows) of at most `chunk_rows` rows; reading runs off the event loop.
        With `first_rows` the first chunk has that many rows and the next ones double."""
        chunks = iter_chunks(
            source, self.ctx.options.chunk_rows, spec.source_columns, first_rows=first_rows
        )
        row_number = 0
        while True:
            t0 = time.monotonic()
            chunk = await asyncio.to_thread(next, chunks, None)
            self.ctx.stage("load", t0)
            if chunk is None:
                return
            self.ctx.metrics.rows_read += len(chunk)
            yield range(row_number, row_number + len(chunk)), chunk
            row_number += len(chunk)

    async def existing(self, plan: TablePlan, rows: list[PreparedRow]) -> ExistingRecords:
        """The records of `rows` that exist in Dataverse, by key text. Raises RequestFailed."""
        if not rows or not plan.reads_target:
            return {}
        t0 = time.monotonic()
        select = plan.select()
        kw = self.ctx.query_kw()
        pick = self.ctx.pick
        primary = None
        if plan.spec.key.strategy is KeyStrategy.PRIMARY_ID:
            values = [str(r.record_id) for r in rows]
            primary = plan.primary_id
            records = await query_by_values(pick, plan.entity_set, primary, values, select, **kw)
        elif len(plan.key_attrs) == 1:
            (name,) = plan.key_attrs
            values = [r.key[name] for r in rows]
            records = await query_by_values(pick, plan.entity_set, name, values, select, **kw)
        else:
            keys = [r.key for r in rows]
            records = await query_by_keys(pick, plan.entity_set, keys, select, **kw)
        found: ExistingRecords = {}
        for record in records:
            text = record_key_text(record, plan.key_attrs, primary)
            if text is not None:
                found[text] = record
        self.ctx.stage("load", t0)
        return found
