"""`GET <set>?fetchXml=<fetch …>` (use-fetchxml-web-api.md, fetchxml/reference).

Supported: `<fetch top count page paging-cookie distinct returntotalrecordcount>`, one
`<entity>` with `<attribute>`, `<all-attributes>`, `<filter type="and|or">` (nested) with
`<condition attribute operator value|<value>… entityname>`, `<order attribute descending>` and
`<link-entity name from to alias link-type="inner|outer">` (nested, with its own attributes,
filters and orders). Results leave out null columns, name a joined column `alias.column`, and
page with `@Microsoft.Dynamics.CRM.morerecords` / `fetchxmlpagingcookie` when the caller's
`Prefer` asks for them. Aggregates are refused with a 400, never answered wrongly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote

from customer360.emulator.annotations import annotated
from customer360.emulator.messages import ApiResponse, json_response
from customer360.emulator.operations import format_etag
from customer360.emulator.readplan import (
    Condition,
    Context,
    Join,
    Plan,
    all_of,
    any_of,
    column_of,
    condition,
    query_error,
    run,
)
from customer360.emulator.schema import Schema, Table
from customer360.emulator.store import Store
from customer360.emulator.values import to_json_value

MAX_COUNT = 5000


class _Builder:
    def __init__(self, schema: Schema, root: Table) -> None:
        self.schema = schema
        self.plan = Plan(root, [])
        self.tables: dict[str | None, Table] = {None: root}
        self.conditions: list[Condition] = []

    def entity(self, element: ET.Element, alias: str | None) -> None:
        table = self.tables[alias]
        for child in element:
            tag = child.tag
            if tag == "attribute":
                if child.get("aggregate") or child.get("groupby"):
                    raise query_error("Aggregate FetchXML queries are not supported locally.")
                column = column_of(table, child.get("name", ""))
                self._select(alias, column)
            elif tag == "all-attributes":
                if alias is None:
                    self.plan.columns = None
                else:
                    self._join(alias).columns = list(table.columns.values())
            elif tag == "filter":
                self.conditions.append(self.filter(child, alias))
            elif tag == "order":
                if child.get("alias"):
                    raise query_error("Ordering by an aggregate alias is not supported locally.")
                column = column_of(table, child.get("attribute", ""))
                self.plan.orders.append((alias, column, child.get("descending") == "true"))
            elif tag == "link-entity":
                self.link(child, alias)
            else:
                raise query_error(f"The FetchXML element '{tag}' is not supported locally.")

    def _join(self, alias: str) -> Join:
        return next(j for j in self.plan.joins if j.alias == alias)

    def _select(self, alias: str | None, column) -> None:
        if alias is None:
            if self.plan.columns is not None and column not in self.plan.columns:
                self.plan.columns.append(column)
        else:
            self._join(alias).columns.append(column)

    def link(self, element: ET.Element, parent: str | None) -> None:
        name = element.get("name", "")
        table = self.schema.tables.get(name)
        if table is None:
            raise query_error(f"The entity '{name}' of a link-entity does not exist.")
        link_type = element.get("link-type", "inner")
        if link_type not in ("inner", "outer"):
            raise query_error(f"The link-type '{link_type}' is not supported locally.")
        alias = element.get("alias") or f"{name}{len(self.plan.joins) + 1}"
        join = Join(
            table,
            alias,
            column_of(table, element.get("from", "")),
            column_of(self.tables[parent], element.get("to", "")),
            parent,
            link_type == "outer",
        )
        self.plan.joins.append(join)
        self.tables[alias] = table
        self.entity(element, alias)

    def filter(self, element: ET.Element, alias: str | None) -> Condition:
        parts: list[Condition] = []
        for child in element:
            if child.tag == "condition":
                parts.append(self.condition(child, alias))
            elif child.tag == "filter":
                parts.append(self.filter(child, alias))
            else:
                raise query_error(f"The FetchXML element '{child.tag}' is not valid in a filter.")
        kind = element.get("type", "and")
        if kind not in ("and", "or"):
            raise query_error(f"The filter type '{kind}' is not valid.")
        return any_of(parts) if kind == "or" else all_of(parts)

    def condition(self, element: ET.Element, alias: str | None) -> Condition:
        target = element.get("entityname") or alias
        if target not in self.tables:
            raise query_error(f"The entityname '{target}' is not a link-entity alias.")
        column = column_of(self.tables[target], element.get("attribute", ""))
        values = [v.text or "" for v in element.findall("value")]
        if element.get("value") is not None:
            values.insert(0, element.get("value"))
        return condition(target, column, element.get("operator", "eq"), values)


def _int_attribute(fetch: ET.Element, name: str) -> int | None:
    text = fetch.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise query_error(f"The FetchXML attribute '{name}' must be a positive integer.")
    return int(text)


def parse(schema: Schema, table: Table, text: str) -> tuple[Plan, dict]:
    """FetchXML text → (plan, paging options)."""
    try:
        fetch = ET.fromstring(text)
    except ET.ParseError as exc:
        raise query_error(f"The FetchXML is not well formed: {exc}.") from None
    if fetch.tag != "fetch":
        raise query_error("The FetchXML root element must be <fetch>.")
    if fetch.get("aggregate") == "true":
        raise query_error("Aggregate FetchXML queries are not supported by the local Dataverse.")
    entities = fetch.findall("entity")
    if len(entities) != 1 or entities[0].get("name") != table.logical_name:
        raise query_error(
            f"The FetchXML must have one <entity name='{table.logical_name}'> for this entity set."
        )
    builder = _Builder(schema, table)
    builder.entity(entities[0], None)
    plan = builder.plan
    if builder.conditions:
        plan.condition = all_of(builder.conditions)
    plan.top = _int_attribute(fetch, "top")
    plan.distinct = fetch.get("distinct") == "true"
    paging = {
        "count": _int_attribute(fetch, "count"),
        "page": _int_attribute(fetch, "page") or 1,
        "total": fetch.get("returntotalrecordcount") == "true",
    }
    if plan.top is not None and (paging["count"] is not None or fetch.get("page")):
        raise query_error("The 'top' attribute can't be used with 'count' or 'page'.")
    if (paging["count"] or 0) > MAX_COUNT or (plan.top or 0) > MAX_COUNT:
        raise query_error(f"The 'count' and 'top' attributes can't be greater than {MAX_COUNT}.")
    return plan, paging


def _record(plan: Plan, ctx: Context, annotate: bool) -> dict:
    row = ctx[None]
    assert row is not None
    table = plan.table
    out: dict[str, object] = {"@odata.etag": format_etag(row["versionnumber"])}
    for column in plan.columns if plan.columns is not None else table.columns.values():
        value = row.get(column.name)
        if value is not None:
            out.update(annotated(table, column, row, column.value_name, annotate))
    out.setdefault(table.primary_id, row[table.primary_id])
    for join in plan.joins:
        linked = ctx.get(join.alias)
        if linked is None:
            continue
        for column in join.columns:
            value = linked.get(column.name)
            if value is not None:
                out[f"{join.alias}.{column.value_name}"] = to_json_value(column, value)
    return out


def _cookie(table: Table, page: int, first: dict, last: dict) -> str:
    pk = table.primary_id
    inner = (
        f'<cookie page="{page}"><{pk} last="{{{last[pk].upper()}}}" '
        f'first="{{{first[pk].upper()}}}" /></cookie>'
    )
    return (
        f'<cookie pagenumber="{page + 1}" '
        f'pagingcookie="{quote(quote(inner, safe=""), safe="")}" istracking="False" />'
    )


def respond(
    store: Store,
    schema: Schema,
    table: Table,
    text: str,
    prefer: dict[str, str],
    api_url: str,
    annotate: bool,
) -> tuple[ApiResponse, int]:
    """Run the FetchXML; the response and how many records it read."""
    plan, paging = parse(schema, table, text)
    contexts = run(store, plan)
    records = [_record(plan, ctx, annotate) for ctx in contexts]
    if plan.distinct:
        unique: dict[str, dict] = {}
        for record in records:
            key = repr(sorted((k, v) for k, v in record.items() if not k.startswith("@")))
            unique.setdefault(key, record)
        records = list(unique.values())
    total = len(records)
    if plan.top is not None:
        records = records[: plan.top]
    size = paging["count"] or MAX_COUNT
    start = (paging["page"] - 1) * size
    page = records[start : start + size]
    more = plan.top is None and start + size < total
    payload: dict[str, object] = {"@odata.context": f"{api_url}$metadata#{table.entity_set}"}
    wanted = prefer.get("odata.include-annotations", "")
    if paging["total"]:
        payload["@Microsoft.Dynamics.CRM.totalrecordcount"] = min(total, MAX_COUNT)
        payload["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = total > MAX_COUNT
    if wanted == "*" or "morerecords" in wanted:
        payload["@Microsoft.Dynamics.CRM.morerecords"] = more
    if more and page and (wanted == "*" or "fetchxmlpagingcookie" in wanted):
        first = contexts[start][None]
        last = contexts[min(start + size, len(contexts)) - 1][None]
        payload["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"] = _cookie(
            table,
            paging["page"],
            first,
            last,  # type: ignore[arg-type]
        )
    payload["value"] = page
    return json_response(200, payload), len(page)
