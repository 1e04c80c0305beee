"""`$batch` (multipart/mixed, OData 4.0 §11.7) request encoding and response decoding.

Only independent requests are sent (no change sets): with `Prefer: odata.continue-on-error` each
part succeeds or fails on its own, which is what per-record error isolation needs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Dataverse accepts at most 1,000 requests in one batch (reference/dataverse.md §2).
MAX_BATCH_PARTS = 1000


@dataclass(frozen=True)
class BatchPart:
    method: str
    url: str  # relative to the service root, e.g. "crc33_customers(crc33_cid=1)"
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartResponse:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, raw text, or None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        return _error_field(self.body, "code")

    @property
    def error_message(self) -> str | None:
        return _error_field(self.body, "message")


def _error_field(body: Any, name: str) -> str | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        value = body["error"].get(name)
        return None if value is None else str(value)
    return None


def encode_batch(parts: Sequence[BatchPart], api_path: str) -> tuple[str, bytes]:
    """Return (content type, body) for a batch of independent requests.

    `api_path` is the service root path (e.g. `/api/data/v9.2/`) used for inner request lines.
    """
    if not parts:
        raise ValueError("a $batch needs at least one request")
    if len(parts) > MAX_BATCH_PARTS:
        raise ValueError(f"a $batch holds at most {MAX_BATCH_PARTS} requests, got {len(parts)}")
    boundary = f"batch_{uuid.uuid4()}"
    root = api_path if api_path.endswith("/") else api_path + "/"
    chunks: list[str] = []
    for index, part in enumerate(parts, start=1):
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {index}",
            "",
            f"{part.method} {root}{part.url} HTTP/1.1",
        ]
        for name, value in part.headers.items():
            lines.append(f"{name}: {value}")
        if part.body is not None:
            lines.append("Content-Type: application/json; type=entry")
            lines.append("")
            lines.append(json.dumps(part.body, ensure_ascii=False, separators=(",", ":")))
        else:
            lines.append("")
        lines.append("")
        chunks.append("\r\n".join(lines))
    text = "\r\n".join(chunks) + f"\r\n--{boundary}--\r\n"
    return f'multipart/mixed; boundary="{boundary}"', text.encode("utf-8")


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_STATUS = re.compile(r"^HTTP/\d\.\d\s+(\d{3})")


def boundary_of(content_type: str) -> str:
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise ValueError(f"no multipart boundary in Content-Type {content_type!r}")
    return match.group(1)


def decode_batch(content_type: str, body: bytes | str) -> list[PartResponse]:
    """Parse a `$batch` response into per-request responses, in request order.

    Change-set responses (nested multipart) are flattened in order.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    boundary = boundary_of(content_type)
    responses: list[PartResponse] = []
    for raw in _split(text, boundary):
        head, _, rest = _split_headers(raw)
        nested_type = head.get("content-type", "")
        if nested_type.lower().startswith("multipart/mixed"):
            responses.extend(decode_batch(nested_type, rest))
            continue
        responses.append(_parse_http(rest))
    return responses


def _split(text: str, boundary: str) -> list[str]:
    delimiter = f"--{boundary}"
    pieces = re.split(rf"(?:\r?\n)?{re.escape(delimiter)}(?:--)?[ \t]*(?:\r?\n)?", text)
    # pieces[0] is the preamble and the last one the epilogue
    return [p for p in pieces[1:] if p.strip()]


def _split_headers(raw: str) -> tuple[dict[str, str], str, str]:
    match = re.search(r"\r?\n\r?\n", raw)
    if match is None:
        head_text, rest = raw, ""
    else:
        head_text, rest = raw[: match.start()], raw[match.end() :]
    headers: dict[str, str] = {}
    for line in head_text.splitlines():
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers, head_text, rest


def _parse_http(raw: str) -> PartResponse:
    lines = raw.lstrip("\r\n")
    status_line, _, remainder = lines.partition("\n")
    match = _STATUS.match(status_line.strip())
    if not match:
        raise ValueError(f"malformed $batch part status line {status_line.strip()!r}")
    headers, _, body_text = _split_headers(remainder)
    body_text = body_text.strip()
    parsed: Any = None
    if body_text:
        try:
            parsed = json.loads(body_text)
        except json.JSONDecodeError:
            parsed = body_text
    return PartResponse(status=int(match.group(1)), headers=headers, body=parsed)
