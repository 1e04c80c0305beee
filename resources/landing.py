"""The landing zone: where source systems drop files. One resource, two places: the local folder
under C360_HOME (default) or ADLS Gen2 containers through dagster-azure's ADLS2Resource
(`resources.landing_adls`, imported only in azure mode: dagster-azure and the Azure SDK are
about a second of every run's start-up, and local runs never use them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from customer360.synapse_link import LandingFileSystem, LocalFileSystem


@dataclass(frozen=True)
class LandingFile:
    path: str  # relative to its landing area, '/'-separated
    size: int
    modified: datetime  # UTC
    # ADLS's ETag (changes on every write, even within the Last-Modified second); None locally.
    # Not part of equality: the same file has the same path, size and time in both places.
    etag: str | None = field(default=None, compare=False)

    @property
    def drop_day(self) -> str:
        return self.modified.astimezone(UTC).date().isoformat()

    @property
    def fingerprint(self) -> str:
        """What changes when the content does: size and modification time, plus the ETag on
        ADLS. A file still being written, or rewritten, gets a new fingerprint."""
        base = f"{self.path}:{self.size}:{self.modified.timestamp()}"
        return f"{base}:{self.etag}" if self.etag else base


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


def __getattr__(name: str) -> object:
    """`AdlsLandingZone` and `AdlsFileSystem` stay importable from here, loaded on first use."""
    if name in ("AdlsLandingZone", "AdlsFileSystem"):
        from resources import landing_adls

        return getattr(landing_adls, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
