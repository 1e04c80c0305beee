"""Dataverse error codes and the exception the Web API turns into `{"error":{"code","message"}}`.

Codes and messages follow reference/dataverse.md §5 (data-service-error-codes) and the Web API
troubleshooting page. One exception type carries HTTP status + hex code + message, so every layer
(URL parsing, validation, store) can fail the same way and `$batch` / bulk can report it per part.
"""

from __future__ import annotations

# Hex codes (as Dataverse prints them in the JSON body).
OBJECT_DOES_NOT_EXIST = "0x80040217"
RECORD_NOT_FOUND_BY_ENTITY_KEY = "0x80060891"
DUPLICATE_RECORD = "0x80040237"
DUPLICATE_RECORD_ENTITY_KEY = "0x80060892"
ENTITY_KEY_NOT_DEFINED = "0x80060890"
INVALID_OWNER_ID = "0x80040229"
INVALID_STATE_STATUS = "0x80048408"
INVALID_URL_FOR_BIND = "0x80090800"
INVALID_PROPERTY_IN_BODY = "0x80090801"
REQUIRED_FIELD_MISSING = "0x80040200"
REQUEST_LENGTH_TOO_LARGE = "0x8004418a"
VALIDATION_ERROR = "0x80044331"
PAYLOAD_ERROR = "0x80048d19"
RESOURCE_NOT_FOUND_FOR_SEGMENT = "0x8006088a"
UNEXPECTED = "0x80040216"
SQL_DEADLOCK = "0x80044150"  # -2147204784, SQL error 1205
SQL_TIMEOUT = "0x80044151"  # -2147204783, SQL error -2
NOT_SUPPORTED = "0x80040800"
QUERY_NOT_SUPPORTED = "0x80060888"
PROPERTY_NOT_FOUND = "0x0"
INVALID_ARGUMENT = "0x80040203"

# Service protection (api-limits.md).
LIMIT_REQUESTS = "0x80072322"
LIMIT_EXECUTION_TIME = "0x80072321"
LIMIT_CONCURRENCY = "0x80072326"

PAYLOAD_HELP = (
    "Error identified in Payload provided by the user for Entity :'{entity_set}', For more "
    "information on this error please follow this help link "
    "https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : "
    "Microsoft.OData.ODataException: {detail}"
)


class DataverseError(Exception):
    """An error the Web API reports as `{"error":{"code":..., "message":...}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(table: str, record_id: str) -> DataverseError:
    return DataverseError(
        404, OBJECT_DOES_NOT_EXIST, f"{table} With Id = {record_id} Does Not Exist"
    )


def not_found_by_key(table: str) -> DataverseError:
    return DataverseError(
        404,
        RECORD_NOT_FOUND_BY_ENTITY_KEY,
        f"A record with the specified key values does not exist in {table} entity",
    )


def invalid_key(table: str) -> DataverseError:
    return DataverseError(
        400,
        ENTITY_KEY_NOT_DEFINED,
        f"The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{table}'. "
        "Ensure that the names and number of key properties match the declared or alternate key "
        f"properties for the resource 'Microsoft.Dynamics.CRM.{table}'.",
    )


def segment_not_found(segment: str) -> DataverseError:
    return DataverseError(
        404, RESOURCE_NOT_FOUND_FOR_SEGMENT, f"Resource not found for the segment '{segment}'."
    )


def no_resource(url: str) -> DataverseError:
    return DataverseError(
        404, "", f"No HTTP resource was found that matches the request URI '{url}'."
    )


def property_not_found(name: str, table: str) -> DataverseError:
    return DataverseError(
        400,
        PROPERTY_NOT_FOUND,
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{table}'.",
    )


def invalid_property(name: str, table: str) -> DataverseError:
    return DataverseError(
        400,
        INVALID_PROPERTY_IN_BODY,
        f"Invalid property '{name}' was found in entity 'Microsoft.Dynamics.CRM.{table}'.",
    )


def payload_error(entity_set: str, detail: str) -> DataverseError:
    return DataverseError(
        400, PAYLOAD_ERROR, PAYLOAD_HELP.format(entity_set=entity_set, detail=detail)
    )


def request_timeout(modelled_seconds: float, limit_seconds: float) -> DataverseError:
    """A request that ran past Dataverse's 2-minute limit; its changes are rolled back."""
    return DataverseError(
        500,
        SQL_TIMEOUT,
        "Sql error: Generic SQL error. CRM ErrorCode: -2147204783 Sql ErrorCode: -2146232060 "
        f"Sql Number: -2 (Execution Timeout Expired: the request needed {modelled_seconds:,.0f} "
        f"seconds of server time, over the {limit_seconds:,.0f}-second limit of one request; "
        "send fewer records per request).",
    )


def bad_request(message: str, code: str = INVALID_ARGUMENT) -> DataverseError:
    return DataverseError(400, code, message)
