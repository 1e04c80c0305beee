"""The landing zone in ADLS Gen2 through dagster-azure's ADLS2Resource. A module of its own so
that local mode never imports dagster-azure and the Azure SDK (`resources.build_resources`
imports it for `C360_ENV=azure` only)."""

from __future__ import annotations

from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.filedatalake import FileSystemClient
from dagster_azure.adls2 import ADLS2Resource
from pydantic import Field

from customer360.synapse_link import LandingFileSystem
from customer360.synapse_link.filesystem import path_parts
from resources.landing import LandingFile, LandingZoneResource


class AdlsFileSystem:
    """:class:`LandingFileSystem` over one folder of an ADLS Gen2 container (file system).

    ``client`` is an ``azure.storage.filedatalake.FileSystemClient`` of an account with the
    hierarchical namespace (ADLS Gen2; Synapse Link requires it). ``folder`` is the folder inside
    the container that plays the export root (``""``: the container root). Paths given to the
    methods are relative to that folder, as with :class:`LocalFileSystem`.

    What a listing shows is remembered for the life of the object (one sensor tick or one asset
    run): whether each child is a folder, and that nothing else is in a listed folder. So walking
    an export costs one List Paths per folder rather than a request per child, and the checks
    made after a listing agree with it (a ``model.json`` missing from the listing stays missing:
    its folder is still being written and is read next time).
    """

    def __init__(self, client: FileSystemClient, folder: str = "") -> None:
        self._client = client
        self._folder = _clean_folder(folder)
        self._listed_is_dir: dict[str, bool] = {}  # full path → is a directory (from listings)
        self._listed_folders: set[str] = set()  # folders whose every child is in _listed_is_dir

    def __repr__(self) -> str:
        return f"AdlsFileSystem({_container(self._client)!r}, {self._folder!r})"

    def _full(self, path: str) -> str:
        parts = path_parts(path)
        return "/".join([self._folder, *parts] if self._folder else parts)

    def _where(self, full: str) -> str:
        return f"{_container(self._client)}/{full}"

    def list_dir(self, path: str) -> list[str]:
        full = self._full(path)
        try:
            # `name` is the full path from the container root, whatever `path` was.
            listed = list(self._client.get_paths(path=full or None, recursive=False))
        except ResourceNotFoundError:
            raise FileNotFoundError(f"no such folder in ADLS: {self._where(full)}") from None
        names = []
        for entry in listed:
            name = entry.name.strip("/")
            self._listed_is_dir[name] = bool(entry.is_directory)
            names.append(name.rsplit("/", 1)[-1])
        self._listed_folders.add(full)
        return sorted(names)

    def _absent_from_listing(self, full: str) -> bool:
        """True when ``full``'s folder was listed and ``full`` was not in it."""
        parent = full.rsplit("/", 1)[0] if "/" in full else ""
        return parent in self._listed_folders and full not in self._listed_is_dir

    def is_dir(self, path: str) -> bool:
        full = self._full(path)
        if not full:
            return _require_container(self._client)
        if full in self._listed_is_dir:
            return self._listed_is_dir[full]
        if self._absent_from_listing(full):
            return False
        try:
            props = self._client.get_directory_client(full).get_directory_properties()
        except ResourceNotFoundError:
            if full == self._folder:  # the export root: a missing container is an error
                _require_container(self._client)
            return False
        # The service answers for files too; only directories carry hdi_isfolder=true.
        return _has_folder_marker(props.metadata)

    def exists(self, path: str) -> bool:
        full = self._full(path)
        if not full:
            return _require_container(self._client)
        if full in self._listed_is_dir:
            return True
        if self._absent_from_listing(full):
            return False
        return bool(self._client.get_file_client(full).exists())  # True for directories too

    def read_bytes(self, path: str) -> bytes:
        full = self._full(path)
        try:
            return self._client.get_file_client(full).download_file().readall()
        except ResourceNotFoundError:
            raise FileNotFoundError(f"no such file in ADLS: {self._where(full)}") from None


class AdlsLandingZone(LandingZoneResource):
    """The landing zone in ADLS Gen2, read through dagster-azure's ``ADLS2Resource``.

    By default area ``<area>`` is the folder ``<prefix>/<area>`` of container ``file_system``.
    ``areas`` places an area elsewhere: ``{"dataverse": "dataverse-myenv-myorg"}`` reads the
    container Synapse Link writes to (export at its root); ``"finance/drops"`` a folder inside
    another container.
    """

    adls2: ADLS2Resource
    file_system: str = Field(description="Container holding the areas not named in `areas`.")
    prefix: str = Field(default="", description="Folder in `file_system` holding the areas.")
    areas: dict[str, str] = Field(
        default_factory=dict,
        description="Area → 'container' or 'container/folder', overriding the default place.",
    )

    def location(self, area: str) -> tuple[str, str]:
        """(container, folder inside it) of a landing area."""
        if not area or "/" in area or area in (".", ".."):
            raise ValueError(f"landing area must be a plain folder name, got {area!r}")
        if area in self.areas:
            container, _, folder = self.areas[area].strip("/").partition("/")
            if not container:
                raise ValueError(f"landing area {area!r} is mapped to no container")
            return container, _clean_folder(folder)
        return self.file_system, _clean_folder(f"{self.prefix}/{area}")

    def _fs_client(self, container: str) -> FileSystemClient:
        return self.adls2.adls2_client.get_file_system_client(container)

    def filesystem(self, area: str) -> LandingFileSystem:
        container, folder = self.location(area)
        return AdlsFileSystem(self._fs_client(container), folder)

    def list_files(self, area: str, suffix: str = "") -> list[LandingFile]:
        """Files under the area, recursively, like :meth:`LocalLandingZone.list_files`: hidden
        files (name starting with '.') skipped, sorted by path; nothing dropped yet → []."""
        container, folder = self.location(area)
        client = self._fs_client(container)
        try:
            listed = list(client.get_paths(path=folder or None, recursive=True))
        except ResourceNotFoundError:
            _require_container(client)
            return []  # the area's folder does not exist yet: nothing dropped
        out = []
        for entry in listed:
            if entry.is_directory:
                continue
            name = entry.name.strip("/")
            relative = name[len(folder) + 1 :] if folder else name
            file_name = relative.rsplit("/", 1)[-1]
            if file_name.startswith(".") or not file_name.endswith(suffix):
                continue
            etag = str(entry.etag).strip('"') if getattr(entry, "etag", None) else None
            modified = _utc(entry.last_modified)
            out.append(LandingFile(relative, int(entry.content_length), modified, etag))
        return sorted(out, key=lambda f: f.path.split("/"))  # the order of LocalLandingZone


def _clean_folder(folder: str) -> str:
    parts = [part for part in folder.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError(f"folder must not contain '.' or '..': {folder!r}")
    return "/".join(parts)


def _container(client: FileSystemClient) -> str:
    return str(getattr(client, "file_system_name", "?"))


def _require_container(client: FileSystemClient) -> bool:
    """True when the container exists; a missing one is a configuration error, so it raises."""
    if not client.exists():
        raise FileNotFoundError(
            f"ADLS container {_container(client)!r} does not exist in the storage account "
            "(check the landing container configuration)"
        )
    return True


def _has_folder_marker(metadata: dict[str, str] | None) -> bool:
    # The key comes back as hdi_isfolder; some clients have seen Hdi_isfolder.
    return any(k.lower() == "hdi_isfolder" and v == "true" for k, v in (metadata or {}).items())


def _utc(moment: datetime) -> datetime:
    """The SDK parses `get_paths`' Last-Modified (RFC 1123, GMT) into a naive datetime; it is UTC.
    (`astimezone` on a naive datetime would take it as the machine's local time.)"""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
