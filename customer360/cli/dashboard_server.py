"""A small read-only HTTP server on 127.0.0.1 for what people open from the Dagster UI: the churn
dashboard and the plots the assets write under the lake.

`customer360 dev` starts it beside the UI and puts its address in C360_DASHBOARD_URL, so the
assets' metadata links (`dashboard_url`, "open full size" under a plot) are http:// links a
browser opens from the UI — a `file://` link from a web page is blocked.

Routes: `/` (index: the latest dashboard and every plot, newest first), `/dashboard` (redirect
to the newest dashboard), `/files/<path under the lake>` (only below SERVED_FOLDERS).
"""

from __future__ import annotations

import contextlib
import html
import mimetypes
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: Where `customer360 dev` reads a fixed port; unset or 0 picks a free one.
PORT_ENV = "C360_DASHBOARD_PORT"
#: The environment variable the assets read to build http:// links (resources/ui_metadata.py).
URL_ENV = "C360_DASHBOARD_URL"
#: Folders under the lake root the server shows; nothing else under the lake is reachable.
SERVED_FOLDERS = ("churn/dashboard", "ops/plots")


@dataclass(frozen=True)
class ServedFiles:
    url: str
    lake_root: Path


def _newest(folder: Path, pattern: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)


def _resolve(lake_root: Path, rel: str) -> Path | None:
    """The file for `/files/<rel>`, or None when it is outside the served folders or missing."""
    target = (lake_root / rel).resolve()
    for folder in SERVED_FOLDERS:
        base = (lake_root / folder).resolve()
        if base in target.parents and target.is_file():
            return target
    return None


def index_html(lake_root: Path) -> str:
    """The landing page: the newest dashboard first, then each plot with a thumbnail."""
    dashboards = _newest(lake_root / "churn" / "dashboard", "*.html")
    plots = _newest(lake_root / "ops" / "plots", "*.png")
    items = [
        f'<li><a href="/files/{html.escape(p.relative_to(lake_root).as_posix())}">'
        f"{html.escape(p.name)}</a></li>"
        for p in dashboards
    ]
    figures = [
        f'<figure><a href="/files/{html.escape(p.relative_to(lake_root).as_posix())}">'
        f'<img src="/files/{html.escape(p.relative_to(lake_root).as_posix())}" width="480" '
        f'alt="{html.escape(p.stem)}"></a><figcaption>{html.escape(p.name)}</figcaption></figure>'
        for p in plots
    ]
    empty = "<p>none yet: materialise the assets in the Dagster UI.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>customer360 files</title>"
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em}"
        "</style></head><body><h1>customer360</h1>"
        f"<h2>Churn dashboard</h2><ul>{''.join(items)}</ul>{'' if items else empty}"
        f"<h2>Plots</h2>{''.join(figures) or empty}</body></html>"
    )


def _handler(lake_root: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, index_html(lake_root).encode(), "text/html")
            elif path == "/dashboard":
                newest = _newest(lake_root / "churn" / "dashboard", "*.html")
                if not newest:
                    self._send(HTTPStatus.NOT_FOUND, b"no churn dashboard yet", "text/plain")
                    return
                rel = newest[0].relative_to(lake_root).as_posix()
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", f"/files/{rel}")
                self.end_headers()
            elif path.startswith("/files/") and (file := _resolve(lake_root, path[7:])):
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                self._send(HTTPStatus.OK, file.read_bytes(), kind)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

        def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8" if "text" in kind else kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # quiet beside the Dagster logs
            pass

    return Handler


@contextlib.contextmanager
def serve_lake_files(lake_root: str | Path, port: int | None = None) -> Iterator[ServedFiles]:
    """Serve the dashboard and plots on 127.0.0.1 for the block (port from C360_DASHBOARD_PORT,
    else a free one)."""
    if port is None:
        raw = os.environ.get(PORT_ENV, "0").strip() or "0"
        if not raw.isdigit():
            raise ValueError(f"{PORT_ENV}={raw!r}: expected a port number")
        port = int(raw)
    root = Path(lake_root).resolve()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(root))
    thread = threading.Thread(target=server.serve_forever, name="c360-files", daemon=True)
    thread.start()
    try:
        yield ServedFiles(f"http://127.0.0.1:{server.server_address[1]}", root)
    finally:
        server.shutdown()
        server.server_close()
