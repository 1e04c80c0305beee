"""Blocking, candidate pairs and rule scores (Spark: DataFrames in, DataFrames out).

Each rule compares only records that share one of its blocking keys, so the work grows with the
block sizes, not with records². Blocks larger than the rule's `max_block_size` are skipped and
listed by `oversized_blocks`, never silently: a placeholder value (a shared phone, a default
date) would otherwise compare everyone with everyone.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from customer360.unify import pair_scoring
from customer360.unify.blocking import (
    block_id_sql,
    block_key_sql,
    block_passes,
    carried_fields,
)
from customer360.unify.config import MatchRule
from customer360.unify.keys import MATCH_KEYS, match_keys
from customer360.unify.on_spark import map_groups, map_rows
from customer360.unify.schema import PAIR_KEYS


def _keyed(records: DataFrame) -> DataFrame:
    return records if "node" in records.columns else match_keys(records)


def _check_fields(keyed: DataFrame, rules: Sequence[MatchRule]) -> None:
    for rule in rules:
        unknown = [f for f in rule.fields if f not in keyed.columns]
        if unknown:
            raise ValueError(
                f"rule {rule.name!r}: unknown field(s) {unknown}; use a record column or a "
                f"match key {list(MATCH_KEYS)}"
            )


def block_columns(rules: Sequence[MatchRule]) -> list[tuple[str, int, Column, Column, str]]:
    """block_passes with their expressions: (column name, rule rank, the block id expression,
    the key expression, the key expressions joined for display). A block id is unique across
    passes (`<rule>␟<pass>␟<key>`); null when a key part is missing (the record is not blocked
    by that pass)."""
    entries = []
    for name, rank, number, keys in block_passes(rules):
        key = F.expr(block_key_sql(keys))
        block = F.expr(block_id_sql(rank, number, keys))
        entries.append((name, rank, block, key, ", ".join(keys)))
    return entries


def block_index(
    records: DataFrame, rules: Sequence[MatchRule], carry: Sequence[str] = ()
) -> DataFrame:
    """node, source, source_key, one block id column per blocking pass (block_columns) and the
    fields of the cheap guards (pair_scoring.guard_fields): what incremental resolution keeps
    to find a changed record's block partners and to rule pairs out before reading them.
    `carry`: columns of the keyed records to keep as well (after those)."""
    keyed = _keyed(records)
    _check_fields(keyed, rules)
    return keyed.select(
        "node", "source", "source_key",
        *[block.alias(name) for name, _, block, _, _ in block_columns(rules)],
        *pair_scoring.guard_fields(rules),
        *carry,
    )  # fmt: skip


def _blocked(
    keyed: DataFrame,
    rules: Sequence[MatchRule],
    describe: bool = False,
    block_sizes: DataFrame | None = None,
) -> DataFrame:
    """One row per (record, rule, blocking pass) with a complete key: node, rule_rank, _block
    (rule, pass and key: unique across passes), block_key, `_size` (records in the block:
    counted here, or taken from `block_sizes` (_block, _size) when `keyed` is a subset).

    All passes of all rules go through one explode, one window and (in candidate_pairs) one
    self-join, instead of a join per pass: far fewer stages at every data size.
    """
    entries = [
        F.struct(
            F.lit(rank).alias("rule_rank"),
            block.alias("block"),
            key.alias("key"),
            F.lit(keys if describe else None).cast("string").alias("blocking"),
        )
        for _, rank, block, key, keys in block_columns(rules)
    ]
    exploded = (
        keyed.select("node", F.explode(F.array(*entries)).alias("_b"))
        .filter(F.col("_b.block").isNotNull())
        .select(
            "node",
            F.col("_b.rule_rank").alias("rule_rank"),
            F.col("_b.block").alias("_block"),
            F.col("_b.key").alias("block_key"),
            *([F.col("_b.blocking").alias("blocking")] if describe else []),
        )
    )
    if block_sizes is not None:
        return exploded.join(block_sizes.select("_block", "_size"), "_block")
    return exploded.withColumn("_size", F.count("*").over(Window.partitionBy("_block")))


def _max_block_size(rules: Sequence[MatchRule]) -> Column:
    sizes = F.array(*[F.lit(rule.max_block_size) for rule in rules])
    return F.element_at(sizes, F.col("rule_rank") + 1)


def _rule_name(rules: Sequence[MatchRule]) -> Column:
    return F.element_at(F.array(*[F.lit(r.name) for r in rules]), F.col("rule_rank") + 1)


def candidate_pairs(
    records: DataFrame,
    rules: Sequence[MatchRule],
    *,
    block_sizes: DataFrame | None = None,
    focus: DataFrame | None = None,
) -> DataFrame:
    """Blocked candidate pairs, one row per (rule, pair).

    Columns: rule, rule_rank, left_node, right_node, left_source, left_key, right_source,
    right_key, then `l_<field>` / `r_<field>` for carried_fields(rules). The left record is the
    smaller (source, source_key). `records` are raw records or match_keys(records).

    Incremental resolution passes a subset of the records: `block_sizes` (_block, _size) gives
    every block's size over ALL records (a block too large overall stays skipped), and `focus`
    (a `node` column) keeps only the pairs with at least one record in it.
    """
    keyed = _keyed(records)
    _check_fields(keyed, rules)
    fields = carried_fields(rules)
    blocked = (
        _blocked(keyed, rules, block_sizes=block_sizes)
        .filter(F.col("_size") <= _max_block_size(rules))
        .select("_block", "rule_rank", "node")
    )
    if focus is not None:
        focused = focus.select("node").distinct().withColumn("_focus", F.lit(True))
        blocked = blocked.join(F.broadcast(focused), "node", "left").fillna(False, ["_focus"])
    left, right = blocked.alias("l"), blocked.alias("r")
    # Only ids go through the block join (the widest shuffle); attributes are joined on after.
    condition = (F.col("l._block") == F.col("r._block")) & (F.col("l.node") < F.col("r.node"))
    if focus is not None:
        condition = condition & (F.col("l._focus") | F.col("r._focus"))
    pairs = left.join(right, condition).select(
        F.col("l.rule_rank").alias("rule_rank"),
        F.col("l.node").alias("left_node"),
        F.col("r.node").alias("right_node"),
    )
    if any(len(rule.blocking) > 1 for rule in rules):  # a pair can share several blocking keys
        pairs = pairs.dropDuplicates(["rule_rank", "left_node", "right_node"])
    for side, prefix in (("left", "l_"), ("right", "r_")):
        attributes = keyed.select(
            F.col("node").alias(f"{side}_node"),
            F.col("source").alias(f"{side}_source"),
            F.col("source_key").alias(f"{side}_key"),
            *[F.col(f).alias(prefix + f) for f in fields],
        )
        pairs = pairs.join(attributes, f"{side}_node")
    pairs = pairs.select(
        _rule_name(rules).alias("rule"),
        "rule_rank",
        "left_node",
        "right_node",
        "left_source",
        "left_key",
        "right_source",
        "right_key",
        *[f"l_{f}" for f in fields],
        *[f"r_{f}" for f in fields],
    )
    if not pair_scoring.guard_fields(rules):
        return pairs
    # Pairs a cheap at_least guard rules out are not candidates (pair_scoring.guarded_out).
    return map_rows(
        pairs, lambda rows: rows.filter(pa.array(~pair_scoring.guarded_out(rows, rules)))
    )


def oversized_blocks(records: DataFrame, rules: Sequence[MatchRule]) -> DataFrame:
    """Blocks that candidate_pairs skipped: rule, blocking (the key expressions), block_key,
    records (how many records share it). Their records still become profiles, through other
    rules or alone."""
    keyed = _keyed(records)
    blocked = _blocked(keyed, rules, describe=True)
    counted = [rank for rank, rule in enumerate(rules) if rule.counts_values]
    if counted:  # a max_value_count rule's common values are left out on purpose
        blocked = blocked.filter(~F.col("rule_rank").isin(counted))
    return (
        blocked.filter(F.col("_size") > _max_block_size(rules))
        .groupBy("rule_rank", "blocking", "block_key")
        .agg(F.count("*").alias("records"))
        .select(_rule_name(rules).alias("rule"), "blocking", "block_key", "records")
    )


def score_pairs(candidates: DataFrame, rules: Sequence[MatchRule]) -> DataFrame:
    """candidate_pairs + score (0..1, null when a required field differs), decision
    (match | review | no_match), threshold, review_threshold. One row per (rule, pair).
    The rule is pair_scoring.score, run on each partition."""
    return map_rows(candidates, lambda rows: pair_scoring.score(rows, rules))


def best_pairs(scored: DataFrame) -> DataFrame:
    """The pair table: one row per matched pair with the rule that decided it (highest score,
    then the earliest rule) and every rule that matched it, in rule order (pair_scoring.best,
    run per pair).

    Columns: left_source, left_key, right_source, right_key, rule, score, matched_rules.
    """
    matches = scored.filter(F.col("decision") == "match").select(
        *PAIR_KEYS, "rule", "rule_rank", "score", "decision"
    )
    return map_groups({"scored": (matches, PAIR_KEYS)}, pair_scoring.best)
