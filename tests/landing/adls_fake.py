"""An in-memory stand-in for ADLS Gen2, for the landing-zone tests.

Why a fake: no ADLS Gen2 emulator exists. Azurite implements the Blob and Queue APIs but not the
Data Lake (``dfs``) endpoint whose List Paths call ``FileSystemClient.get_paths`` makes, and a real
storage account cannot be reached from here. So the storage is faked, in two ways over one store:

- :class:`FakeDataLakeServiceClient` / :class:`FakeFileSystemClient`: a fake of the SDK client
  that implements ONLY the calls ``resources/landing.py`` makes (``get_file_system_client``,
  ``exists``, ``get_paths``, ``get_directory_client(...).get_directory_properties``,
  ``get_file_client(...).exists`` and ``.download_file().readall``). It returns the SDK's own
  types, built by the SDK's own code: ``get_paths`` deserialises the JSON entry the service would
  send with the SDK's generated model and ``PathProperties._from_generated`` (so ``last_modified``
  comes back naive, as from the real client), ``get_paths`` is a real ``ItemPaged`` that raises
  lazily, and missing paths raise the SDK's ``ResourceNotFoundError``;
- ``adls_http_stub.AdlsHttpStub``: the same store behind a small HTTP server answering the REST
  calls the real ``DataLakeServiceClient`` makes, so the unmodified SDK runs too.

What the store models (ADLS Gen2 with the hierarchical namespace, as Synapse Link requires):
directories are real entries (a file's parent folders exist once it is written), ``name`` in a
listing is the full path from the container root, directories list with ``contentLength`` 0,
``Last-Modified`` has one-second resolution. Listings come back in reverse name order on purpose,
so no caller can rely on an order the service does not promise. Behaviour the code under test
should never need (listing a file path, downloading a directory) raises ``NotImplementedError``
instead of guessing. dagster-azure ships ``FakeADLS2Resource``, but its file-system fake has no
directories and no ``get_paths``, so it cannot stand in for a listing.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.storage.filedatalake import DirectoryProperties, PathProperties
from azure.storage.filedatalake._generated.models import Path as GeneratedPath

# Windows FILETIME (100 ns ticks since 1601) of the Unix epoch: the format of creationTime.
_FILETIME_EPOCH = 116_444_736_000_000_000
DEFAULT_PAGE_SIZE = 3  # small, so every multi-entry listing is paged (the service pages at 5000)


@dataclass
class Entry:
    """One path in a container."""

    is_directory: bool
    last_modified: datetime  # UTC, whole seconds
    etag: str
    data: bytes = b""


def rfc1123(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def filetime(moment: datetime) -> str:
    return str(_FILETIME_EPOCH + int(moment.timestamp()) * 10_000_000)


def not_found(message: str, code: str) -> ResourceNotFoundError:
    error = ResourceNotFoundError(message=f"{message}\nErrorCode:{code}")
    error.error_code = code  # what the SDK sets from the x-ms-error-code header
    return error


class AdlsStore:
    """Containers of one storage account: ``{container: {path: Entry}}``."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Entry]] = {}
        self._etags = itertools.count(1)

    def create_container(self, name: str) -> None:
        self.containers.setdefault(name, {})

    def put_directory(self, container: str, path: str, last_modified: datetime) -> None:
        entries = self.containers[container]
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in entries:
                entries[folder] = Entry(True, _whole_seconds(last_modified), self._etag())
            elif not entries[folder].is_directory:
                raise ValueError(f"{container}/{folder} is a file")

    def put_file(self, container: str, path: str, data: bytes, last_modified: datetime) -> None:
        path = path.strip("/")
        if "/" in path:
            self.put_directory(container, path.rsplit("/", 1)[0], last_modified)
        self.containers[container][path] = Entry(
            False, _whole_seconds(last_modified), self._etag(), data
        )

    def put_tree(self, local_root: Path, container: str, folder: str = "") -> None:
        """Copy a local folder into ``container/folder`` (file times kept, to the second)."""
        self.create_container(container)
        stamp = datetime(2024, 1, 1, tzinfo=UTC)
        if folder:
            self.put_directory(container, folder, stamp)
        for path in sorted(local_root.rglob("*")):
            target = "/".join(p for p in (folder, path.relative_to(local_root).as_posix()) if p)
            if path.is_dir():
                self.put_directory(container, target, stamp)
            else:
                modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
                self.put_file(container, target, path.read_bytes(), modified)

    # -- what both fakes answer ---------------------------------------------------------------

    def entries(self, container: str) -> dict[str, Entry]:
        if container not in self.containers:
            raise not_found("The specified filesystem does not exist.", "FilesystemNotFound")
        return self.containers[container]

    def list_paths(self, container: str, directory: str, recursive: bool) -> list[dict[str, str]]:
        """List Paths as the service answers it: JSON entries, names from the container root."""
        entries = self.entries(container)
        directory = directory.strip("/")
        if directory and directory not in entries:
            raise not_found("The specified path does not exist.", "PathNotFound")
        if directory and not entries[directory].is_directory:
            raise NotImplementedError(f"listing a file ({directory}) is not modelled")
        prefix = f"{directory}/" if directory else ""
        names = [
            name
            for name in entries
            if name.startswith(prefix) and (recursive or "/" not in name[len(prefix) :])
        ]
        return [self.listing_json(name, entries[name]) for name in sorted(names, reverse=True)]

    @staticmethod
    def listing_json(name: str, entry: Entry) -> dict[str, str]:
        item = {
            "name": name,
            "lastModified": rfc1123(entry.last_modified),
            "etag": entry.etag,
            "contentLength": str(len(entry.data)),
            "owner": "$superuser",
            "group": "$superuser",
            "permissions": "rwxr-x---" if entry.is_directory else "rw-r-----",
            "creationTime": filetime(entry.last_modified),
        }
        if entry.is_directory:
            item["isDirectory"] = "true"  # the service omits the key for files
        return item

    def path(self, container: str, path: str) -> Entry:
        entries = self.containers.get(container)
        if entries is None:
            raise not_found("The specified container does not exist.", "ContainerNotFound")
        entry = entries.get(path.strip("/"))
        if entry is None:
            raise not_found("The specified blob does not exist.", "BlobNotFound")
        return entry

    def _etag(self) -> str:
        return f"0x8DC{next(self._etags):013X}"


def _whole_seconds(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times in the store must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


# -- the SDK client fake ----------------------------------------------------------------------


class FakeDataLakeServiceClient:
    """``DataLakeServiceClient``: only ``get_file_system_client``."""

    def __init__(self, store: AdlsStore, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.store = store
        self.page_size = page_size
        self.calls: Counter[str] = Counter()  # SDK calls made, for request-count assertions

    def get_file_system_client(self, file_system: str) -> FakeFileSystemClient:
        # Like the SDK: no request, so a client for a missing container is returned too.
        return FakeFileSystemClient(self, file_system)


class FakeFileSystemClient:
    """``FileSystemClient`` over one container of an :class:`AdlsStore`."""

    def __init__(self, service: FakeDataLakeServiceClient, file_system_name: str) -> None:
        self._service = service
        self._store = service.store
        self.file_system_name = file_system_name

    def exists(self) -> bool:
        self._service.calls["FileSystemClient.exists"] += 1
        return self.file_system_name in self._store.containers

    def get_paths(
        self,
        path: str | None = None,
        recursive: bool | None = True,
        max_results: int | None = None,
        **kwargs: Any,
    ) -> ItemPaged[PathProperties]:
        if kwargs:
            raise NotImplementedError(f"get_paths options not modelled: {sorted(kwargs)}")
        self._service.calls["FileSystemClient.get_paths"] += 1
        page_size = min(max_results or 5000, self._service.page_size)

        def get_next(token: str | None) -> tuple[int, list[dict[str, str]]]:
            # One service call per page; errors surface on iteration, as with the SDK.
            listed = self._store.list_paths(self.file_system_name, path or "", bool(recursive))
            return int(token or 0), listed

        def extract_data(page: tuple[int, list[dict[str, str]]]):
            start, listed = page
            items = listed[start : start + page_size]
            following = start + page_size
            return (
                str(following) if following < len(listed) else None,
                [PathProperties._from_generated(GeneratedPath.deserialize(i)) for i in items],
            )

        return ItemPaged(get_next, extract_data)

    def get_directory_client(self, directory: str) -> FakeDirectoryClient:
        return FakeDirectoryClient(self, directory)

    def get_file_client(self, file_path: str) -> FakeFileClient:
        return FakeFileClient(self, file_path)


class FakeDirectoryClient:
    def __init__(self, file_system: FakeFileSystemClient, path: str) -> None:
        self._fs = file_system
        self.path_name = path

    def get_directory_properties(self) -> DirectoryProperties:
        self._fs._service.calls["DataLakeDirectoryClient.get_directory_properties"] += 1
        entry = self._fs._store.path(self._fs.file_system_name, self.path_name)
        # The service answers for a file too; only directories carry hdi_isfolder.
        metadata = {"hdi_isfolder": "true"} if entry.is_directory else {}
        headers = {
            "Last-Modified": entry.last_modified,
            "ETag": f'"{entry.etag}"',
            "x-ms-creation-time": entry.last_modified,
        }
        return DirectoryProperties(metadata=metadata, **headers)


class FakeFileClient:
    def __init__(self, file_system: FakeFileSystemClient, path: str) -> None:
        self._fs = file_system
        self.path_name = path

    def exists(self) -> bool:
        """True for a directory as well: the SDK asks the Blob endpoint, which answers for both."""
        self._fs._service.calls["DataLakeFileClient.exists"] += 1
        try:
            self._fs._store.path(self._fs.file_system_name, self.path_name)
        except ResourceNotFoundError:
            return False
        return True

    def download_file(self) -> FakeDownloader:
        self._fs._service.calls["DataLakeFileClient.download_file"] += 1
        entry = self._fs._store.path(self._fs.file_system_name, self.path_name)
        if entry.is_directory:
            raise NotImplementedError(f"downloading a directory ({self.path_name}) is not modelled")
        return FakeDownloader(entry.data)


class FakeDownloader:
    """The part of ``StorageStreamDownloader`` the code uses."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readall(self) -> bytes:
        return self._data
