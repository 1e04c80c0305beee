"""Collection queries: `$select`, `$filter`, `$orderby`, `$top`, `$count`, paging and deltas.

Paging follows page-results.md: `Prefer: odata.maxpagesize` (≤ 5,000, the default), an opaque
`$skiptoken` holding a paging cookie shaped like Dataverse's, `Preference-Applied` echoed.
Change tracking follows use-change-tracking: `Prefer: odata.track-changes` gives a
`@odata.deltaLink` whose `$deltatoken` is `<version>!<UTC timestamp>`; following it returns rows
changed since that version, then `$deletedEntity` rows for deletes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from customer360.emulator import errors, fetchxml, readplan, sql_query
from customer360.emulator.expand import Expansion, expand_into, parse_expand
from customer360.emulator.messages import ApiResponse, json_response, query_pairs
from customer360.emulator.odata_filter import compile_filter
from customer360.emulator.operations import RequestContext, representation
from customer360.emulator.schema import STRING_TYPES, Column, Table
from customer360.emulator.store import Store
from customer360.emulator.values import to_json_value

MAX_PAGE_SIZE = 5000
COUNT_LIMIT = 5000
SUPPORTED_OPTIONS = {
    "$select",
    "$filter",
    "$orderby",
    "$top",
    "$count",
    "$skiptoken",
    "$deltatoken",
    "$expand",
}
TOKEN_TIME_FORMAT = "%m/%d/%Y %H:%M:%S"
NO_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class QueryOptions:
    select: list[Column] | None
    filter_text: str | None
    orderby: list[tuple[Column, bool]]  # (column, descending)
    top: int | None
    count: bool
    skiptoken: str | None
    deltatoken: str | None
    aliases: dict[str, str]
    pairs: list[tuple[str, str]]
    expand: list[Expansion] = field(default_factory=list)


def parse_query(table: Table, query: str) -> QueryOptions:
    pairs = query_pairs(query)
    options: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("@"):
            aliases[name] = value
        elif not name.startswith("$"):
            raise errors.bad_request(
                f"The query parameter {name} is not supported.", errors.QUERY_NOT_SUPPORTED
            )
        elif name.startswith("$"):
            if name == "$skip":
                raise errors.bad_request(
                    "The query parameter $skip is not supported", errors.QUERY_NOT_SUPPORTED
                )
            if name not in SUPPORTED_OPTIONS:
                raise errors.bad_request(
                    f"The query parameter {name} is not supported by the local Dataverse emulator.",
                    errors.QUERY_NOT_SUPPORTED,
                )
            options[name] = value
    select = None
    if "$select" in options:
        select = []
        for name in options["$select"].split(","):
            name = name.strip()
            column = table.query_names.get(name)
            if column is None:
                raise errors.property_not_found(name, table.logical_name)
            if column not in select:
                select.append(column)
    orderby = []
    if options.get("$orderby"):
        for part in options["$orderby"].split(","):
            words = part.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
                raise errors.bad_request(
                    f"Syntax error in $orderby '{options['$orderby']}'.",
                    errors.QUERY_NOT_SUPPORTED,
                )
            column = table.query_names.get(words[0])
            if column is None:
                raise errors.property_not_found(words[0], table.logical_name)
            orderby.append((column, len(words) == 2 and words[1] == "desc"))
    top = None
    if "$top" in options:
        if not options["$top"].isdigit():
            raise errors.bad_request(
                f"Invalid value '{options['$top']}' for $top query option found.",
                errors.QUERY_NOT_SUPPORTED,
            )
        top = int(options["$top"])
    count_text = options.get("$count", "false").lower()
    if count_text not in ("true", "false"):
        raise errors.bad_request(
            f"'{options['$count']}' is not a valid count option.", errors.QUERY_NOT_SUPPORTED
        )
    return QueryOptions(
        select=select,
        filter_text=options.get("$filter"),
        orderby=orderby,
        top=top,
        count=count_text == "true",
        skiptoken=options.get("$skiptoken"),
        deltatoken=options.get("$deltatoken"),
        aliases=aliases,
        pairs=pairs,
        expand=parse_expand(table, options["$expand"]) if options.get("$expand") else [],
    )


def _sort_key(column: Column, descending: bool):
    is_string = column.type in STRING_TYPES
    name = column.name

    def key(row: dict):
        value = row.get(name)
        if value is None:
            return (0, "")
        return (1, value.casefold() if is_string else value)

    return key, descending


def _ordered(rows: Iterable[dict], table: Table, orderby: list[tuple[Column, bool]]) -> list[dict]:
    pk = table.primary_id
    result = sorted(rows, key=lambda r: r[pk])
    for column, descending in reversed(orderby):
        key, desc = _sort_key(column, descending)
        result.sort(key=key, reverse=desc)
    return result


def _context(api_url: str, table: Table, select: list[Column] | None, suffix: str = "") -> str:
    names = f"({','.join(c.value_name for c in select)})" if select else ""
    return f"{api_url}$metadata#{table.entity_set}{names}{suffix}"


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def make_skiptoken(
    table: Table,
    page: int,
    first: str,
    last: str,
    tracking: bool,
    snapshot: int | None,
    position: int | None = None,
) -> str:
    """The paging cookie. With `$orderby` it also carries how many rows were already
    returned, so the next page does not depend on the page size of the request that follows
    the link (Dataverse's cookie carries the last row's sort values to the same effect)."""
    where = f' position="{position}"' if position is not None else ""
    inner = (
        f'<cookie page="{page - 1}"{where}><{table.primary_id} last="{{{last.upper()}}}" '
        f'first="{{{first.upper()}}}" /></cookie>'
    )
    extra = f' snapshot="{snapshot}"' if snapshot is not None else ""
    return (
        f'<cookie pagenumber="{page}" pagingcookie="{_lower_hex(quote(inner, safe=""))}" '
        f'istracking="{"True" if tracking else "False"}"{extra} />'
    )


@dataclass
class PagePosition:
    page: int
    last: str | None  # primary key of the last row already returned
    snapshot: int | None
    position: int | None  # rows already returned (ordered queries)


def read_skiptoken(token: str) -> PagePosition:
    """Paging cookie → where the next page starts."""
    page = re.search(r'pagenumber="(\d+)"', token)
    cookie = re.search(r'pagingcookie="([^"]*)"', token)
    if not page or not cookie:
        raise errors.bad_request("The $skiptoken is not valid.", errors.QUERY_NOT_SUPPORTED)
    inner = unquote(cookie.group(1))
    last = re.search(r'last="\{([0-9A-Fa-f-]{36})\}"', inner)
    position = re.search(r'position="(\d+)"', inner)
    snapshot = re.search(r'snapshot="(\d+)"', token)
    return PagePosition(
        int(page.group(1)),
        last.group(1).lower() if last else None,
        int(snapshot.group(1)) if snapshot else None,
        int(position.group(1)) if position else None,
    )


def _resume_at(ordered: list[dict], pk: str, at: PagePosition, orderby: bool) -> int:
    """Index of the first row of the next page."""
    total = len(ordered)
    if at.last is None:
        return min(at.position or 0, total)
    if not orderby:
        return next((i for i, r in enumerate(ordered) if r[pk] > at.last), total)
    position = at.position or 0
    if 0 < position <= total and ordered[position - 1][pk] == at.last:
        return position
    # Rows changed since the last page: continue after the last row returned, if still there.
    found = next((i for i, r in enumerate(ordered) if r[pk] == at.last), None)
    return found + 1 if found is not None else min(position, total)


def _next_link(api_url: str, table: Table, pairs: list[tuple[str, str]], skiptoken: str) -> str:
    kept = [(k, v) for k, v in pairs if k not in ("$skiptoken", "$deltatoken")]
    parts = [f"{quote(k, safe='$@')}={quote(v, safe=',()=@$')}" for k, v in kept]
    parts.append(f"$skiptoken={quote(skiptoken, safe='=/')}")
    return f"{api_url}{table.entity_set}?{'&'.join(parts)}"


def make_deltatoken(version: int, when: dt.datetime) -> str:
    return f"{version}!{when.strftime(TOKEN_TIME_FORMAT)}"


def _delta_link(api_url: str, table: Table, pairs: list[tuple[str, str]], token: str) -> str:
    kept = [(k, v) for k, v in pairs if k in ("$select",)]
    parts = [f"{k}={quote(v, safe=',')}" for k, v in kept]
    parts.append(f"$deltatoken={_lower_hex(quote(token, safe=''))}")
    return f"{api_url}{table.entity_set}?{'&'.join(parts)}"


class QueryRunner:
    def __init__(
        self, store: Store, api_url: str, token_days: float, max_page_size: int = MAX_PAGE_SIZE
    ) -> None:
        self.store = store
        self.api_url = api_url
        self.token_days = token_days
        self.max_page_size = max_page_size

    def count(self, ctx: RequestContext, table: Table, query: str) -> int:
        options = parse_query(table, query)
        rows = self.store.data(table.logical_name).rows.values()
        if options.filter_text:
            predicate = compile_filter(table, options.filter_text, options.aliases)
            rows = [r for r in rows if predicate(r)]
        ctx.records_read += 1
        return min(len(rows), COUNT_LIMIT)

    def collection(
        self,
        ctx: RequestContext,
        table: Table,
        query: str,
        prefer: dict[str, str],
        annotate: bool,
    ) -> ApiResponse:
        pairs = query_pairs(query)
        names = {name for name, _ in pairs}
        if "fetchXml" in names:
            return self._fetch(ctx, table, pairs, prefer, annotate)
        if "sql" in names:
            return self._sql(ctx, table, pairs)
        options = parse_query(table, query)
        tracking = "odata.track-changes" in prefer or options.deltatoken is not None
        if tracking:
            return self._tracked(ctx, table, options, prefer, annotate)
        headers: dict[str, str] = {}
        limit = self.max_page_size
        page_size = limit
        requested = prefer.get("odata.maxpagesize")
        if requested is not None and requested.isdigit() and 0 < int(requested) <= limit:
            page_size = int(requested)
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        elif options.top is not None:
            page_size = min(options.top, limit)  # $top without maxpagesize: no paging
        rows = self.store.data(table.logical_name).rows.values()
        if options.filter_text:
            predicate = compile_filter(table, options.filter_text, options.aliases)
            rows = [r for r in rows if predicate(r)]
        ordered = _ordered(rows, table, options.orderby)
        total = len(ordered)
        page = 1
        start = 0
        if options.skiptoken:
            at = read_skiptoken(options.skiptoken)
            page = at.page
            start = _resume_at(ordered, table.primary_id, at, bool(options.orderby))
        chunk = ordered[start : start + page_size]
        more = start + page_size < total and (
            options.top is None or "Preference-Applied" in headers
        )
        payload: dict[str, object] = {
            "@odata.context": _context(self.api_url, table, options.select)
        }
        if options.count:
            payload["@odata.count"] = min(total, COUNT_LIMIT)
            if total > COUNT_LIMIT:
                payload["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = True
        payload["value"] = [self._shaped(table, r, options, annotate) for r in chunk]
        ctx.records_read += len(chunk)
        if more and chunk:
            pk = table.primary_id
            token = make_skiptoken(
                table, page + 1, chunk[0][pk], chunk[-1][pk], False, None, start + len(chunk)
            )
            payload["@odata.nextLink"] = _next_link(self.api_url, table, options.pairs, token)
        return json_response(200, payload, headers)

    def _shaped(self, table: Table, row: dict, options: QueryOptions, annotate) -> dict:
        item = representation(table, row, options.select, annotate)
        if options.expand:
            expand_into(item, row, options.expand, self.store.schema, self.store)
        return item

    def _fetch(
        self,
        ctx: RequestContext,
        table: Table,
        pairs: list[tuple[str, str]],
        prefer: dict[str, str],
        annotate,
    ) -> ApiResponse:
        extra = [name for name, _ in pairs if name != "fetchXml"]
        if extra:
            raise errors.bad_request(
                f"The query option {extra[0]} can't be combined with fetchXml.",
                errors.QUERY_NOT_SUPPORTED,
            )
        text = dict(pairs)["fetchXml"]
        response, read = fetchxml.respond(
            self.store, self.store.schema, table, text, prefer, self.api_url, annotate
        )
        ctx.records_read += read
        return response

    def _sql(self, ctx: RequestContext, table: Table, pairs: list[tuple[str, str]]) -> ApiResponse:
        extra = [name for name, _ in pairs if name not in ("sql", "$skiptoken")]
        if extra:
            raise errors.bad_request(
                f"The query option {extra[0]} can't be combined with sql.",
                errors.QUERY_NOT_SUPPORTED,
            )
        given = dict(pairs)
        plan = sql_query.parse(table, given["sql"])
        columns = plan.columns if plan.columns is not None else list(table.columns.values())
        records = [
            {c.name: to_json_value(c, row.get(c.name)) for c in columns}
            for row in (context[None] for context in readplan.run(self.store, plan))
        ]
        if plan.distinct:
            unique = {repr(sorted(r.items())): r for r in reversed(records)}
            records = [r for r in records if unique.get(repr(sorted(r.items()))) is r]
        if plan.top is not None:
            records = records[: plan.top]
        start = 0
        page = 1
        if "$skiptoken" in given:
            at = read_skiptoken(given["$skiptoken"])
            start, page = at.position or 0, at.page
        size = self.max_page_size
        chunk = records[start : start + size]
        payload: dict[str, object] = {
            "@odata.context": f"{self.api_url}$metadata#{table.entity_set}",
            "value": chunk,
        }
        if start + size < len(records):
            token = make_skiptoken(table, page + 1, NO_ID, NO_ID, False, None, start + size)
            kept = [("sql", given["sql"])]
            payload["@odata.nextLink"] = _next_link(self.api_url, table, kept, token)
        ctx.records_read += len(chunk)
        return json_response(200, payload)

    def _tracked(
        self,
        ctx: RequestContext,
        table: Table,
        options: QueryOptions,
        prefer: dict[str, str],
        annotate: bool,
    ) -> ApiResponse:
        for name, present in (
            ("$filter", options.filter_text),
            ("$orderby", options.orderby),
            ("$top", options.top is not None),
            ("$expand", bool(options.expand)),
        ):
            if present:
                raise errors.bad_request(
                    f'The "{name}" query parameter isn\'t supported when Change Tracking is '
                    "enabled.",
                    errors.QUERY_NOT_SUPPORTED,
                )
        if not table.change_tracking:
            raise errors.bad_request(
                f"Change tracking is not enabled for the entity '{table.logical_name}'.",
                errors.QUERY_NOT_SUPPORTED,
            )
        headers = {"Preference-Applied": "odata.track-changes"}
        now = dt.datetime.now(dt.UTC)
        if options.deltatoken is not None:
            return self._delta(ctx, table, options, annotate, headers, now)
        return self._tracked_page(ctx, table, options, prefer, annotate, headers, now)

    def _delta(
        self,
        ctx: RequestContext,
        table: Table,
        options: QueryOptions,
        annotate,
        headers: dict[str, str],
        now: dt.datetime,
    ) -> ApiResponse:
        """Following a delta link: rows changed since its version, then deletions."""
        data = self.store.data(table.logical_name)
        since = self._read_deltatoken(options.deltatoken or "", now)
        changed = sorted(
            (r for r in data.rows.values() if r["versionnumber"] > since),
            key=lambda r: r["versionnumber"],
        )
        deleted = sorted(
            (t for t in data.tombstones.values() if t.version > since),
            key=lambda t: t.version,
        )
        value: list[dict] = [representation(table, r, options.select, annotate) for r in changed]
        deleted_context = f"{self.api_url}$metadata#{table.entity_set}/$deletedEntity"
        value.extend(
            {"@odata.context": deleted_context, "id": t.id, "reason": "deleted"} for t in deleted
        )
        ctx.records_read += len(value)
        token = make_deltatoken(self.store.version, now)
        payload = {
            "@odata.context": _context(self.api_url, table, options.select, "/$delta"),
            "value": value,
            "@odata.deltaLink": _delta_link(self.api_url, table, options.pairs, token),
        }
        return json_response(200, payload, headers)

    def _tracked_page(
        self,
        ctx: RequestContext,
        table: Table,
        options: QueryOptions,
        prefer: dict[str, str],
        annotate,
        headers: dict[str, str],
        now: dt.datetime,
    ) -> ApiResponse:
        """The initial change-tracking read: every row, paged, then a delta link."""
        data = self.store.data(table.logical_name)
        page_size = self.max_page_size
        requested = prefer.get("odata.maxpagesize")
        if requested is not None and requested.isdigit() and 0 < int(requested) <= page_size:
            page_size = int(requested)
            headers["Preference-Applied"] = f"odata.track-changes,odata.maxpagesize={page_size}"
        snapshot = self.store.version
        page = 1
        last = None
        if options.skiptoken:
            at = read_skiptoken(options.skiptoken)
            page, last = at.page, at.last
            snapshot = at.snapshot if at.snapshot is not None else snapshot
        pk = table.primary_id
        rows = sorted(data.rows.values(), key=lambda r: r[pk])
        if last is not None:
            rows = [r for r in rows if r[pk] > last]
        chunk = rows[:page_size]
        payload = {
            "@odata.context": _context(self.api_url, table, options.select),
            "value": [representation(table, r, options.select, annotate) for r in chunk],
        }
        ctx.records_read += len(chunk)
        if len(rows) > page_size:
            token = make_skiptoken(table, page + 1, chunk[0][pk], chunk[-1][pk], True, snapshot)
            payload["@odata.nextLink"] = _next_link(self.api_url, table, options.pairs, token)
        else:
            payload["@odata.deltaLink"] = _delta_link(
                self.api_url, table, options.pairs, make_deltatoken(snapshot, now)
            )
        return json_response(200, payload, headers)

    def _read_deltatoken(self, token: str, now: dt.datetime) -> int:
        version_text, _, stamp = token.partition("!")
        if not version_text.isdigit():
            raise errors.bad_request("The $deltatoken is not valid.", errors.QUERY_NOT_SUPPORTED)
        try:
            issued = dt.datetime.strptime(stamp, TOKEN_TIME_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            raise errors.bad_request(
                "The $deltatoken is not valid.", errors.QUERY_NOT_SUPPORTED
            ) from None
        if now - issued > dt.timedelta(days=self.token_days):
            raise errors.bad_request(
                "The delta token has expired; run a full synchronization again.",
                errors.QUERY_NOT_SUPPORTED,
            )
        return int(version_text)
