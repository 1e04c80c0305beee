"""Unbound actions beyond the record messages: `BulkDelete`.

`POST BulkDelete` (webapi/reference/bulkdelete) takes a `QuerySet` of `QueryExpression`s and
answers `{"JobId": <asyncoperation id>}`. Dataverse runs the job later, in the background; the
emulator runs it before answering, so a read right after already sees the records gone.
"""

from __future__ import annotations

from customer360.emulator import errors
from customer360.emulator.messages import ApiRequest, ApiResponse, json_response
from customer360.emulator.operations import DataService, Locator, RequestContext, new_guid
from customer360.emulator.readplan import Condition, Plan, all_of, any_of, column_of, condition, run
from customer360.emulator.schema import Table

# QueryExpression ConditionOperator names → FetchXML operator names used by readplan.
OPERATORS = {
    "Equal": "eq",
    "NotEqual": "ne",
    "GreaterThan": "gt",
    "GreaterEqual": "ge",
    "LessThan": "lt",
    "LessEqual": "le",
    "Like": "like",
    "NotLike": "not-like",
    "In": "in",
    "NotIn": "not-in",
    "Null": "null",
    "NotNull": "not-null",
    "BeginsWith": "begins-with",
    "EndsWith": "ends-with",
    "Between": "between",
    "NotBetween": "not-between",
}


def _value(item: object) -> object:
    return item.get("Value") if isinstance(item, dict) else item


def _criteria(table: Table, expression: object) -> Condition | None:
    """A FilterExpression (Conditions, Filters, FilterOperator) → condition."""
    if not isinstance(expression, dict):
        return None
    parts: list[Condition] = []
    for raw in expression.get("Conditions") or []:
        operator = OPERATORS.get(str(raw.get("Operator")))
        if operator is None:
            raise errors.bad_request(
                f"The condition operator '{raw.get('Operator')}' is not supported locally.",
                errors.QUERY_NOT_SUPPORTED,
            )
        column = column_of(table, str(raw.get("AttributeName", "")))
        values = [_value(v) for v in raw.get("Values") or []]
        parts.append(condition(None, column, operator, values))
    for nested in expression.get("Filters") or []:
        inner = _criteria(table, nested)
        if inner is not None:
            parts.append(inner)
    if not parts:
        return None
    return any_of(parts) if expression.get("FilterOperator") == "Or" else all_of(parts)


class Actions:
    """Unbound actions the Web API serves besides the record operations."""

    NAMES = ("BulkDelete",)

    def __init__(self, service: DataService, api_url: str) -> None:
        self.service = service
        self.api_url = api_url

    def handles(self, name: str) -> bool:
        return name in self.NAMES

    def run(self, request: ApiRequest, ctx: RequestContext, name: str) -> ApiResponse:
        if request.method != "POST":
            raise errors.no_resource(f"{self.api_url}{request.path}")
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("QuerySet"), list):
            raise errors.bad_request("BulkDelete needs a QuerySet of QueryExpression objects.")
        doomed: list[tuple[Table, str]] = []
        for query in body["QuerySet"]:
            entity = str(query.get("EntityName", "")) if isinstance(query, dict) else ""
            table = self.service.schema.tables.get(entity)
            if table is None:
                raise errors.bad_request(f"The entity '{entity}' does not exist.")
            plan = Plan(table, None, condition=_criteria(table, query.get("Criteria")))
            doomed.extend(
                (table, ctx_row[None][table.primary_id])
                for ctx_row in run(self.service.store, plan)
            )
        with self.service.store.transaction():
            for table, record_id in doomed:
                self.service.delete(ctx, Locator(table, record_id=record_id), None)
        return json_response(
            200,
            {
                "@odata.context": f"{self.api_url}$metadata#Microsoft.Dynamics.CRM."
                "BulkDeleteResponse",
                "JobId": new_guid(),
            },
        )
