"""Stage 1 reads: metadata, target rows by key (pushdown `In` filters), lookup resolution.

Every GET goes through a `PrincipalClient` (so reads share the principal's throttling) and is
retried on transient failures. Key lists are chunked so each URL stays under the 32 KB limit.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from customer360.dynamics.errors import (
    FailureKind,
    PublishConfigError,
    RequestFailed,
    classify_status,
)
from customer360.dynamics.metadata import (
    AttributeMetadata,
    EntityMetadata,
    entity_definition_path,
    parse_entity_definition,
)
from customer360.dynamics.odata import (
    MAX_GET_URL_LENGTH,
    KeyValue,
    chunk_by_budget,
    in_filter,
    in_parameters,
    in_value_cost,
    or_clause_cost,
    or_filter,
    query_string,
    string_literal,
)
from customer360.dynamics.prepare import key_value, match_text
from customer360.dynamics.throttle import backoff_delay
from customer360.dynamics.transport import PrincipalClient, Sent, error_of
from customer360.dynamics.values import RowProblem

BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
PAGE_SIZE = 5000

PickClient = Callable[[], PrincipalClient]


async def get_json(
    pick: PickClient,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_attempts: int = 5,
    on_retry: Callable[[], None] | None = None,
    on_request: Callable[[], None] | None = None,
) -> Any:
    """GET with immediate retries for transient failures; raises RequestFailed otherwise."""
    attempt = 0
    throttled = 0
    while True:
        attempt += 1
        client = pick()
        try:
            if on_request:
                on_request()
            sent: Sent = await client.send("GET", url, headers=headers)
            status = sent.response.status_code
            if status == 200:
                return sent.json()
            code, message = error_of(sent.response)
            kind = classify_status(status, code) or FailureKind.PERMANENT
            failure = RequestFailed(kind, status, code, message)
        except RequestFailed as exc:
            failure = exc
        if failure.kind is FailureKind.THROTTLED and throttled < 200:
            throttled += 1
            attempt -= 1  # a 429 is not an attempt: the next principal (or this one, later)
            continue
        # 401 again after the transport's own refresh: the token endpoint or the org is
        # having trouble, not the request; retry like any transient failure
        retryable = failure.kind in (FailureKind.TRANSIENT, FailureKind.AUTH)
        if not retryable or attempt >= max_attempts:
            raise failure
        if on_retry:
            on_retry()
        await asyncio.sleep(backoff_delay(attempt, rng=random.Random()))


async def fetch_metadata(pick: PickClient, table: str, **kw: Any) -> EntityMetadata:
    """EntityDefinitions for `table` plus which bulk messages it supports (sdkmessagefilters)."""
    try:
        data = await get_json(pick, entity_definition_path(table), **kw)
    except RequestFailed as exc:
        raise PublishConfigError(f"cannot read the metadata of table {table!r}: {exc}") from None
    meta = parse_entity_definition(data)
    supported = []
    for message in BULK_MESSAGES:
        params = {
            "$select": "sdkmessagefilterid",
            "$filter": (
                f"sdkmessageid/name eq {string_literal(message)} and "
                f"primaryobjecttypecode eq {string_literal(table)}"
            ),
        }
        try:
            found = await get_json(pick, f"sdkmessagefilters?{query_string(params)}", **kw)
        except RequestFailed as exc:
            if exc.kind is FailureKind.TRANSIENT:
                raise
            found = {"value": []}  # no filter table: assume no bulk support ($batch works)
        if found.get("value"):
            supported.append(message)
    return EntityMetadata(
        logical_name=meta.logical_name,
        entity_set=meta.entity_set,
        primary_id=meta.primary_id,
        primary_name=meta.primary_name,
        attributes=meta.attributes,
        keys=meta.keys,
        change_tracking=meta.change_tracking,
        bulk_messages=frozenset(supported),
    )


async def query_by_values(
    pick: PickClient,
    entity_set: str,
    column: str,
    values: Sequence[KeyValue],
    select: Sequence[str],
    *,
    max_url_length: int = MAX_GET_URL_LENGTH,
    api_url_length: int = 60,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Rows of `entity_set` whose `column` is one of `values`, selecting only `select`.

    Uses `Microsoft.Dynamics.CRM.In` in chunks that keep each URL under the limit and follows
    `@odata.nextLink` paging.
    """
    if not values:
        return []
    base = f"{entity_set}?" + query_string(
        {"$select": ",".join(select), "$filter": in_filter(column)}
    )
    empty = in_parameters(column, [])
    base_length = api_url_length + len(base) + len(query_string(empty)) + 2
    rows: list[dict[str, Any]] = []
    chunks = list(chunk_by_budget(values, base_length, in_value_cost, max_url_length - 64))

    async def one(chunk: list[KeyValue]) -> list[dict[str, Any]]:
        url = base + "&" + query_string(in_parameters(column, chunk))
        return await _all_pages(pick, url, **kw)

    for part in await asyncio.gather(*(one(c) for c in chunks)):
        rows.extend(part)
    return rows


async def query_by_keys(
    pick: PickClient,
    entity_set: str,
    keys: Sequence[Mapping[str, KeyValue]],
    select: Sequence[str],
    *,
    max_url_length: int = MAX_GET_URL_LENGTH,
    api_url_length: int = 60,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Rows matching composite keys: OR-chains of `(a eq x and b eq y)` (In takes one column)."""
    if not keys:
        return []
    base = f"{entity_set}?" + query_string({"$select": ",".join(select)}) + "&$filter="
    base_length = api_url_length + len(base)
    chunks = list(chunk_by_budget(keys, base_length, or_clause_cost, max_url_length - 64, 200))

    async def one(chunk: Sequence[Mapping[str, KeyValue]]) -> list[dict[str, Any]]:
        url = base + query_string({"f": or_filter(chunk)})[2:]
        return await _all_pages(pick, url, **kw)

    rows: list[dict[str, Any]] = []
    for part in await asyncio.gather(*(one(c) for c in chunks)):
        rows.extend(part)
    return rows


async def _all_pages(pick: PickClient, url: str, **kw: Any) -> list[dict[str, Any]]:
    headers = {"Prefer": f"odata.maxpagesize={PAGE_SIZE}"}
    rows: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        page = await get_json(pick, next_url, headers=headers, **kw)
        rows.extend(page.get("value", []))
        next_url = page.get("@odata.nextLink")
    return rows


def record_key_text(
    record: Mapping[str, Any], key_attrs: Mapping[str, AttributeMetadata], primary_id: str | None
) -> str | None:
    """The key of an existing record as Dataverse compares it (`prepare.match_text`)."""
    if primary_id is not None:
        value = record.get(primary_id)
        return None if value is None else str(uuid.UUID(str(value)))
    key: dict[str, KeyValue] = {}
    for name, attr in key_attrs.items():
        try:
            key[name] = key_value(record.get(name), attr)
        except RowProblem:
            return None
    return match_text(key)


async def resolve_references(
    pick: PickClient,
    entity_set: str,
    primary_id: str,
    column: str,
    column_attr: AttributeMetadata | None,
    references: Sequence[Any],
    **kw: Any,
) -> dict[Any, uuid.UUID | None]:
    """Map each reference (a GUID, or a value of `column`) to the GUID of the record it names."""
    if not references:
        return {}
    by_id = column == primary_id
    values = [str(r) if by_id else r for r in references]
    select = [primary_id] if by_id else [primary_id, column]
    rows = await query_by_values(pick, entity_set, column, values, select, **kw)
    found: dict[Any, uuid.UUID | None] = dict.fromkeys(references)
    for row in rows:
        guid = uuid.UUID(str(row[primary_id]))
        if by_id:
            found[guid] = guid
            continue
        try:
            value = key_value(row.get(column), column_attr) if column_attr else row.get(column)
        except RowProblem:
            continue
        if value in found and found[value] is None:
            found[value] = guid
        elif isinstance(value, str):  # string comparisons in Dataverse ignore case
            for ref in found:
                if (
                    isinstance(ref, str)
                    and ref.casefold() == value.casefold()
                    and found[ref] is None
                ):
                    found[ref] = guid
    return found


Fetcher = Callable[..., Awaitable[Any]]
