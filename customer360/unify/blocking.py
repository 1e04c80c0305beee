"""Which fields a rule set compares and carries, and its blocking passes (plain Python, shared
by every engine)."""

from __future__ import annotations

from collections.abc import Sequence

from customer360.unify.config import MatchRule
from customer360.unify.keys import MATCH_KEYS
from customer360.unify.schema import NODE_SEPARATOR

# Carried on both sides of every candidate so reviewers see what was compared.
DISPLAY_FIELDS = (*MATCH_KEYS, "dateofbirth", "gender")


def carried_fields(rules: Sequence[MatchRule]) -> tuple[str, ...]:
    names = [*DISPLAY_FIELDS, *(f for rule in rules for f in rule.fields)]
    return tuple(dict.fromkeys(names))


def block_passes(rules: Sequence[MatchRule]) -> list[tuple[str, int, int, tuple[str, ...]]]:
    """One entry per blocking pass of every rule: (block index column `b<rule>_<pass>`, rule
    rank, pass number, key expressions)."""
    return [
        (f"b{rank}_{number}", rank, number, tuple(keys))
        for rank, rule in enumerate(rules)
        for number, keys in enumerate(rule.blocking)
    ]


def block_key_sql(expressions: Sequence[str]) -> str:
    """A blocking pass's key as Spark SQL: all parts non-blank → the parts joined; any part
    null or blank → null (the record is not blocked by that pass)."""
    parts = [f"CAST(({e}) AS STRING)" for e in expressions]
    complete = " AND ".join(f"{p} IS NOT NULL AND {p} <> ''" for p in parts)
    return f"CASE WHEN {complete} THEN concat_ws('{NODE_SEPARATOR}', {', '.join(parts)}) END"


def block_id_sql(rank: int, number: int, expressions: Sequence[str]) -> str:
    """The block id of a pass (`<rule>␟<pass>␟<key>`, unique across passes) as Spark SQL."""
    return f"concat('{rank}{NODE_SEPARATOR}{number}{NODE_SEPARATOR}', {block_key_sql(expressions)})"
