"""`$batch`: the multipart/mixed envelope of execute-batch-operations-using-web-api.md.

Parsing accepts quoted or bare boundaries, CRLF or LF, absolute or relative inner URLs and
per-part headers. Change sets run in one store transaction (a failure rolls the set back);
`Content-ID` values become `$n` references usable later in the same change set. Without
`Prefer: odata.continue-on-error` the batch stops at the first failure and the outer status is
that failure's; with it the outer status is 200 and every part carries its own status.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from customer360.emulator import errors
from customer360.emulator.messages import ApiRequest, ApiResponse, error_response, parse_prefer
from customer360.emulator.operations import RequestContext

SERVICE_PATH = "/api/data/v9.2/"
BOUNDARY_RE = re.compile(r'boundary\s*=\s*"?([^";]+)"?', re.IGNORECASE)
REFERENCE_RE = re.compile(r"^\$(\w+)(.*)$")


@dataclass
class BatchOperation:
    method: str
    url: str
    headers: dict[str, str]
    body: str
    content_id: str | None


@dataclass
class ChangeSet:
    operations: list[BatchOperation] = field(default_factory=list)


def _boundary(content_type: str | None) -> str:
    if not content_type or not content_type.lower().startswith("multipart/mixed"):
        raise errors.bad_request(
            "The Content-Type of a $batch request must be multipart/mixed with a boundary.",
            errors.INVALID_ARGUMENT,
        )
    match = BOUNDARY_RE.search(content_type)
    if not match:
        raise errors.bad_request(
            "The multipart/mixed Content-Type has no boundary.", errors.INVALID_ARGUMENT
        )
    return match.group(1).strip()


def _split_parts(lines: list[str], boundary: str) -> list[list[str]]:
    delimiter = f"--{boundary}"
    closing = f"--{boundary}--"
    parts: list[list[str]] = []
    current: list[str] | None = None
    closed = False
    for line in lines:
        stripped = line.rstrip()
        if stripped == closing:
            if current is not None:
                parts.append(current)
            current = None
            closed = True
            break
        if stripped == delimiter:
            if current is not None:
                parts.append(current)
            current = []
            continue
        if current is not None:
            current.append(line)
    if not closed:
        raise errors.bad_request(
            f"The batch body has no closing boundary '--{boundary}--'.", errors.INVALID_ARGUMENT
        )
    return parts


def _headers_and_rest(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    for index, line in enumerate(lines):
        if line.strip() == "":
            return headers, lines[index + 1 :]
        name, sep, value = line.partition(":")
        if not sep:
            raise errors.bad_request(f"Malformed header line '{line}' in $batch.")
        headers[name.strip().lower()] = value.strip()
    return headers, []


def _parse_http_part(lines: list[str], mime_headers: dict[str, str]) -> BatchOperation:
    while lines and lines[0].strip() == "":
        lines = lines[1:]
    if not lines:
        raise errors.bad_request("A $batch part has no request line.", errors.INVALID_ARGUMENT)
    request_line = lines[0].split()
    if len(request_line) < 2:
        raise errors.bad_request(f"Malformed request line '{lines[0]}' in $batch.")
    method, url = request_line[0].upper(), request_line[1]
    headers, body_lines = _headers_and_rest(lines[1:])
    body = "\n".join(body_lines).strip()
    content_id = mime_headers.get("content-id") or headers.get("content-id")
    return BatchOperation(method, url, headers, body, content_id)


def parse_batch(body: bytes, content_type: str | None) -> list[BatchOperation | ChangeSet]:
    boundary = _boundary(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.bad_request("The $batch body is not UTF-8.") from None
    lines = text.replace("\r\n", "\n").split("\n")
    items: list[BatchOperation | ChangeSet] = []
    for part in _split_parts(lines, boundary):
        mime, rest = _headers_and_rest(part)
        part_type = mime.get("content-type", "")
        if part_type.lower().startswith("multipart/mixed"):
            inner_boundary = _boundary(part_type)
            change_set = ChangeSet()
            for inner in _split_parts(rest, inner_boundary):
                inner_mime, inner_rest = _headers_and_rest(inner)
                if inner_mime.get("content-type", "").lower().startswith("multipart/mixed"):
                    raise errors.bad_request(
                        "Change sets can't be nested.", errors.INVALID_ARGUMENT
                    )
                change_set.operations.append(_parse_http_part(inner_rest, inner_mime))
            items.append(change_set)
        else:
            items.append(_parse_http_part(rest, mime))
    return items


def _count(items: list[BatchOperation | ChangeSet]) -> int:
    return sum(len(i.operations) if isinstance(i, ChangeSet) else 1 for i in items)


def _format_part(response: ApiResponse, content_id: str | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines.append("")
    phrase = HTTPStatus(response.status).phrase
    lines.append(f"HTTP/1.1 {response.status} {phrase}")
    if response.status >= 400:
        lines.append(f"REQ_ID: {uuid.uuid4()}")
    for name, value in response.headers.items():
        lines.append(f"{name}: {value}")
    lines.append("")
    lines.append(response.body.decode("utf-8") if response.body else "")
    return "\r\n".join(lines)


class BatchExecutor:
    """Runs parsed batch items through the Web API dispatcher."""

    def __init__(
        self,
        dispatch: Callable[[ApiRequest, RequestContext], ApiResponse],
        transaction: Callable,
        base_url: str,
        max_requests: int,
        max_url_length: int,
        per_request_ms: Callable[[], float],
        primary_ids: dict[str, str],
    ) -> None:
        self.primary_ids = primary_ids
        self.dispatch = dispatch
        self.transaction = transaction
        self.base_url = base_url
        self.max_requests = max_requests
        self.max_url_length = max_url_length
        self.per_request_ms = per_request_ms

    def __call__(self, request: ApiRequest, ctx: RequestContext) -> ApiResponse:
        items = parse_batch(request.body, request.header("content-type"))
        total = _count(items)
        if total > self.max_requests:
            raise errors.bad_request(
                f"The batch contains {total} requests, more than the maximum of "
                f"{self.max_requests} requests per batch.",
                errors.INVALID_ARGUMENT,
            )
        continue_on_error = "odata.continue-on-error" in parse_prefer(request.header("prefer"))
        boundary = f"batchresponse_{uuid.uuid4()}"
        chunks: list[str] = []
        outer_status = 200
        for item in items:
            if isinstance(item, BatchOperation):
                response = self._run_single(item, ctx, {})
                chunks.append(_format_part(response, item.content_id))
                failed = response.status >= 400
                error_status = response.status
            else:
                text, error_status = self._run_change_set(item, ctx)
                chunks.append(text)
                failed = error_status >= 400
            if failed and not continue_on_error:
                outer_status = error_status
                break
        body = "".join(f"--{boundary}\r\n{chunk}\r\n" for chunk in chunks)
        body += f"--{boundary}--\r\n"
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"}
        if continue_on_error:
            headers["Preference-Applied"] = "odata.continue-on-error"
        return ApiResponse(outer_status, headers, body.encode("utf-8"))

    def _run_single(
        self, op: BatchOperation, ctx: RequestContext, references: dict[str, str]
    ) -> ApiResponse:
        try:
            inner = self._to_request(op, references)
            ctx.cost_ms += self.per_request_ms()
            with self.transaction():
                return self.dispatch(inner, ctx)
        except errors.DataverseError as exc:
            return error_response(exc)

    def _run_change_set(self, change_set: ChangeSet, ctx: RequestContext) -> tuple[str, int]:
        references: dict[str, str] = {}
        responses: list[tuple[ApiResponse, str | None]] = []
        current: str | None = None
        try:
            with self.transaction():
                for op in change_set.operations:
                    current = op.content_id
                    if op.method == "GET":
                        raise errors.bad_request(
                            "GET requests are not allowed inside a change set.",
                            errors.INVALID_ARGUMENT,
                        )
                    inner = self._to_request(op, references)
                    ctx.cost_ms += self.per_request_ms()
                    response = self.dispatch(inner, ctx)
                    if response.status >= 400:
                        raise _PartFailed(response, op.content_id)
                    responses.append((response, op.content_id))
                    if op.content_id is not None:
                        location = response.headers.get("OData-EntityId")
                        if location is None and response.body:
                            location = _location_from_body(response.body, self.primary_ids)
                        if location is not None:
                            references[op.content_id] = location
        except errors.DataverseError as exc:
            return _format_part(error_response(exc), current), exc.status
        except _PartFailed as failed:
            return _format_part(failed.response, failed.content_id), failed.response.status
        boundary = f"changesetresponse_{uuid.uuid4()}"
        inner = "".join(f"--{boundary}\r\n{_format_part(resp, cid)}\r\n" for resp, cid in responses)
        inner += f"--{boundary}--"
        text = f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"
        return text, 200

    def _to_request(self, op: BatchOperation, references: dict[str, str]) -> ApiRequest:
        url = op.url
        if len(url) > self.max_url_length:
            raise errors.DataverseError(
                414,
                errors.REQUEST_LENGTH_TOO_LARGE,
                f"The request URL is longer than {self.max_url_length} characters.",
            )
        body = op.body.encode("utf-8")
        reference = REFERENCE_RE.match(url)
        if reference:
            url = self._resolve(reference.group(1), references) + reference.group(2)
        if references and body:
            body = self._resolve_body(body, references)
        path, query = _relative(url)
        return ApiRequest(
            method=op.method,
            path=path,
            query=query,
            headers=op.headers,
            body=body,
            content_id=op.content_id,
            in_batch=True,
        )

    def _resolve(self, content_id: str, references: dict[str, str]) -> str:
        if content_id not in references:
            raise errors.bad_request(
                f"Content-ID Reference: '${content_id}' does not exist in the batch context.",
                errors.INVALID_ARGUMENT,
            )
        return references[content_id]

    def _resolve_body(self, body: bytes, references: dict[str, str]) -> bytes:
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return body
        if not isinstance(payload, dict):
            return body
        for name, value in list(payload.items()):
            if (
                (name.endswith("@odata.bind") or name == "@odata.id")
                and isinstance(value, str)
                and value.startswith("$")
            ):
                match = REFERENCE_RE.match(value)
                if match:
                    payload[name] = self._resolve(match.group(1), references) + match.group(2)
        return json.dumps(payload).encode("utf-8")


class _PartFailed(Exception):
    def __init__(self, response: ApiResponse, content_id: str | None) -> None:
        super().__init__("batch part failed")
        self.response = response
        self.content_id = content_id


def _location_from_body(body: bytes, primary_ids: dict[str, str]) -> str | None:
    """Entity path from a return=representation body (such responses carry no
    OData-EntityId): the entity set from `@odata.context`, the id from its primary key."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    match = re.search(r"\$metadata#([^(/]+)", str(payload.get("@odata.context", "")))
    if not match or match.group(1) not in primary_ids:
        return None
    record_id = payload.get(primary_ids[match.group(1)])
    return f"/{match.group(1)}({record_id})" if record_id else None


def _relative(url: str) -> tuple[str, str]:
    """Inner request URL (absolute, `/api/data/v9.2/...` or service-relative) → (path, query)."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        raw_path, query = parts.path, parts.query
    else:
        raw_path, _, query = url.partition("?")
    marker = raw_path.find(SERVICE_PATH)
    if marker >= 0:
        raw_path = raw_path[marker + len(SERVICE_PATH) :]
    return unquote(raw_path.lstrip("/")), query
