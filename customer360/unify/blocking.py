"""Which fields a rule set compares and carries, and its blocking passes (plain Python, shared
by every engine)."""

from __future__ import annotations

from collections.abc import Sequence

from customer360.unify.config import MatchRule
from customer360.unify.keys import MATCH_KEYS

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
