"""A small HTTP server answering the ADLS Gen2 REST calls the real Azure SDK makes for the
landing zone, over an :class:`adls_fake.AdlsStore` (see adls_fake.py for why storage is faked).

With it the unmodified ``DataLakeServiceClient`` runs end to end (URL building, paging, the
generated deserialisers, error mapping) against ``http://127.0.0.1:<port>/<account>``, the
path-style address Azurite uses. It answers only:

- ``GET /<fs>?resource=filesystem&directory=&recursive=&continuation=`` — List Paths (dfs), JSON,
  continuation in ``x-ms-continuation``;
- ``GET /<fs>?restype=container`` — Get Container Properties (``FileSystemClient.exists``);
- ``HEAD /<fs>/<path>`` — Get Blob Properties (``get_directory_properties``, ``exists``): a
  directory carries ``x-ms-meta-hdi_isfolder: true``;
- ``GET /<fs>/<path>`` with ``x-ms-range`` — Get Blob (``download_file``), 206 with
  ``Content-Range``, 416 on an empty file as the service does.

Anything else answers 501, so an unexpected call fails the test instead of being guessed.
Errors carry ``x-ms-error-code`` and the service's body (JSON on dfs, XML on blob).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from adls_fake import DEFAULT_PAGE_SIZE, AdlsStore, Entry, rfc1123
from azure.core.exceptions import ResourceNotFoundError

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class AdlsHttpStub:
    """Serve ``store`` for ``account`` on 127.0.0.1 until :meth:`close`."""

    def __init__(self, store: AdlsStore, account: str, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.store = store
        self.account = account
        self.page_size = page_size
        self.requests: Counter[str] = Counter()  # "METHOD kind", for request-count assertions
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{self.account}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    owner: AdlsHttpStub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed ACKs

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        account, _, rest = unquote(url.path).lstrip("/").partition("/")
        container, _, path = rest.partition("/")
        if account != self.owner.account or not container:
            return self._reply(501, {}, b"")
        try:
            if self.command == "GET" and query.get("resource") == "filesystem" and not path:
                self.owner.requests["GET list-paths"] += 1
                return self._list_paths(container, query)
            if self.command == "GET" and query.get("restype") == "container" and not path:
                self.owner.requests["GET container-properties"] += 1
                if container not in self.store.containers:
                    msg = "The specified container does not exist."
                    return self._error(404, "ContainerNotFound", msg, container)
                return self._reply(200, {"ETag": '"0x1"'}, b"")
            if self.command == "HEAD" and path and not query:
                self.owner.requests["HEAD blob-properties"] += 1
                return self._reply(200, self._blob_headers(self.store.path(container, path)), b"")
            if self.command == "GET" and path and not query:
                self.owner.requests["GET blob"] += 1
                return self._get_blob(self.store.path(container, path))
        except ResourceNotFoundError as error:
            return self._error(404, error.error_code, str(error.message).split("\n")[0], container)
        except NotImplementedError as error:
            return self._reply(501, {}, str(error).encode())
        return self._reply(501, {}, f"{self.command} {self.path} is not modelled".encode())

    @property
    def store(self) -> AdlsStore:
        return self.owner.store

    def _list_paths(self, container: str, query: dict[str, str]) -> None:
        recursive = query.get("recursive", "true").lower() == "true"
        listed = self.store.list_paths(container, query.get("directory", ""), recursive)
        page_size = min(int(query.get("maxResults") or 5000), self.owner.page_size)
        start = int(query.get("continuation") or 0)
        headers = {"Content-Type": "application/json;charset=utf-8"}
        if start + page_size < len(listed):
            headers["x-ms-continuation"] = str(start + page_size)
        body = json.dumps({"paths": listed[start : start + page_size]}).encode()
        self._reply(200, headers, body)

    @staticmethod
    def _blob_headers(entry: Entry) -> dict[str, str]:
        headers = {
            "Last-Modified": rfc1123(entry.last_modified),
            "ETag": f'"{entry.etag}"',
            "x-ms-creation-time": rfc1123(entry.last_modified),
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(entry.data)),
        }
        if entry.is_directory:
            headers["x-ms-meta-hdi_isfolder"] = "true"
        return headers

    def _get_blob(self, entry: Entry) -> None:
        if entry.is_directory:
            return self._reply(501, {}, b"downloading a directory is not modelled")
        headers = self._blob_headers(entry)
        size = len(entry.data)
        wanted = _RANGE.fullmatch(self.headers.get("x-ms-range") or "")
        if wanted is None:
            return self._reply(200, headers, entry.data)
        first = int(wanted.group(1))
        last = min(int(wanted.group(2)) if wanted.group(2) else size - 1, size - 1)
        if first >= size:
            return self._error(416, "InvalidRange", "The range specified is invalid.", "")
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        body = entry.data[first : last + 1]
        headers["Content-Length"] = str(len(body))
        self._reply(206, headers, body)

    def _error(self, status: int, code: str, message: str, container: str) -> None:
        headers = {"x-ms-error-code": code}
        if self.command == "HEAD":
            body = b""
        elif "resource=filesystem" in self.path:
            headers["Content-Type"] = "application/json;charset=utf-8"
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
        else:
            headers["Content-Type"] = "application/xml"
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            ).encode()
        self._reply(status, headers, body)

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = {"x-ms-version": "2026-10-06", "x-ms-request-id": "stub", **headers}
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
