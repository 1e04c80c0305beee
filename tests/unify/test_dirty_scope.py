"""The dirty scope and the re-scored pairs of an incremental run, against their definitions.

A random block index (every blocking pass of the shipped rules, a few values per pass so blocks
hold several records, some records unblocked) changes: records deleted, re-blocked and added,
with max_block_size small enough that blocks cross it both ways. `dirty_scope` (hash lookups of
the changed records' blocks, sizes before derived from the changed rows) and
`pair_scoring.focused_pairs` (each dirty record joined with its blocks' members) must give what
the definitions give, written here as plain Python over the whole index: every record's blocks
unpivoted, every block counted before and after, every pair of a block with a dirty end. No
Spark: Arrow tables and DuckDB only.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from customer360.unify import load_config, pair_scoring
from customer360.unify.blocking import block_passes
from customer360.unify.incremental import dirty_scope, updated_index
from customer360.unify.schema import NODE_SEPARATOR

MAX = 3  # every rule's max_block_size here: blocks of 2–6 records cross it
VALUES = [f"v{i}" for i in range(36)]  # 120 records: about 3 per block


def _rules():
    config = load_config()
    return tuple(dataclasses.replace(r, max_block_size=MAX) for r in config.rules)


def _row(rng: random.Random, node: str, columns: list[tuple[str, int, int]]) -> dict:
    row = {"node": node, "source": "s", "source_key": node}
    for name, rank, number in columns:
        value = rng.choice([None, *VALUES])
        row[name] = (
            None if value is None else f"{rank}{NODE_SEPARATOR}{number}{NODE_SEPARATOR}{value}"
        )
    return row


def _index(rows: list[dict], names: list[str]) -> pa.Table:
    fields = [("node", pa.string()), ("source", pa.string()), ("source_key", pa.string())]
    schema = pa.schema(fields + [(n, pa.string()) for n in names])
    return pa.Table.from_pylist(rows, schema)


def _expected(before: list[dict], after: list[dict], changed: set[str], names: list[str]):
    """(dirty, partners, block sizes, crossing blocks, pairs) by their definitions."""

    def sizes(rows):
        return Counter((n, r[n]) for r in rows for n in names if r[n] is not None)

    size_before, size_after = sizes(before), sizes(after)
    touched = {(n, r[n]) for r in before + after if r["node"] in changed for n in names
               if r[n] is not None}  # fmt: skip
    crossing = {b for b in touched if (size_before[b] <= MAX) != (size_after[b] <= MAX)}
    members = defaultdict(set)
    for r in after:
        for n in names:
            if r[n] is not None:
                members[(n, r[n])].add(r["node"])
    dirty = {r["node"] for r in after if r["node"] in changed}
    dirty |= {node for b in crossing for node in members[b]}
    blocks = {(n, r[n]) for r in after if r["node"] in dirty for n in names if r[n] is not None}
    within = {b for b in blocks if size_after[b] <= MAX}
    partners = {node for b in within for node in members[b]} - dirty
    rank = {name: rank for name, rank, *_ in block_passes(_rules())}
    pairs = {
        (rank[b[0]], left, right)
        for b in within
        for left in members[b]
        for right in members[b]
        if left < right and (left in dirty or right in dirty)
    }
    return dirty, partners, {b[1]: size_after[b] for b in blocks}, len(crossing), pairs


@pytest.mark.parametrize("seed", [1, 2])
def test_dirty_scope_and_pairs_follow_their_definitions(seed):
    rng = random.Random(seed)
    columns = [(name, rank, number) for name, rank, number, _ in block_passes(_rules())]
    names = [c[0] for c in columns]
    before = [_row(rng, f"n{i:03d}", columns) for i in range(120)]
    deleted = {f"n{i:03d}" for i in rng.sample(range(120), 6)}
    updated = {f"n{i:03d}" for i in rng.sample(range(120), 10)} - deleted
    fresh = [_row(rng, node, columns) for node in sorted(updated)]
    fresh += [_row(rng, f"x{i:03d}", columns) for i in range(5)]  # new records
    changed = deleted | updated | {r["node"] for r in fresh}
    after = [r for r in before if r["node"] not in changed] + fresh
    changed_table = pa.table({"node": sorted(changed),
                              "deleted": [n in deleted for n in sorted(changed)]})  # fmt: skip

    previous = _index(before, names)
    current = updated_index(previous, changed_table, _index(fresh, names))
    scope = dirty_scope(previous, current, changed_table, dict.fromkeys(names, MAX))
    pairs = pair_scoring.focused_pairs(scope.members, scope.dirty, _rules())

    dirty, partners, sizes, crossing, expected_pairs = _expected(before, after, changed, names)
    assert crossing > 0  # the case the lookups handle apart is exercised
    assert set(scope.dirty["node"].to_pylist()) == dirty
    assert set(scope.partners["node"].to_pylist()) == partners
    got_sizes = scope.block_sizes.to_pydict()
    assert dict(zip(got_sizes["_block"], got_sizes["_size"], strict=True)) == sizes
    assert scope.crossing_blocks == crossing
    got = _triples(pairs)
    assert got == expected_pairs and pairs.num_rows == len(got)
    # the same pairs as the full-index definition the incremental run used before
    within = pa.concat_tables([scope.dirty, scope.partners]).select(["node"])
    blocked = pair_scoring.blocked_pairs(current, scope.block_sizes, scope.dirty, _rules(), within)
    assert _triples(blocked) == got


def _triples(pairs: pa.Table) -> set[tuple]:
    columns = [pairs[c].to_pylist() for c in ("rule_rank", "left_node", "right_node")]
    return set(zip(*columns, strict=True))
