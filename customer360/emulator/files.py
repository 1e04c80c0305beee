"""File columns: upload, download and delete (file-column-data.md, "Use Dataverse messages").

- `PATCH <set>(<id>)/<column>` with the bytes as body and `x-ms-file-name` → 204 (one request,
  up to 128 MB);
- chunked: `PATCH …/<column>?x-ms-file-name=<name>` with `x-ms-transfer-mode: chunked` and an
  empty body → 200 with `Location: …?sessiontoken=<token>` and `x-ms-chunk-size`; each chunk is a
  `PATCH` of that Location with `Content-Range: bytes a-b/total` → 206, the last one 204;
- `GET …/<column>/$value` → the bytes with `x-ms-file-name`, `x-ms-file-size`, honouring `Range`;
- `DELETE …/<column>` → 204.
The column's value is the file's id; the bytes live in `<dataverse>/files/<id>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from customer360.emulator import errors
from customer360.emulator.messages import ApiRequest, ApiResponse, empty_response, json_response
from customer360.emulator.operations import DataService, Locator, RequestContext, new_guid
from customer360.emulator.schema import Column, Table

CHUNK_SIZE = 4 * 1024 * 1024
MAX_FILE_BYTES = 128 * 1024 * 1024
RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass
class _Session:
    table: str
    record_id: str
    column: str
    file_name: str
    data: bytearray = field(default_factory=bytearray)


class FileColumns:
    def __init__(self, service: DataService, directory: Path, api_url: str) -> None:
        self.service = service
        self.directory = directory / "files"
        self.api_url = api_url
        self.sessions: dict[str, _Session] = {}

    # ---- storage --------------------------------------------------------------------------
    def _save(self, file_id: str, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / file_id).write_bytes(data)
        (self.directory / f"{file_id}.json").write_text(json.dumps({"name": name}), "utf-8")

    def _load(self, file_id: str) -> tuple[str, bytes]:
        meta = json.loads((self.directory / f"{file_id}.json").read_text("utf-8"))
        return meta["name"], (self.directory / file_id).read_bytes()

    # ---- requests -------------------------------------------------------------------------
    def handle(
        self,
        request: ApiRequest,
        ctx: RequestContext,
        table: Table,
        locator: Locator,
        column: Column,
        value_segment: bool,
    ) -> ApiResponse:
        record_id = self.service.find(locator)
        if record_id is None:
            raise locator.not_found()
        row = self.service.store.get(table.logical_name, record_id) or {}
        current = row.get(column.name)
        method = request.method
        if method == "GET":
            if current is None:
                raise errors.DataverseError(
                    404,
                    errors.OBJECT_DOES_NOT_EXIST,
                    f"No file attachment found for {column.name}.",
                )
            if not value_segment:
                return _json_value(self.api_url, table, record_id, column, current)
            return self._download(request, str(current))
        if value_segment:
            raise errors.no_resource(f"{self.api_url}{request.path}")
        if method == "DELETE":
            with self.service.store.transaction():
                self.service.update(ctx, table, record_id, {column.name: None})
            return empty_response(204)
        if method not in ("PATCH", "PUT"):
            raise errors.no_resource(f"{self.api_url}{request.path}")
        token = dict(request.params()).get("sessiontoken")
        if token is not None:
            return self._chunk(request, ctx, table, token)
        name = request.header("x-ms-file-name") or dict(request.params()).get("x-ms-file-name")
        if not name:
            raise errors.bad_request("The x-ms-file-name header is required.")
        if (request.header("x-ms-transfer-mode") or "").lower() == "chunked":
            token = new_guid()
            self.sessions[token] = _Session(table.logical_name, record_id, column.name, name)
            location = (
                f"{self.api_url}{request.path}?x-ms-file-name={quote(name)}&sessiontoken={token}"
            )
            return empty_response(200, {"Location": location, "x-ms-chunk-size": str(CHUNK_SIZE)})
        if len(request.body) > MAX_FILE_BYTES:
            raise errors.DataverseError(
                413, errors.REQUEST_LENGTH_TOO_LARGE, "A single upload is limited to 128 MB."
            )
        self._store(ctx, table, record_id, column.name, name, request.body)
        return empty_response(204)

    def _store(
        self, ctx: RequestContext, table: Table, record_id: str, column: str, name: str, data
    ) -> None:
        file_id = new_guid()
        self._save(file_id, name, bytes(data))
        with self.service.store.transaction():
            self.service.update(ctx, table, record_id, {column: file_id})

    def _chunk(
        self, request: ApiRequest, ctx: RequestContext, table: Table, token: str
    ) -> ApiResponse:
        session = self.sessions.get(token)
        if session is None or session.table != table.logical_name:
            raise errors.bad_request("The upload session token is not valid.")
        match = RANGE_RE.fullmatch((request.header("content-range") or "").strip())
        if match is None:
            raise errors.bad_request("Content-Range 'bytes start-end/total' is required.")
        start, end, total = (int(g) for g in match.groups())
        if start != len(session.data) or end - start + 1 != len(request.body):
            raise errors.bad_request(
                f"The chunk {start}-{end} does not continue the {len(session.data)} bytes "
                "received so far."
            )
        session.data.extend(request.body)
        if len(session.data) < total:
            return empty_response(206)
        del self.sessions[token]
        self._store(ctx, table, session.record_id, session.column, session.file_name, session.data)
        return empty_response(204)

    def _download(self, request: ApiRequest, file_id: str) -> ApiResponse:
        name, data = self._load(file_id)
        headers = {
            "Content-Type": "application/octet-stream",
            "x-ms-file-name": name,
            "x-ms-file-size": str(len(data)),
            "OData-Version": "4.0",
        }
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", (request.header("range") or "").strip())
        if wanted:
            start = int(wanted.group(1))
            end = int(wanted.group(2)) if wanted.group(2) else len(data) - 1
            part = data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(data)}"
            return ApiResponse(206, headers, part)
        return ApiResponse(200, headers, data)


def _json_value(api_url: str, table: Table, record_id: str, column: Column, file_id) -> ApiResponse:
    return json_response(
        200,
        {
            "@odata.context": f"{api_url}$metadata#{table.entity_set}({record_id})/{column.name}",
            "value": file_id,
        },
    )
