"""Transport-neutral request/response objects shared by the HTTP endpoint and `$batch` parts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from customer360.emulator.errors import DataverseError

JSON_TYPE = "application/json; odata.metadata=minimal"


@dataclass
class ApiRequest:
    method: str
    path: str  # percent-decoded, relative to /api/data/v9.2/ (no leading slash)
    query: str  # raw query string (still percent-encoded)
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    content_id: str | None = None
    in_batch: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def params(self) -> list[tuple[str, str]]:
        return query_pairs(self.query)

    def json(self) -> object:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataverseError(
                400,
                "0x80048d19",
                f"Error identified in Payload provided by the user: the body is not valid JSON "
                f"({exc.msg if hasattr(exc, 'msg') else exc}).",
            ) from None


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_response(
    status: int, payload: object, headers: dict[str, str] | None = None
) -> ApiResponse:
    out = {"Content-Type": JSON_TYPE, "OData-Version": "4.0"}
    if headers:
        out.update(headers)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return ApiResponse(status, out, body)


def empty_response(status: int, headers: dict[str, str] | None = None) -> ApiResponse:
    out = {"OData-Version": "4.0"}
    if headers:
        out.update(headers)
    return ApiResponse(status, out, b"")


def error_response(error: DataverseError) -> ApiResponse:
    headers = {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}
    headers.update(error.headers)
    body = json.dumps(error.body(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return ApiResponse(error.status, headers, body)


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The one way every handler decodes a query string: as a form-encoded query, where `+` is
    a space and `%XX` an escaped byte (RFC 3986 / HTML forms; clients such as `requests` send
    `$filter=LogicalName+eq+'x'`)."""
    return parse_qsl(query, keep_blank_values=True)


_PREFER_PART = re.compile(r'\s*([^=,\s]+)\s*(?:=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')


def parse_prefer(values: str | None) -> dict[str, str]:
    """`return=representation, odata.maxpagesize=10, odata.include-annotations="a,b"` → dict
    (a quoted value may hold commas)."""
    prefs: dict[str, str] = {}
    if not values:
        return prefs
    for match in _PREFER_PART.finditer(values):
        name, value = match.group(1), match.group(2) or ""
        prefs[name.strip().lower()] = value.strip().strip('"')
    return prefs
