"""The landing zone: where source systems drop files. One resource, two places: the local folder
under C360_HOME (default) or ADLS Gen2 containers through dagster-azure's ADLS2Resource."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_azure.adls2 import ADLS2Resource

from customer360.synapse_link import LandingFileSystem, LocalFileSystem


@dataclass(frozen=True)
class LandingFile:
    path: str  # relative to its landing area, '/'-separated
    size: int
    modified: datetime  # UTC

    @property
    def drop_day(self) -> str:
        return self.modified.astimezone(UTC).date().isoformat()


class LandingZoneResource(dg.ConfigurableResource):
    """Areas: `dataverse` (Synapse Link layout), `finance`, `kkbox` … (see DESIGN.md)."""

    def filesystem(self, area: str) -> LandingFileSystem:
        raise NotImplementedError

    def list_files(self, area: str, suffix: str = "") -> list[LandingFile]:
        raise NotImplementedError

    def read_bytes(self, area: str, path: str) -> bytes:
        return self.filesystem(area).read_bytes(path)


class LocalLandingZone(LandingZoneResource):
    root: str

    def filesystem(self, area: str) -> LandingFileSystem:
        folder = Path(self.root) / area
        folder.mkdir(parents=True, exist_ok=True)
        return LocalFileSystem(folder)

    def list_files(self, area: str, suffix: str = "") -> list[LandingFile]:
        folder = Path(self.root) / area
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.rglob(f"*{suffix}")):
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                out.append(LandingFile(path.relative_to(folder).as_posix(), stat.st_size, modified))
        return out


class AdlsFileSystem:
    """LandingFileSystem over one ADLS Gen2 container (file system) and folder prefix."""

    def __init__(self, client, prefix: str) -> None:
        self._client = client  # azure.storage.filedatalake.FileSystemClient
        self._prefix = prefix.strip("/")

    def _full(self, path: str) -> str:
        return "/".join(p for p in (self._prefix, path.strip("/")) if p)

    def list_dir(self, path: str) -> list[str]:
        base = self._full(path)
        return sorted(
            p.name.rsplit("/", 1)[-1] for p in self._client.get_paths(base, recursive=False)
        )

    def is_dir(self, path: str) -> bool:
        props = self._client.get_directory_client(self._full(path)).get_directory_properties()
        return props.get("metadata", {}).get("hdi_isfolder") == "true" or props.get(
            "is_directory", False
        )

    def exists(self, path: str) -> bool:
        return self._client.get_file_client(self._full(path)).exists()

    def read_bytes(self, path: str) -> bytes:
        return self._client.get_file_client(self._full(path)).download_file().readall()


class AdlsLandingZone(LandingZoneResource):
    adls2: ADLS2Resource
    file_system: str  # the container
    prefix: str = ""

    def _fs_client(self):
        return self.adls2.adls2_client.get_file_system_client(self.file_system)

    def filesystem(self, area: str) -> LandingFileSystem:
        return AdlsFileSystem(self._fs_client(), "/".join(p for p in (self.prefix, area) if p))

    def list_files(self, area: str, suffix: str = "") -> list[LandingFile]:
        base = "/".join(p for p in (self.prefix, area) if p)
        out = []
        for p in self._fs_client().get_paths(base, recursive=True):
            if p.is_directory or not p.name.endswith(suffix):
                continue
            rel = p.name[len(base) :].lstrip("/")
            out.append(LandingFile(rel, p.content_length, p.last_modified.astimezone(UTC)))
        return sorted(out, key=lambda f: f.path)
