"""Listing the Parquet files Spark wrote under a table root, local or on ADLS Gen2."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow.fs as pafs
import pyarrow.parquet as pq

#: Spark writes this for a null partition value.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class WrittenFile:
    relative_path: str  # relative to the table root, as the Delta log stores it
    size: int
    num_rows: int
    partition_values: dict[str, str | None]


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def normalize_path(uri: str | None) -> str | None:
    """One spelling for a file path: Spark says `file:/x`, delta-rs `/x` or `file:///x`."""
    if uri is None:
        return None
    uri = unquote(uri)
    if uri.startswith("file:"):
        uri = "/" + uri[len("file:") :].lstrip("/")
    return uri


def _filesystem(uri: str, storage_options: Mapping[str, str] | None):
    """A pyarrow file system for the table root (local, or ADLS Gen2 via abfss://)."""
    if uri.startswith(("abfss://", "abfs://")):
        opts = dict(storage_options or {})
        container_account = uri.split("://", 1)[1].split("/", 1)[0]
        container, host = container_account.split("@", 1)
        account = host.split(".", 1)[0]
        fs = pafs.AzureFileSystem(
            account_name=account,
            account_key=opts.get("account_key") or opts.get("AZURE_STORAGE_ACCOUNT_KEY"),
            client_id=opts.get("client_id") or opts.get("AZURE_CLIENT_ID"),
            client_secret=opts.get("client_secret") or opts.get("AZURE_CLIENT_SECRET"),
            tenant_id=opts.get("tenant_id") or opts.get("AZURE_TENANT_ID"),
        )
        path = container + "/" + [*uri.split("://", 1)[1].split("/", 1), ""][1]
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), normalize_path(uri)


def list_parquet(
    table_uri: str, staging: str, storage_options: Mapping[str, str] | None = None
) -> list[WrittenFile]:
    """The data files under `<table_uri>/<staging>` with sizes, row counts (from Parquet footers,
    so no data is read) and the partition values encoded in their `col=value` folders."""
    fs, root = _filesystem(table_uri, storage_options)
    selector = pafs.FileSelector(f"{root}/{staging}", recursive=True)
    out: list[WrittenFile] = []
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
            continue  # _SUCCESS, .crc and friends are not data
        rel = info.path[len(root) + 1 :]
        with fs.open_input_file(info.path) as handle:
            num_rows = pq.ParquetFile(handle).metadata.num_rows
        values: dict[str, str | None] = {}
        for segment in rel.split("/")[1:-1]:
            if "=" in segment:
                key, raw = segment.split("=", 1)
                value = unquote(raw)
                values[unquote(key)] = None if value == HIVE_NULL else value
        out.append(WrittenFile(rel, info.size, num_rows, values))
    return sorted(out, key=lambda f: f.relative_path)
