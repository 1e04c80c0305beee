"""The driver's pairing and scoring (customer360.unify.pair_scoring) give the rows Spark gives.

Incremental runs pair and score their few thousand pairs with DuckDB and rapidfuzz; full runs
use the Spark definitions. Both run here on the same records: random names with typos, accents,
non-Latin letters, swapped and mistyped birth dates, missing values, and lengths whose scores
sit exactly on a rounding half (1 - 1/32 = 0.96875), under the default rules plus a rule using
the remaining methods (exact, jaro_winkler) and a weighted mean.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pytest
from arrow_rows import sorted_rows
from pyspark.sql import functions as F
from unify_builders import rec, records_df

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import load_config, pair_scoring
from customer360.unify.config import Comparison, MatchRule
from customer360.unify.keys import match_keys
from customer360.unify.match import (
    best_pairs,
    block_index,
    candidate_pairs,
    carried_fields,
    score_pairs,
)
from customer360.unify.review import candidates
from customer360.unify.similarity import round_half_up

pytestmark = pytest.mark.spark

FIRST = ["anna", "ánna", "zoë", "łukasz", "jean luc", "mary ann", "ann", "dmitrий", "李", ""]
LAST = ["lee", "o'brien", "müller", "mueller", "smith", "smyth", "garcía", "ab" * 16, "abc"]


def _typo(value: str, rng: random.Random) -> str:
    if not value or rng.random() < 0.5:
        return value
    i = rng.randrange(len(value))
    return value[:i] + rng.choice("aeiouxé") + value[i + 1 :]


def _records(seed: int = 7, count: int = 400) -> list[dict]:
    rng = random.Random(seed)
    dates = [dt.date(1980, 3, 7), dt.date(1980, 7, 3), dt.date(1980, 3, 8), dt.date(1991, 12, 1)]
    rows = []
    for i in range(count):
        first, last = _typo(rng.choice(FIRST), rng), _typo(rng.choice(LAST), rng)
        rows.append(
            rec(
                rng.choice(["dataverse", "residents"]),
                str(i),
                firstname=first or None,
                lastname=last,
                name=None if rng.random() < 0.3 else f"{first} {last}".strip(),
                email=rng.choice([None, "a@example.com", "b+x@example.com", "B@example.com"]),
                telephone=rng.choice([None, "0123 456 789", "0123456789"]),
                dateofbirth=rng.choice([*dates, None]),
                city=rng.choice(["Zürich", "zurich", None]),
            )
        )
    return rows


def _rules():
    extra = MatchRule(
        name="city_name_weighted",
        blocking=(("city_key",),),
        compare=(
            Comparison("firstname_key", "jaro_winkler", 2.0),
            Comparison("lastname_key", "exact", 0.5),
            Comparison("dateofbirth", "date", 1.0),
        ),
        threshold=0.9,
        review_threshold=0.4,
    )
    return (*load_config().rules, extra)


def test_rounding_is_sparks_half_up(spark):
    values = [1 - 1 / 32, 0.12345, 0.00005, 2 / 3, 0.5, 1 / 7, 0.99995, 0.0]
    values += [k / 2**n for n in range(5, 12) for k in range(1, 2**n, 7)]
    frame = spark.createDataFrame([(float(v),) for v in values], "v double")
    expected = [r.r for r in frame.select(F.round("v", 4).alias("r")).collect()]
    assert round_half_up(np.array(values)).tolist() == expected
    assert round_half_up(np.array([1 - 1 / 32]))[0] == 0.9688  # NumPy alone gives 0.9687


def test_driver_scoring_equals_spark(spark):
    rules = _rules()
    keyed_df = match_keys(records_df(spark, _records())).cache()
    spark_candidates = candidate_pairs(keyed_df, rules)
    spark_scored = score_pairs(spark_candidates, rules).cache()
    expected = spark_to_arrow(spark_scored)
    assert expected.num_rows > 1000  # the comparison below is not vacuous
    decisions = set(expected["decision"].to_pylist())
    assert decisions == {"match", "review", "no_match"}
    assert set(expected["rule"].to_pylist()) >= {"name_dob_fuzzy", "city_name_weighted"}

    scored = pair_scoring.score(spark_to_arrow(spark_candidates), rules)
    assert sorted_rows(scored) == sorted_rows(expected)
    assert sorted_rows(pair_scoring.best(scored)) == sorted_rows(
        spark_to_arrow(best_pairs(spark_scored))
    )

    # Review candidates: every record its own profile except two merged ones.
    ends = keyed_df.select(
        "source",
        "source_key",
        F.concat("source", F.lit("/"), "source_key").alias("unified_customer_id"),
    ).withColumn(
        "unified_customer_id",
        F.when(F.col("source_key").isin("1", "2"), "merged").otherwise(
            F.col("unified_customer_id")
        ),
    )
    assert sorted_rows(pair_scoring.review_candidates(scored, spark_to_arrow(ends))) == sorted_rows(
        spark_to_arrow(candidates(spark_scored, ends))
    )
    spark_scored.unpersist()
    keyed_df.unpersist()


def test_focused_candidates_equal_sparks(spark):
    rules = tuple(dataclasses.replace(r, max_block_size=30) for r in _rules())
    keyed_df = match_keys(records_df(spark, _records(seed=11))).cache()
    index = spark_to_arrow(block_index(keyed_df, rules))
    focus = spark_to_arrow(keyed_df.select("node").filter(F.col("source_key").cast("int") % 9 == 0))
    columns = [c for c in index.column_names if c.startswith("b")]
    blocks = pa.concat_arrays([index[c].combine_chunks() for c in columns]).drop_null()
    sizes = blocks.value_counts()
    block_sizes = pa.table({"_block": sizes.field("values"), "_size": sizes.field("counts")})
    assert max(block_sizes["_size"].to_pylist()) > 30  # some blocks are skipped

    expected = spark_to_arrow(
        candidate_pairs(
            keyed_df, rules, block_sizes=spark.createDataFrame(block_sizes),
            focus=spark.createDataFrame(focus),
        )
    )  # fmt: skip
    keyed = spark_to_arrow(keyed_df.select("node", "source", "source_key", *carried_fields(rules)))
    got = pair_scoring.focused_candidates(index, keyed, block_sizes, focus, rules)
    assert expected.num_rows > 100
    assert sorted_rows(got) == sorted_rows(expected)
    keyed_df.unpersist()
