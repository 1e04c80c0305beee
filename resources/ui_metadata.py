"""Metadata the Dagster UI can show as it is: a few rows of a table, a plot inline, a link a
browser opens.

The UI renders Markdown images with `data:` URIs (its Markdown sanitiser allows them for `src`),
so a plot travels inside the materialisation event; the PNG file stays where the asset wrote it.
`file://` links do not open from a web page, so files under the lake that people look at (the
churn dashboard, the plots) get an `http://127.0.0.1` link when `customer360 dev` serves them
(it sets C360_DASHBOARD_URL; see customer360/cli/dashboard_server.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import dagster as dg

#: Set by `customer360 dev` to the base URL of its file server (e.g. http://127.0.0.1:8765).
SERVER_ENV = "C360_DASHBOARD_URL"
#: Rows shown in a table's preview; 0 turns previews off (e.g. for data nobody may browse).
PREVIEW_ROWS_ENV = "C360_PREVIEW_ROWS"
DEFAULT_PREVIEW_ROWS = 5
_MAX_CELL = 80  # characters of a cell shown in a preview
_MAX_INLINE_BYTES = 150_000  # larger PNGs are shrunk before they go into the event log
_INLINE_WIDTH = 900  # pixels of a shrunk plot


def preview_rows() -> int:
    raw = os.environ.get(PREVIEW_ROWS_ENV, "").strip()
    if not raw:
        return DEFAULT_PREVIEW_ROWS
    try:
        return max(0, int(raw))
    except ValueError as exc:
        raise ValueError(f"{PREVIEW_ROWS_ENV}={raw!r}: expected a whole number of rows") from exc


def _cell(value: Any) -> str | int | float | bool | None:
    """A value the UI's table can show: scalars as they are, the rest as short text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def table_preview(
    uri: str, version: int, schema: dg.TableSchema, rows: int | None = None
) -> dg.TableMetadataValue | None:
    """The first rows of a local Delta table at `version`, or None (remote lake, previews off,
    or a table that cannot be read now — a preview never fails a write)."""
    rows = preview_rows() if rows is None else rows
    if rows <= 0 or ("://" in uri and not uri.startswith("file://")):
        return None  # a remote lake would need the storage credentials here; not worth it
    from deltalake import DeltaTable

    try:
        head = _first_rows(DeltaTable(uri, version=version).to_pyarrow_dataset(), rows)
    except Exception:  # the write succeeded; only the preview is lost
        return None
    records = [dg.TableRecord({k: _cell(v) for k, v in row.items()}) for row in head.to_pylist()]
    return dg.MetadataValue.table(records=records, schema=schema)


def _first_rows(dataset, rows: int):
    """dataset.head(rows), decoding only the first pages of the first file when that file holds
    them all: `head` decodes whole row groups (a table written as one file is one row group of
    up to a million rows): 0.1–0.3 s per table at 200,000 rows and growing with the table,
    against 0.01–0.07 s this way (docs/medallion.md "Benchmark")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = next(iter(dataset.get_fragments()), None)
    if first is None:
        return dataset.head(rows)
    with dataset.filesystem.open_input_file(first.path) as file:
        batch = next(pq.ParquetFile(file, pre_buffer=False).iter_batches(batch_size=rows), None)
    # Partition columns live outside the file; a short first file continues in the next one.
    if batch is None or batch.num_rows < rows or batch.schema.names != dataset.schema.names:
        return dataset.head(rows)
    try:
        return pa.Table.from_batches([batch]).cast(dataset.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return dataset.head(rows)


def served_url(path: str | Path, lake_root: str) -> str | None:
    """An http:// URL for a file under the lake when `customer360 dev` serves it, else None."""
    base = os.environ.get(SERVER_ENV, "").rstrip("/")
    if not base or "://" in lake_root:
        return None
    try:
        rel = Path(path).resolve().relative_to(Path(lake_root).resolve())
    except ValueError:
        return None
    return f"{base}/files/{rel.as_posix()}"


def _png_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) <= _MAX_INLINE_BYTES:
        return data
    from PIL import Image  # Pillow comes with matplotlib

    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((_INLINE_WIDTH, _INLINE_WIDTH * 4))
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def image_markdown(path: str | Path, title: str, lake_root: str) -> str:
    """Markdown with the PNG inline (data URI), a link to the full-size file when served, and
    the file's path."""
    path = Path(path)
    encoded = base64.b64encode(_png_bytes(path)).decode("ascii")
    parts = [f"![{title}](data:image/png;base64,{encoded})", ""]
    url = served_url(path, lake_root)
    if url:
        parts.append(f"[open full size]({url})  ")
    parts.append(f"file: `{path}`")
    return "\n".join(parts)


def image_metadata(path: str | Path, title: str, lake_root: str) -> dg.MarkdownMetadataValue:
    """A plot as Markdown metadata the UI shows as an image."""
    return dg.MetadataValue.md(image_markdown(path, title, lake_root))


def link_metadata(path: str | Path, lake_root: str) -> dg.MetadataValue:
    """An http:// link when the file is served, else the file's path (a `file://` URL would be
    a dead link in the browser)."""
    url = served_url(path, lake_root)
    return dg.MetadataValue.url(url) if url else dg.MetadataValue.path(str(path))


def plot_file(markdown: str) -> Path:
    """The PNG file behind plot metadata made by `image_markdown` (its `file:` line)."""
    return Path(re.search(r"^file: `(.+)`$", markdown, re.M).group(1))
