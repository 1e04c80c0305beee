"""Source rows in bounded chunks, and the run-wide duplicate-key registry.

The engine accepts an iterable of pyarrow RecordBatches (what delta-rs streams), a pyarrow Table,
or dict rows, and sees them only as lists of at most `chunk_rows` dicts, so a million-row publish
never holds the table. Keys already seen in the run are remembered as 64-bit hashes in a sorted
numpy array (8 bytes per key) rather than a Python set of strings (~100 bytes per key).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

SourceRows = Iterable[pa.RecordBatch] | Iterable[Mapping[str, Any]] | pa.Table


class SourceError(ValueError):
    """The source does not have what the spec reads (names the missing columns)."""


def iter_chunks(
    source: SourceRows,
    chunk_rows: int,
    columns: Sequence[str] | None = None,
    first_rows: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield lists of at most `chunk_rows` dict rows; RecordBatches are narrowed to `columns`.

    With `first_rows`, the first chunk has that many rows and each next one twice as many, up to
    `chunk_rows`: the first request can leave after one batch's worth of rows is prepared
    instead of a whole chunk's, so the server starts working sooner."""
    if isinstance(source, pa.Table):
        source = source.to_batches(max_chunksize=chunk_rows)
    size = min(first_rows or chunk_rows, chunk_rows)
    pending: list[dict[str, Any]] = []
    checked = False
    for item in source:
        if isinstance(item, pa.RecordBatch):
            if columns is not None:
                missing = [c for c in columns if c not in item.schema.names]
                if missing:
                    raise SourceError(
                        f"source batches lack column(s) {missing} named in the publish spec "
                        f"(source has {item.schema.names})"
                    )
                item = item.select(list(columns))
            for start in range(0, item.num_rows, chunk_rows):
                pending.extend(item.slice(start, chunk_rows).to_pylist())
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
                    size = min(size * 2, chunk_rows)
            continue
        if not isinstance(item, Mapping):
            raise SourceError(
                f"source items must be pyarrow RecordBatches or mappings, got {type(item).__name__}"
            )
        if not checked and columns is not None:
            missing = [c for c in columns if c not in item]
            if missing:
                raise SourceError(f"source rows lack column(s) {missing} named in the publish spec")
            checked = True
        pending.append(dict(item))
        if len(pending) >= size:
            yield pending
            pending = []
            size = min(size * 2, chunk_rows)
    if pending:
        yield pending


def key_hash(key_text: str) -> int:
    """A signed 64-bit hash of a key (collision odds ~3e-8 at a million keys): Python's own
    string hash (SipHash), stable for the life of the process, which is all a run's registry
    needs; it costs a fraction of a cryptographic digest per key."""
    return hash(key_text)


class KeyClaim(StrEnum):
    NEW = "new"  # first row with this key: it is published
    DUPLICATE = "duplicate"  # the same key again, character for character
    BLANKS = "blanks"  # equal to an earlier key once leading/trailing blanks are trimmed
    CASE = "case"  # equal to an earlier key ignoring letter case (one Dataverse record)


class KeyForms(NamedTuple):
    """One row's key three ways: as Dataverse compares it (case-folded), as sent (trimmed),
    and as the source wrote it. (A named tuple: one is made per source row, and a tuple is
    built in a fraction of a frozen dataclass's time.)"""

    match: str
    trimmed: str
    raw: str


class KeyRegistry:
    """Remembers which keys this run has already taken (first occurrence wins).

    Three sorted arrays of 64-bit hashes (24 bytes per key): the case-folded key decides
    whether a row is new; the trimmed and raw forms say why a later row is not."""

    def __init__(self) -> None:
        self._seen = [np.empty(0, dtype=np.int64) for _ in range(3)]

    def __len__(self) -> int:
        return int(self._seen[0].size)

    def claim(self, keys: Sequence[KeyForms]) -> list[KeyClaim]:
        """For each key: NEW (now claimed) or why it was seen before in the run (earlier in
        `keys` included)."""
        forms = [[k.match for k in keys], [k.trimmed for k in keys], [k.raw for k in keys]]
        hashes = [_hashes(texts) for texts in forms]
        before = [_member(seen, h) for seen, h in zip(self._seen, hashes, strict=True)]
        ordered = np.sort(hashes[0])
        if not before[0].any() and not (ordered[1:] == ordered[:-1]).any():
            # the usual chunk: every key new and distinct, so every row is NEW (and so are its
            # trimmed and raw forms, which the case-folded form is a function of)
            self._seen[0] = _merged(self._seen[0], ordered)
            for f in (1, 2):
                self._seen[f] = _merged(self._seen[f], np.sort(hashes[f]))
            return [KeyClaim.NEW] * len(keys)
        fresh: list[set[int]] = [set(), set(), set()]
        claims: list[KeyClaim] = []
        for i in range(len(keys)):
            h = [int(hashes[f][i]) for f in range(3)]
            seen = [bool(before[f][i]) or h[f] in fresh[f] for f in range(3)]
            if not seen[0]:
                claims.append(KeyClaim.NEW)
                for f in range(3):
                    fresh[f].add(h[f])
            elif seen[2]:
                claims.append(KeyClaim.DUPLICATE)
            elif seen[1]:
                claims.append(KeyClaim.BLANKS)
            else:
                claims.append(KeyClaim.CASE)
        for f in range(3):
            if fresh[f]:
                new = np.fromiter(fresh[f], dtype=np.int64, count=len(fresh[f]))
                self._seen[f] = np.union1d(self._seen[f], new)
        return claims


def _merged(seen: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Two sorted arrays as one: a stable sort (timsort for int64) merges the two runs in
    linear time, where `np.union1d` hashed and re-sorted every key seen so far."""
    return np.sort(np.concatenate((seen, new)), kind="stable")


def _hashes(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(key_hash, texts), dtype=np.int64, count=len(texts))


def _member(seen: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    if not seen.size:
        return np.zeros(len(hashes), dtype=bool)
    pos = np.minimum(np.searchsorted(seen, hashes), seen.size - 1)
    return seen[pos] == hashes
