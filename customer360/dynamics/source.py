"""Source rows in bounded chunks, and the run-wide duplicate-key registry.

The engine accepts an iterable of pyarrow RecordBatches (what delta-rs streams), a pyarrow Table,
or dict rows, and sees them only as lists of at most `chunk_rows` dicts, so a million-row publish
never holds the table. Keys already seen in the run are remembered as 64-bit hashes in a sorted
numpy array (8 bytes per key) rather than a Python set of strings (~100 bytes per key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

SourceRows = Iterable[pa.RecordBatch] | Iterable[Mapping[str, Any]] | pa.Table


class SourceError(ValueError):
    """The source does not have what the spec reads (names the missing columns)."""


def iter_chunks(
    source: SourceRows, chunk_rows: int, columns: Sequence[str] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Yield lists of at most `chunk_rows` dict rows; RecordBatches are narrowed to `columns`."""
    if isinstance(source, pa.Table):
        source = source.to_batches(max_chunksize=chunk_rows)
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
                while len(pending) >= chunk_rows:
                    yield pending[:chunk_rows]
                    pending = pending[chunk_rows:]
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
        if len(pending) >= chunk_rows:
            yield pending
            pending = []
    if pending:
        yield pending


def key_hash(key_text: str) -> int:
    """A stable signed 64-bit hash of a key (collision odds ~3e-8 at a million keys)."""
    digest = hashlib.blake2b(key_text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class KeyRegistry:
    """Remembers which keys this run has already taken (first occurrence wins)."""

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._seen.size)

    def claim(self, key_texts: Sequence[str]) -> list[bool]:
        """For each key: True if it is new (and now claimed), False if seen before in the run
        or earlier in `key_texts`."""
        hashes = np.fromiter((key_hash(k) for k in key_texts), dtype=np.int64, count=len(key_texts))
        seen_before = np.zeros(len(key_texts), dtype=bool)
        if self._seen.size:
            pos = np.searchsorted(self._seen, hashes)
            pos_clipped = np.minimum(pos, self._seen.size - 1)
            seen_before = self._seen[pos_clipped] == hashes
        fresh: list[bool] = []
        batch_seen: set[int] = set()
        for h, before in zip(hashes.tolist(), seen_before.tolist(), strict=True):
            ok = not before and h not in batch_seen
            batch_seen.add(h)
            fresh.append(ok)
        if batch_seen:
            new = np.fromiter(batch_seen, dtype=np.int64, count=len(batch_seen))
            self._seen = np.union1d(self._seen, new)
        return fresh
