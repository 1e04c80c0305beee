"""Bulk messages: CreateMultiple, UpdateMultiple, UpsertMultiple (and DeleteMultiple's refusal).

bulk-operations.md: `POST <set>/Microsoft.Dynamics.CRM.<Message>` with `{"Targets":[...]}`, every
item carrying `"@odata.type": "Microsoft.Dynamics.CRM.<table>"`. On standard tables any error
rolls back the whole request (the caller runs this inside one store transaction).
CreateMultiple answers 200 with `Ids`; UpdateMultiple and UpsertMultiple answer 204.
"""

from __future__ import annotations

from customer360.emulator import errors
from customer360.emulator.messages import ApiResponse, empty_response, json_response
from customer360.emulator.operations import DataService, Locator, RequestContext
from customer360.emulator.protection import CostModel
from customer360.emulator.schema import Table
from customer360.emulator.values import coerce_payload_value

MESSAGES = {"CreateMultiple": "create", "UpdateMultiple": "update", "UpsertMultiple": "upsert"}


def _not_supported(message: str, table: Table) -> errors.DataverseError:
    return errors.DataverseError(
        400,
        errors.NOT_SUPPORTED,
        f"The '{message}' method does not support entities of type '{table.logical_name}'. "
        "MessageProcessorCache returned MessageProcessor.Empty.",
    )


def run_bulk(
    service: DataService,
    ctx: RequestContext,
    table: Table,
    message: str,
    body: object,
    supported: bool,
    cost: CostModel,
    api_url: str,
) -> ApiResponse:
    if message == "DeleteMultiple":
        # Standard tables only: DeleteMultiple exists for elastic tables (not modelled here).
        raise errors.DataverseError(
            400, errors.NOT_SUPPORTED, "DeleteMultiple has not yet been implemented."
        )
    operation = MESSAGES.get(message)
    if operation is None:
        raise errors.segment_not_found(f"Microsoft.Dynamics.CRM.{message}")
    if not supported:
        raise _not_supported(message, table)
    if not isinstance(body, dict) or not isinstance(body.get("Targets"), list):
        raise errors.payload_error(
            table.entity_set, f"The parameter 'Targets' of '{message}' must be a collection."
        )
    expected_type = f"Microsoft.Dynamics.CRM.{table.logical_name}"
    ids: list[str] = []
    for index, target in enumerate(body["Targets"]):
        _check_target(table, message, expected_type, index, target)
        record_id = _apply(service, ctx, table, operation, index, target, cost)
        if record_id is not None:
            ids.append(record_id)
    if operation == "create":
        return json_response(
            200,
            {
                "@odata.context": f"{api_url}$metadata#Microsoft.Dynamics.CRM."
                "CreateMultipleResponse",
                "Ids": ids,
            },
        )
    return empty_response(204)


def _check_target(table: Table, message: str, expected_type: str, index: int, target) -> None:
    if not isinstance(target, dict):
        raise errors.payload_error(
            table.entity_set, f"Targets[{index}] of '{message}' is not an entity object."
        )
    odata_type = target.get("@odata.type")
    if odata_type is None:
        raise errors.payload_error(
            table.entity_set,
            f"Targets[{index}] has no '@odata.type' annotation; '{message}' needs "
            f'"@odata.type": "{expected_type}" on every item.',
        )
    if str(odata_type).lstrip("#") != expected_type:
        raise errors.bad_request(
            f"Targets[{index}] is of type '{odata_type}' but all Targets of '{message}' on "
            f"'{table.entity_set}' must be '{expected_type}'.",
            errors.INVALID_ARGUMENT,
        )


def _apply(
    service: DataService,
    ctx: RequestContext,
    table: Table,
    operation: str,
    index: int,
    target: dict,
    cost: CostModel,
) -> str | None:
    """Write one target; the new record's id for a create."""
    if operation == "create":
        changes = service.prepare(table, target, for_create=True)
        ctx.cost_ms += cost.record_ms(operation, 1, len(changes))
        return service.create(ctx, table, changes)[table.primary_id]
    if operation == "update":
        record_id = target.get(table.primary_id)
        if not isinstance(record_id, str):
            raise errors.bad_request(
                f"Targets[{index}] of UpdateMultiple has no '{table.primary_id}'; every "
                "target must carry its primary key.",
                errors.INVALID_ARGUMENT,
            )
        record_id = record_id.lower()
        changes = service.prepare(table, target, for_create=False)
        ctx.cost_ms += cost.record_ms(operation, 1, len(changes))
        if service.store.get(table.logical_name, record_id) is None:
            raise errors.DataverseError(
                404,
                errors.OBJECT_DOES_NOT_EXIST,
                f"{table.logical_name} With Ids = {record_id} Do Not Exist",
            )
        service.update(ctx, table, record_id, changes)
        return None
    locator = _upsert_locator(service, table, target)
    changes = service.prepare(table, target, for_create=True)
    ctx.cost_ms += cost.record_ms(operation, 1, len(changes))
    if locator is None:
        service.create(ctx, table, changes)
    else:
        service.upsert(ctx, locator, changes)
    return None


def _upsert_locator(service: DataService, table: Table, target: dict) -> Locator | None:
    """The record an UpsertMultiple target names: `@odata.id`, its primary key or key columns."""
    odata_id = target.get("@odata.id")
    if odata_id is not None:
        if not isinstance(odata_id, str):
            raise errors.bad_request("'@odata.id' must be a relative URL string.")
        return service.locator_from_url(odata_id, expected=table)
    record_id = target.get(table.primary_id)
    if isinstance(record_id, str):
        coerce_payload_value(table, table.columns[table.primary_id], record_id)
        return Locator(table, record_id=record_id.lower())
    for key in table.keys:
        values = tuple(target.get(a) for a in key.attributes)
        if None not in values:
            if len(values) > 1 or values[0].__class__ is not int:
                values = tuple(
                    coerce_payload_value(table, table.columns[a], v)
                    for a, v in zip(key.attributes, values, strict=True)
                )
            return Locator(table, key=key, key_values=values)
    return None
