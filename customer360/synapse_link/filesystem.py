"""The tiny filesystem protocol the reader needs, so the same code reads a local folder or ADLS.

Paths are '/'-separated and relative to the export root (the container); ``""`` is the root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class LandingFileSystem(Protocol):
    """Read-only access to a Synapse Link export root."""

    def list_dir(self, path: str) -> list[str]:
        """Names of the children of a folder (not paths), in any order."""
        ...

    def is_dir(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...

    def read_bytes(self, path: str) -> bytes: ...


def path_parts(path: str) -> list[str]:
    """The parts of a path relative to the export root; `.` and `..` are refused, so no
    filesystem can be led outside its root."""
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ValueError(f"path must stay inside the export root: {path!r}")
    return parts


def join(*parts: str) -> str:
    """Join relative path parts with '/', ignoring empty parts (the root)."""
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


class LocalFileSystem:
    """:class:`LandingFileSystem` over a local folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalFileSystem({str(self.root)!r})"

    def _resolve(self, path: str) -> Path:
        return self.root.joinpath(*path_parts(path))

    def list_dir(self, path: str) -> list[str]:
        return sorted(child.name for child in self._resolve(path).iterdir())

    def is_dir(self, path: str) -> bool:
        return self._resolve(path).is_dir()

    def exists(self, path: str) -> bool:
        return self._resolve(path).exists()

    def read_bytes(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()
