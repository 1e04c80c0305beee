"""Errors that name their cause: a full disk reported as "no space left on <path>".

A full disk surfaces under many disguises — `OSError: [Errno 28]`, delta-rs's
`No space left on device (os error 28)`, and SQLite's `disk I/O error` or `database or disk is
full` from the Dagster instance or the local Dataverse — none of which says which disk. When an
error looks like one of them, the state folders are measured and the full one is named.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Texts by which a full disk shows itself in messages of libraries that do not keep the errno.
_DISK_FULL_TEXTS = (
    "no space left on device",
    "os error 28",
    "database or disk is full",
    "disk i/o error",
    "errno 28",
)
#: Below this many free bytes a filesystem counts as full (SQLite fails before 0 is reached).
NEARLY_FULL_BYTES = 1024 * 1024


def mount_point(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() or not os.path.ismount(path):
        if path.parent == path:
            break
        path = path.parent
    return path


def full_filesystem(paths: Iterable[str | Path]) -> tuple[Path, Path, int] | None:
    """(path, its mount point, free bytes) of the first existing path whose filesystem has
    (almost) no space left, or None."""
    for raw in paths:
        path = Path(raw)
        probe = path
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError:
            continue
        if free < NEARLY_FULL_BYTES:
            return path, mount_point(probe), free
    return None


def looks_like_disk_full(text: str) -> bool:
    lowered = text.lower()
    return any(t in lowered for t in _DISK_FULL_TEXTS)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def disk_full_message(error: BaseException | str, paths: Iterable[str | Path]) -> str | None:
    """`no space left on <path> …` when `error` (an exception or a step's error text) is a full
    disk and one of `paths` is on a full filesystem; None otherwise (the original error stands)."""
    if isinstance(error, BaseException):
        chain = list(_chain(error))
        is_enospc = any(
            isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in chain
        )
        text = " ".join(str(e) for e in chain)
    else:
        is_enospc, text = False, error
    if not (is_enospc or looks_like_disk_full(text)):
        return None
    full = full_filesystem(paths)
    if full is None:
        return None
    path, mount, free = full
    return (
        f"no space left on {mount} (holding {path}; {free:,} bytes free): free some space or "
        f"point C360_HOME at a larger disk [{(text.strip().splitlines() or [''])[0][:200]}]"
    )
