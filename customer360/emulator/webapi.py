"""Routes one Web API request (`ApiRequest`) to its operation and shapes the response.

Used for plain HTTP requests and for each `$batch` part, so both answer identically: status
codes and headers from create-entity-web-api.md, update-delete-entities-using-web-api.md,
use-upsert-insert-update-record.md and perform-conditional-operations-using-web-api.md.
"""

from __future__ import annotations

from collections.abc import Callable

from customer360.emulator import errors, metadata, metadata_query
from customer360.emulator.annotations import Wanted, wanted
from customer360.emulator.bulk import run_bulk
from customer360.emulator.expand import expand_into
from customer360.emulator.messages import (
    ApiRequest,
    ApiResponse,
    empty_response,
    json_response,
    parse_prefer,
)
from customer360.emulator.odata_literals import LiteralError, Segment, split_path
from customer360.emulator.operations import (
    DataService,
    Locator,
    RequestContext,
    format_etag,
    parse_etag,
    representation,
)
from customer360.emulator.protection import CostModel
from customer360.emulator.query import QueryRunner, parse_query
from customer360.emulator.schema import Schema, Table
from customer360.emulator.values import coerce_payload_value, to_json_value

BULK_PREFIX = "Microsoft.Dynamics.CRM."


class WebApi:
    """Everything behind `/api/data/v9.2/` except authentication, limits and faults."""

    def __init__(
        self,
        schema: Schema,
        service: DataService,
        queries: QueryRunner,
        cost: Callable[[], CostModel],
        bulk_supported: Callable[[str], bool],
        api_url: str,
        identity: dict[str, str],
    ) -> None:
        self.schema = schema
        self.service = service
        self.queries = queries
        self.cost = cost
        self.bulk_supported = bulk_supported
        self.api_url = api_url
        self.identity = identity
        self.batch_handler: Callable[[ApiRequest, RequestContext], ApiResponse] | None = None
        self.metadata_writer = None  # MetadataWriter, set by the app (it needs the directory)
        self.actions = None  # Actions (BulkDelete, …), set by the app
        self.files = None  # FileColumns, set by the app (it needs the directory)

    def handle(self, request: ApiRequest, ctx: RequestContext) -> ApiResponse:
        """Run one request; DataverseError becomes the caller's job (batch needs it raw)."""
        try:
            segments = split_path(request.path)
        except LiteralError as exc:
            raise errors.bad_request(str(exc), errors.QUERY_NOT_SUPPORTED) from None
        method = request.method
        if not segments:
            self._only(method, "GET", request)
            return metadata.service_document(self.api_url, self.schema)
        first = segments[0]
        if first.name == "$metadata" and len(segments) == 1:
            self._only(method, "GET", request)
            return metadata.csdl(self.schema)
        if first.name == "$batch" and len(segments) == 1:
            self._only(method, "POST", request)
            if request.in_batch or self.batch_handler is None:
                raise errors.bad_request("Batches can't be nested.", errors.INVALID_ARGUMENT)
            return self.batch_handler(request, ctx)
        if first.name in ("WhoAmI", "WhoAmI()") and len(segments) == 1:
            self._only(method, "GET", request)
            return metadata.who_am_i(
                self.api_url,
                ctx.caller.systemuserid,
                self.identity["business_unit_id"],
                self.identity["organization_id"],
            )
        if first.name == "EntityDefinitions":
            if method != "GET":
                return self._change_metadata(request, segments)
            return metadata_query.entity_definitions(
                self.api_url, self.schema, segments, request.params(), self._bulk_map()
            )
        if first.name == "RetrieveMetadataChanges" and len(segments) == 1:
            self._only(method, "GET", request)
            return metadata_query.retrieve_metadata_changes(
                self.api_url, self.schema, first, request.params(), self._bulk_map()
            )
        if first.name == "CreateEntities" and len(segments) == 1:
            self._only(method, "POST", request)
            return self._change_metadata(request, segments)
        if self.actions is not None and self.actions.handles(first.name) and len(segments) == 1:
            return self.actions.run(request, ctx, first.name)
        if first.name == "sdkmessagefilters" and len(segments) == 1:
            self._only(method, "GET", request)
            return metadata.message_filters(
                self.api_url, self.schema, self._bulk_map(), request.query
            )
        table = self.service.table_for_set(first.name)
        if first.predicate is None:
            return self._collection(request, ctx, table, segments[1:])
        locator = self.service.locator(table, first.predicate)
        return self._record(request, ctx, table, locator, first, segments[1:])

    def _change_metadata(self, request: ApiRequest, segments: list[Segment]) -> ApiResponse:
        writer = self.metadata_writer
        if writer is None or request.in_batch:
            raise errors.DataverseError(
                400,
                errors.NOT_SUPPORTED,
                "Metadata changes are not supported in this context by the local Dataverse.",
            )
        with self.service.store.transaction():
            if segments[0].name == "CreateEntities":
                return writer.create_entities(request.json(), self.api_url)
            return writer.handle(request.method, segments, request.json(), self.api_url)

    def _shaped(self, table: Table, row: dict, options, prefer: dict[str, str]) -> dict:
        """A record as returned: selected columns, annotations asked for, expansions."""
        item = representation(table, row, options.select, self._annotate(prefer))
        if options.expand:
            expand_into(item, row, options.expand, self.schema, self.service.store)
        return item

    @staticmethod
    def _check_time(ctx: RequestContext, cost: CostModel) -> None:
        """Inside the request's transaction: past the time limit, everything rolls back."""
        spent = cost.per_request_ms + ctx.cost_ms
        if cost.timeout_ms and spent > cost.timeout_ms:
            raise errors.request_timeout(spent / 1000.0, cost.timeout_ms / 1000.0)

    def _annotate(self, prefer: dict[str, str]) -> Wanted | None:
        return wanted(prefer, self._primary_name)

    def _primary_name(self, table_name: str, record_id: str) -> str | None:
        table = self.schema.tables.get(table_name)
        row = self.service.store.get(table_name, record_id) if table is not None else None
        if row is None or table is None or table.primary_name is None:
            return None
        value = row.get(table.primary_name)
        return None if value is None else str(value)

    def _bulk_map(self) -> dict[str, bool]:
        return {name: self.bulk_supported(name) for name in self.schema.tables}

    def _only(self, method: str, allowed: str, request: ApiRequest) -> None:
        if method != allowed:
            raise errors.no_resource(f"{self.api_url}{request.path}")

    # ---- collections ----------------------------------------------------------------------------
    def _collection(
        self, request: ApiRequest, ctx: RequestContext, table: Table, rest: list[Segment]
    ) -> ApiResponse:
        prefer = parse_prefer(request.header("prefer"))
        cost = self.cost()
        if not rest:
            if request.method == "GET":
                annotate = self._annotate(prefer)
                before = ctx.records_read
                response = self.queries.collection(ctx, table, request.query, prefer, annotate)
                ctx.cost_ms += cost.record_ms("retrieve", ctx.records_read - before, 0)
                return response
            if request.method == "POST":
                return self._create(request, ctx, table, prefer, cost)
            raise errors.no_resource(f"{self.api_url}{request.path}")
        if len(rest) == 1 and rest[0].name == "$count" and request.method == "GET":
            count = self.queries.count(ctx, table, request.query)
            return ApiResponse(
                200,
                {"Content-Type": "text/plain", "OData-Version": "4.0"},
                str(count).encode(),
            )
        if len(rest) == 1 and rest[0].name.startswith(BULK_PREFIX) and request.method == "POST":
            message = rest[0].name[len(BULK_PREFIX) :]
            with self.service.store.transaction():
                response = run_bulk(
                    self.service,
                    ctx,
                    table,
                    message,
                    request.json(),
                    self.bulk_supported(table.logical_name),
                    cost,
                    self.api_url,
                )
                self._check_time(ctx, cost)
                return response
        raise errors.segment_not_found(rest[0].name)

    def _create(
        self,
        request: ApiRequest,
        ctx: RequestContext,
        table: Table,
        prefer: dict[str, str],
        cost: CostModel,
    ) -> ApiResponse:
        body = request.json()
        if not isinstance(body, dict):
            raise errors.payload_error(table.entity_set, "The request body must be an entity.")
        ctx.cost_ms += cost.record_ms("create", 1, _column_count(body))
        with self.service.store.transaction():
            changes = self.service.prepare(table, body, for_create=True)
            row = self.service.create(ctx, table, changes)
            self._check_time(ctx, cost)
        entity_url = f"{self.api_url}{table.entity_set}({row[table.primary_id]})"
        if prefer.get("return") == "representation":
            options = parse_query(table, request.query)
            payload = {"@odata.context": _entity_context(self.api_url, table, options.select)}
            payload.update(self._shaped(table, row, options, prefer))
            return json_response(201, payload, {"Preference-Applied": "return=representation"})
        headers = {"OData-EntityId": entity_url}
        if request.in_batch:
            headers = {"Location": entity_url, "OData-EntityId": entity_url}
        return empty_response(204, headers)

    # ---- single records -------------------------------------------------------------------------
    def _record(
        self,
        request: ApiRequest,
        ctx: RequestContext,
        table: Table,
        locator: Locator,
        first: Segment,
        rest: list[Segment],
    ) -> ApiResponse:
        method = request.method
        prefer = parse_prefer(request.header("prefer"))
        cost = self.cost()
        if rest:
            return self._property(request, ctx, table, locator, rest, cost)
        if method == "GET":
            ctx.cost_ms += cost.record_ms("retrieve", 1, 0)
            row = self.service.retrieve(ctx, locator)
            options = parse_query(table, request.query)
            if_none_match = _conditional(request.header("if-none-match"))
            if if_none_match and parse_etag(if_none_match) == row["versionnumber"]:
                return empty_response(304)
            payload = {"@odata.context": _entity_context(self.api_url, table, options.select)}
            payload.update(self._shaped(table, row, options, prefer))
            return json_response(200, payload)
        if method == "PATCH":
            body = request.json()
            if not isinstance(body, dict):
                raise errors.payload_error(table.entity_set, "The request body must be an entity.")
            ctx.cost_ms += cost.record_ms("upsert", 1, _column_count(body))
            with self.service.store.transaction():
                changes = self.service.prepare(table, body, for_create=True)
                row, created = self.service.upsert(
                    ctx,
                    locator,
                    changes,
                    if_match=_conditional(request.header("if-match")),
                    if_none_match=_conditional(request.header("if-none-match")),
                )
                self._check_time(ctx, cost)
            if prefer.get("return") == "representation":
                options = parse_query(table, request.query)
                payload = {"@odata.context": _entity_context(self.api_url, table, options.select)}
                payload.update(self._shaped(table, row, options, prefer))
                return json_response(
                    201 if created else 200,
                    payload,
                    {"Preference-Applied": "return=representation"},
                )
            entity_url = f"{self.api_url}{table.entity_set}({first.predicate})"
            return empty_response(204, {"OData-EntityId": entity_url})
        if method == "DELETE":
            ctx.cost_ms += cost.record_ms("delete", 1, 0)
            with self.service.store.transaction():
                self.service.delete(ctx, locator, _conditional(request.header("if-match")))
            return empty_response(204)
        raise errors.no_resource(f"{self.api_url}{request.path}")

    def _property(
        self,
        request: ApiRequest,
        ctx: RequestContext,
        table: Table,
        locator: Locator,
        rest: list[Segment],
        cost: CostModel,
    ) -> ApiResponse:
        """GET/PUT/DELETE `<set>(<key>)/<column>` and PUT/DELETE `<set>(<key>)/<nav>/$ref`."""
        name = rest[0].name
        method = request.method
        file_column = table.query_names.get(name)
        if file_column is not None and file_column.type == "File" and self.files is not None:
            if len(rest) > 2 or (len(rest) == 2 and rest[1].name != "$value"):
                raise errors.segment_not_found(rest[-1].name)
            ctx.cost_ms += cost.record_ms("update" if method != "GET" else "retrieve", 1, 1)
            return self.files.handle(request, ctx, table, locator, file_column, len(rest) == 2)
        if len(rest) == 2 and rest[1].name == "$ref":
            nav = table.navigations.get(name)
            if nav is None:
                raise errors.segment_not_found(name)
            if method == "PUT":
                body = request.json()
                target = body.get("@odata.id") if isinstance(body, dict) else None
                changes = self.service.prepare(table, {f"{name}@odata.bind": target}, False)
            elif method == "DELETE":
                changes = self.service.prepare(table, {f"{name}@odata.bind": None}, False)
            else:
                raise errors.no_resource(f"{self.api_url}{request.path}")
            ctx.cost_ms += cost.record_ms("update", 1, 1)
            record_id = self._existing(locator)
            with self.service.store.transaction():
                self.service.update(ctx, table, record_id, changes)
            return empty_response(204)
        if len(rest) != 1:
            raise errors.segment_not_found(rest[-1].name)
        column = table.query_names.get(name)
        if column is None:
            raise errors.segment_not_found(name)
        if method == "GET":
            ctx.cost_ms += cost.record_ms("retrieve", 1, 0)
            row = self.service.retrieve(ctx, locator)
            value = to_json_value(column, row.get(column.name))
            if value is None:
                return empty_response(204)
            return json_response(
                200,
                {
                    "@odata.context": f"{self.api_url}$metadata#{table.entity_set}"
                    f"({row[table.primary_id]})/{column.value_name}",
                    "value": value,
                },
            )
        if column.is_lookup or column.read_only:
            raise errors.bad_request(
                f"The property '{name}' cannot be set this way.", errors.INVALID_ARGUMENT
            )
        if method == "PUT":
            body = request.json()
            if not isinstance(body, dict) or "value" not in body:
                raise errors.payload_error(table.entity_set, 'Expected {"value": ...}.')
            changes = {column.name: coerce_payload_value(table, column, body["value"])}
        elif method == "DELETE":
            changes = {column.name: None}
        else:
            raise errors.no_resource(f"{self.api_url}{request.path}")
        ctx.cost_ms += cost.record_ms("update", 1, 1)
        record_id = self._existing(locator)
        with self.service.store.transaction():
            self.service.update(ctx, table, record_id, changes)
        return empty_response(204)

    def _existing(self, locator: Locator) -> str:
        record_id = self.service.find(locator)
        if record_id is None:
            raise locator.not_found()
        return record_id


def _conditional(value: str | None) -> str | None:
    """`If-None-Match: null` is the documented 'no condition' value."""
    if value is None or value.strip().lower() == "null":
        return None
    return value


def _entity_context(api_url: str, table: Table, select) -> str:
    names = f"({','.join(c.value_name for c in select)})" if select else ""
    return f"{api_url}$metadata#{table.entity_set}{names}/$entity"


def _column_count(body: dict) -> int:
    return sum(1 for name in body if not name.startswith("@"))


__all__ = ["WebApi", "format_etag"]
