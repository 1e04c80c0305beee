"""The pairs of an incremental run, paired, scored and chosen on the driver (DuckDB and
rapidfuzz over Arrow): the rows match.candidate_pairs (with `focus`), match.score_pairs,
match.best_pairs and review.candidates give, for the few thousand pairs a new export folder
disturbs, without a Spark job of a dozen stages.

Spark stays the definition and runs every full resolution. What Spark already computed is
reused rather than re-implemented: block ids come from the block index (match.block_index, so
blocking entries stay Spark SQL expressions) and the compared fields from match_keys. Only the
pairing, the similarity arithmetic (similarity.similarity_values) and the choice of the best
rule run here; tests/unify/test_rescore.py and tests/unify/test_unify_incremental.py check that
both ways give the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from customer360.lakehouse.arrow_sql import arrow_query, sql_name
from customer360.unify.blocking import block_passes, carried_fields
from customer360.unify.config import MatchRule
from customer360.unify.schema import PAIR_KEYS
from customer360.unify.similarity import round_half_up, similarity_values

_PAIR_KEYS_SQL = ", ".join(PAIR_KEYS)


def focused_candidates(
    index: pa.Table,
    keyed: pa.Table,
    block_sizes: pa.Table,
    focus: pa.Table | None,
    rules: Sequence[MatchRule],
) -> pa.Table:
    """The candidate pairs (match.candidate_pairs' rows) from Arrow tables.

    `index`: block index rows (node and the block columns) of at least `keyed`'s records;
    `keyed`: node, source, source_key and carried_fields(rules) of the records to pair (the
    focus records and their block partners); `block_sizes`: _block, _size over all records;
    `focus`: node, or None for every pair (a full run). A pair needs a shared block within its
    rule's max_block_size and, with `focus`, an end in it."""
    within = None if focus is None else keyed.select(["node"])
    pairs = blocked_pairs(index, block_sizes, focus, rules, within)
    return with_attributes(without_guarded_out(pairs, keyed, rules), keyed, rules)


def blocked_pairs(
    index: pa.Table,
    block_sizes: pa.Table,
    focus: pa.Table | None,
    rules: Sequence[MatchRule],
    within: pa.Table | None = None,
) -> pa.Table:
    """(rule_rank, left_node, right_node) of every pair sharing a block of `index` within its
    rule's max_block_size (`block_sizes`: _block, _size over all records); with `focus`
    (node) only pairs with an end in it, with `within` (node) only records in it. Ids only:
    nothing of the records is needed yet."""
    focused, in_within, tables = "TRUE", "", {}
    if focus is not None:
        focused = "l.node IN (SELECT node FROM focus) OR r.node IN (SELECT node FROM focus)"
        tables["focus"] = focus.select(["node"])
    if within is not None:
        in_within = " AND i.node IN (SELECT node FROM within)"
        tables["within"] = within.select(["node"])
    passes = " UNION ALL ".join(
        f"SELECT i.node, CAST({rank} AS INTEGER) AS rule_rank, {int(rules[rank].max_block_size)}"
        f" AS _max, i.{sql_name(name)} AS _block FROM idx i "
        f"WHERE i.{sql_name(name)} IS NOT NULL{in_within}"
        for name, rank, _, _ in block_passes(rules)
    )
    return arrow_query(
        f"""WITH blocked AS (
                SELECT u.node, u.rule_rank, u._block FROM ({passes}) u
                JOIN sizes s ON u._block = s._block
                WHERE s._size BETWEEN 2 AND u._max)
            SELECT DISTINCT l.rule_rank, l.node AS left_node, r.node AS right_node
            FROM blocked l JOIN blocked r ON l._block = r._block AND l.node < r.node
            WHERE {focused}""",
        idx=index.select(["node", *(name for name, *_ in block_passes(rules))]),
        sizes=block_sizes.select(["_block", "_size"]),
        **tables,
    )


def focused_pairs(members: pa.Table, focus: pa.Table, rules: Sequence[MatchRule]) -> pa.Table:
    """blocked_pairs(index, sizes, focus, rules, within=members' nodes) from the members of the
    focus records' blocks alone (`members`: node, _col, _block of every record of a block of
    a focus record within its rule's max_block_size, incremental.dirty_scope). Each focus
    record is joined with its blocks' members only — never every pair of those blocks."""
    ranks = pa.table({
        "_col": [name for name, *_ in block_passes(rules)],
        "rule_rank": pa.array([rank for _, rank, *_ in block_passes(rules)], pa.int32()),
    })  # fmt: skip
    return arrow_query(
        """WITH m AS (SELECT m.node, r.rule_rank, m._block FROM members m
                      JOIN ranks r ON r._col = m._col),
                f AS (SELECT * FROM m WHERE node IN (SELECT node FROM focus))
           SELECT DISTINCT f.rule_rank, least(f.node, o.node) AS left_node,
                  greatest(f.node, o.node) AS right_node
           FROM f JOIN m o ON f._block = o._block AND f.node <> o.node""",
        members=members.select(["node", "_col", "_block"]),
        focus=focus.select(["node"]),
        ranks=ranks,
    )


def with_attributes(pairs: pa.Table, keyed: pa.Table, rules: Sequence[MatchRule]) -> pa.Table:
    """blocked_pairs rows → candidate rows: rule name, both ends' source and key and the
    `l_` / `r_` carried_fields(rules) from `keyed` (which holds every end of `pairs`)."""
    fields = carried_fields(rules)
    attributes = ", ".join(
        [f"a.{sql_name(f)} AS {sql_name('l_' + f)}" for f in fields]
        + [f"b.{sql_name(f)} AS {sql_name('r_' + f)}" for f in fields]
    )
    names = pa.table(
        {
            "rule_rank": pa.array(range(len(rules)), pa.int32()),
            "rule": [rule.name for rule in rules],
        }
    )
    return arrow_query(
        f"""SELECT n.rule, p.rule_rank, p.left_node, p.right_node,
                   a.source AS left_source, a.source_key AS left_key,
                   b.source AS right_source, b.source_key AS right_key, {attributes}
            FROM pairs p JOIN names n ON n.rule_rank = p.rule_rank
            JOIN keyed a ON a.node = p.left_node JOIN keyed b ON b.node = p.right_node""",
        pairs=pairs,
        keyed=keyed,
        names=names,
    )


def guard_fields(rules: Sequence[MatchRule]) -> tuple[str, ...]:
    """Fields of the cheap `at_least` guards (guarded_out): read before the other attributes."""
    return tuple(dict.fromkeys(c.field for rule in rules for c in _cheap_guards(rule)))


def _cheap_guards(rule: MatchRule) -> list:
    return [c for c in rule.compare if c.at_least is not None and c.method in _CHEAP_METHODS]


def guarded_out(rows: pa.Table, rules: Sequence[MatchRule]) -> np.ndarray:
    """Rows (rule_rank, l_/r_ guard_fields) that a cheap `at_least` guard of their rule rules
    out (a date of birth far off for a `date_near ≥ x` rule): such a pair scores null whatever
    else it has, so it is dropped before its attributes are joined on and is not counted as
    compared. Both engines drop the same rows (match.candidate_pairs runs this too)."""
    out = np.zeros(rows.num_rows, dtype=bool)
    ranks = rows["rule_rank"].to_numpy()
    for rank, rule in enumerate(rules):
        chosen = np.flatnonzero(ranks == rank)
        if not len(chosen) or not _cheap_guards(rule):
            continue
        part = rows.take(chosen)
        for c in _cheap_guards(rule):
            value = similarity_values(c.method, part[f"l_{c.field}"], part[f"r_{c.field}"])
            present = ~np.isnan(value)
            out[chosen] |= ~(present & (value >= np.where(present, c.at_least, 0)))
    return out


def without_guarded_out(pairs: pa.Table, guards: pa.Table, rules: Sequence[MatchRule]) -> pa.Table:
    """blocked_pairs rows that no cheap guard rules out (guarded_out). `guards`: node and the
    guard_fields(rules) of every end: the keyed records, or the block index, which carries
    them so an incremental run guards its pairs before it reads a record."""
    fields = guard_fields(rules)
    if not fields or not pairs.num_rows:
        return pairs
    sides = ", ".join(f"{s}.{sql_name(f)} AS {sql_name(p + f)}" for f in fields
                      for s, p in (("a", "l_"), ("b", "r_")))  # fmt: skip
    guarded = arrow_query(
        f"""SELECT p.*, {sides} FROM pairs p
            JOIN guards a ON a.node = p.left_node JOIN guards b ON b.node = p.right_node""",
        pairs=pairs,
        guards=guards.select(["node", *fields]),
    )
    keep = ~guarded_out(guarded, rules)
    return guarded.select(pairs.column_names).filter(pa.array(keep))


# Methods costing a few NumPy operations: a rule evaluates them first, so their `at_least`
# guards rule pairs out before the string distances run (the values of the pairs left are the
# same either way: every method is computed pair by pair).
_CHEAP_METHODS = ("exact", "date", "date_near")


def _rule_scores(rows: pa.Table, rule: MatchRule) -> np.ndarray:
    """match._rule_score for one rule's rows: float64, NaN for null."""
    required = np.ones(rows.num_rows, dtype=bool)
    for name in rule.require_equal:
        equal = pc.fill_null(pc.equal(rows[f"l_{name}"], rows[f"r_{name}"]), False)
        required &= equal.to_numpy(zero_copy_only=False)
    if not rule.compare:
        return np.where(required, 1.0, np.nan)
    order = sorted(range(len(rule.compare)),
                   key=lambda i: rule.compare[i].method not in _CHEAP_METHODS)  # fmt: skip
    values: dict[int, np.ndarray] = {}
    for i in order:
        comparison = rule.compare[i]
        values[i] = _values_where(rows, comparison.method, comparison.field, required)
        if comparison.at_least is not None:  # present and at least
            present = ~np.isnan(values[i])
            required &= present & (values[i] >= np.where(present, comparison.at_least, 0))
    weighted = total = None
    for i, comparison in enumerate(rule.compare):  # summed in rule order, as Spark adds them
        present = ~np.isnan(values[i])
        part = np.where(present, values[i] * comparison.weight, 0.0)
        weight = np.where(present, float(comparison.weight), 0.0)
        weighted = part if weighted is None else weighted + part
        total = weight if total is None else total + weight
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(total > 0, round_half_up(weighted / total), np.nan)
    return np.where(required, score, np.nan)


def _values_where(rows: pa.Table, method: str, field: str, live: np.ndarray) -> np.ndarray:
    """similarity_values of `field` on the rows still `live` (NaN elsewhere)."""
    left, right = rows[f"l_{field}"], rows[f"r_{field}"]
    if live.all():
        return similarity_values(method, left, right)
    out = np.full(rows.num_rows, np.nan)
    chosen = np.flatnonzero(live)
    if len(chosen):
        out[chosen] = similarity_values(method, left.take(chosen), right.take(chosen))
    return out


def score(candidates: pa.Table, rules: Sequence[MatchRule]) -> pa.Table:
    """match.score_pairs on Arrow: candidates + score, threshold, review_threshold, decision."""
    ranks = candidates["rule_rank"].to_numpy()
    scores = np.full(candidates.num_rows, np.nan)
    thresholds = np.full(candidates.num_rows, np.nan)
    reviews = np.full(candidates.num_rows, np.nan)
    for rank, rule in enumerate(rules):
        rows = np.flatnonzero(ranks == rank)
        if len(rows) == 0:
            continue
        used = [f"{side}{f}" for f in rule.fields for side in ("l_", "r_")]
        scores[rows] = _rule_scores(candidates.select(list(dict.fromkeys(used))).take(rows), rule)
        thresholds[rows] = rule.threshold
        if rule.review_threshold is not None:
            reviews[rows] = rule.review_threshold
    with np.errstate(invalid="ignore"):
        codes = np.where(scores >= thresholds, 0, np.where(scores >= reviews, 1, 2))
    decision = pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8)), pa.array(["match", "review", "no_match"])
    ).cast(pa.string())

    def doubles(values: np.ndarray) -> pa.Array:
        return pa.array(values, pa.float64(), mask=np.isnan(values))

    return (
        candidates.append_column("score", doubles(scores))
        .append_column("threshold", doubles(thresholds))
        .append_column("review_threshold", doubles(reviews))
        .append_column("decision", decision)
    )


def best(scored: pa.Table) -> pa.Table:
    """match.best_pairs on Arrow: one row per matched pair with its deciding rule (highest
    score, then the earliest rule), score and matched_rules in rule order."""
    return arrow_query(
        f"""SELECT {_PAIR_KEYS_SQL},
                   first(rule ORDER BY score DESC, rule_rank) AS rule,
                   first(score ORDER BY score DESC, rule_rank) AS score,
                   list(rule ORDER BY rule_rank) AS matched_rules
            FROM scored WHERE decision = 'match' GROUP BY {_PAIR_KEYS_SQL}""",
        scored=scored.select([*PAIR_KEYS, "rule", "rule_rank", "score", "decision"]),
    )


def review_candidates(scored: pa.Table, ends: pa.Table) -> pa.Table:
    """review.candidates on Arrow: `ends` (source, source_key, unified_customer_id) gives each
    end's profile; pairs within one profile are dropped."""
    # Only matched and reviewed rows decide a review candidate: the many no_match rows (most
    # compared pairs) need not go through the joins.
    scored = scored.filter(pc.not_equal(scored["decision"], "no_match"))
    with_ids = arrow_query(
        """SELECT s.*, l.unified_customer_id AS left_unified_customer_id,
                  r.unified_customer_id AS right_unified_customer_id
           FROM scored s
           JOIN ends l ON l.source = s.left_source AND l.source_key = s.left_key
           JOIN ends r ON r.source = s.right_source AND r.source_key = s.right_key""",
        scored=scored,
        ends=ends.select(["source", "source_key", "unified_customer_id"]),
    )
    return review_rows(with_ids)


def review_rows(scored: pa.Table) -> pa.Table:
    """The review rule, per pair: `scored` (score_pairs rows of whole pairs, with
    left_/right_unified_customer_id) → one row per pair scored in [review_threshold, threshold)
    by some rule, matched by no rule and not already in one profile (its highest review score,
    then the earliest rule), both records' compared fields side by side."""
    compared = [c[2:] for c in scored.column_names if c.startswith("l_")]
    fields = ", ".join("v." + sql_name(side + f) for f in compared for side in ("l_", "r_"))
    same_pair = " AND ".join(f"m.{k} = s.{k}" for k in PAIR_KEYS)
    return arrow_query(
        f"""WITH matched AS (SELECT DISTINCT {_PAIR_KEYS_SQL} FROM scored
                             WHERE decision = 'match'),
            review AS (
                SELECT s.*, row_number() OVER (PARTITION BY {_PAIR_KEYS_SQL}
                                               ORDER BY s.score DESC, s.rule_rank) AS _n
                FROM scored s ANTI JOIN matched m ON {same_pair}
                WHERE s.decision = 'review')
            SELECT {", ".join("v." + k for k in PAIR_KEYS)}, v.rule, v.score, v.threshold,
                   v.review_threshold, v.left_unified_customer_id,
                   v.right_unified_customer_id, {fields}
            FROM review v
            WHERE v._n = 1 AND v.left_unified_customer_id <> v.right_unified_customer_id""",
        scored=scored,
    )
