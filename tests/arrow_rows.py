"""Order-free comparison of Arrow tables in tests: equal rows, whatever the row order."""

from __future__ import annotations

import pyarrow as pa


def sorted_rows(table: pa.Table) -> list[tuple]:
    """Every row as a tuple of its values' reprs (columns by name), sorted."""
    names = sorted(table.column_names)
    return sorted(tuple(repr(r[c]) for c in names) for r in table.select(names).to_pylist())
