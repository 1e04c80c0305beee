"""Similarity of two values in 0..1 as Spark column expressions; null when either side is null.

`exact`, `levenshtein`, `token_sort` and `date` run inside the JVM: no Python workers, nothing to
install on executors, no Arrow round trip. `jaro_winkler` calls rapidfuzz (C++) from a vectorised
pandas UDF (Spark has no Jaro-Winkler); it needs rapidfuzz on every executor and costs an Arrow
round trip per batch, so the default rules use the native methods (docs/unify.md compares them).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F


def _rapidfuzz_scores(scorer_name: str, left: pd.Series, right: pd.Series) -> pd.Series:
    from rapidfuzz import process
    from rapidfuzz.distance import JaroWinkler

    scorers = {"jaro_winkler": JaroWinkler.normalized_similarity}
    scorer = scorers[scorer_name]
    lefts = left.fillna("").astype(str).tolist()
    rights = right.fillna("").astype(str).tolist()
    if not lefts:
        return pd.Series([], dtype="float64")
    scores = process.cpdist(lefts, rights, scorer=scorer, workers=1, dtype=np.float64)
    # Four decimals: the same pair gets the same score on every machine and run.
    return pd.Series(np.round(np.asarray(scores, dtype=np.float64), 4))


@cache
def _udf(scorer_name: str):
    @F.pandas_udf("double")
    def score(left: pd.Series, right: pd.Series) -> pd.Series:
        return _rapidfuzz_scores(scorer_name, left, right)

    return score


def python_similarity(method: str, left: str | None, right: str | None) -> float | None:
    """The same scores computed in Python (tests, notebooks, explaining a score)."""
    if left is None or right is None:
        return None
    if method == "jaro_winkler":
        return float(_rapidfuzz_scores(method, pd.Series([left]), pd.Series([right])).iloc[0])
    from rapidfuzz.distance import Levenshtein

    if method == "token_sort":
        left, right = " ".join(sorted(left.split(" "))), " ".join(sorted(right.split(" ")))
        method = "levenshtein"
    if method == "levenshtein":
        longest = max(len(left), len(right))
        return 1.0 if longest == 0 else round(1 - Levenshtein.distance(left, right) / longest, 4)
    if method == "exact":
        return 1.0 if left == right else 0.0
    raise ValueError(f"no Python version of method {method!r}")


def _levenshtein(left: Column, right: Column) -> Column:
    longest = F.greatest(F.length(left), F.length(right))
    ratio = 1 - F.levenshtein(left, right) / longest
    return F.when(longest == 0, F.lit(1.0)).otherwise(F.round(ratio, 4))


def _token_sort(left: Column, right: Column) -> Column:
    """Levenshtein similarity after sorting the words: 'lee ann' equals 'ann lee'."""

    def sort_words(value: Column) -> Column:
        return F.array_join(F.array_sort(F.split(value, " ")), " ")

    return _levenshtein(sort_words(left), sort_words(right))


def _date(left: Column, right: Column) -> Column:
    """1 when equal; 0.9 when day and month are swapped (a classic entry error); otherwise the
    Levenshtein similarity of the yyyyMMdd digits (one mistyped digit: 0.875)."""
    swapped = (
        (F.year(left) == F.year(right))
        & (F.month(left) == F.dayofmonth(right))
        & (F.dayofmonth(left) == F.month(right))
    )
    digits_l, digits_r = F.date_format(left, "yyyyMMdd"), F.date_format(right, "yyyyMMdd")
    return (
        F.when(left == right, F.lit(1.0))
        .when(swapped, F.lit(0.9))
        .otherwise(F.round(1 - F.levenshtein(digits_l, digits_r) / 8, 4))
    )


def similarity(method: str, left: Column, right: Column) -> Column:
    """Similarity expression for one comparison method (see config.METHODS)."""
    if method == "exact":
        value = F.when(left == right, F.lit(1.0)).otherwise(F.lit(0.0))
    elif method == "levenshtein":
        value = _levenshtein(left, right)
    elif method == "date":
        value = _date(left, right)
    elif method == "token_sort":
        value = _token_sort(left, right)
    elif method == "jaro_winkler":
        value = _udf(method)(left.cast("string"), right.cast("string"))
    else:
        raise ValueError(f"unknown similarity method {method!r}")
    return F.when(left.isNotNull() & right.isNotNull(), value.cast("double"))
