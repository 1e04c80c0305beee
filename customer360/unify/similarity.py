"""Similarity of two values in 0..1 as Spark column expressions; null when either side is null.

`exact`, `levenshtein`, `token_sort` and `date` run inside the JVM: no Python workers, nothing to
install on executors, no Arrow round trip. `jaro_winkler` calls rapidfuzz (C++) from a vectorised
pandas UDF (Spark has no Jaro-Winkler); it needs rapidfuzz on every executor and costs an Arrow
round trip per batch, so the default rules use the native methods (docs/unify.md compares them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
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


def round_half_up(values: np.ndarray, places: int = 4) -> np.ndarray:
    """Spark's `round` of doubles (HALF_UP on the shortest decimal form), vectorised. NumPy's
    round is half-to-even on the binary value, so the few values that sit on a half (0.96875)
    are rounded through Decimal, the way Spark's BigDecimal does."""
    values = np.asarray(values, dtype=np.float64)
    scaled = values * 10.0**places
    rounded = np.round(values, places)
    near_half = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) < 1e-6
    step = Decimal(1).scaleb(-places)
    for i in np.flatnonzero(near_half & np.isfinite(values)):
        rounded[i] = float(Decimal(repr(float(values[i]))).quantize(step, ROUND_HALF_UP))
    return rounded


def _text(values: Sequence[object]) -> list[str]:
    return ["" if v is None else str(v) for v in values]


def _levenshtein_distances(left: list[str], right: list[str]) -> np.ndarray:
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    if not left:
        return np.zeros(0, dtype=np.int64)
    return process.cpdist(left, right, scorer=Levenshtein.distance, workers=1, dtype=np.int64)


def _levenshtein_values(left: list[str], right: list[str]) -> np.ndarray:
    """1 - distance / longest (in code points, like Spark's length and levenshtein)."""
    distances = _levenshtein_distances(left, right)
    longest = np.maximum([len(v) for v in left], [len(v) for v in right]).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = round_half_up(1 - distances / longest)
    return np.where(longest == 0, 1.0, ratio)


def _sorted_words(values: list[str]) -> list[str]:
    # Spark's array_sort orders UTF-8 bytes, which is code point order: Python's str order.
    return [" ".join(sorted(v.split(" "))) for v in values]


def _date_values(left: Sequence[dt.date | None], right: Sequence[dt.date | None]) -> np.ndarray:
    def digits(d: dt.date | None) -> str:
        return "" if d is None else f"{d.year:04d}{d.month:02d}{d.day:02d}"

    typo = 1 - _levenshtein_distances([digits(d) for d in left], [digits(d) for d in right]) / 8
    typo = round_half_up(typo)
    out = np.empty(len(left))
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        if a is None or b is None:
            out[i] = np.nan
        elif a == b:
            out[i] = 1.0
        elif a.year == b.year and a.month == b.day and a.day == b.month:
            out[i] = 0.9
        else:
            out[i] = typo[i]
    return out


@cache
def name_variants() -> dict[str, frozenset[str]]:
    """Given name → its nicknames and full forms (PyPI `nicknames`, Apache-2.0: the Old Dominion
    University name-variant list). Relation both ways: `bob` lists `robert` and vice versa."""
    from nicknames import NickNamer

    namer = NickNamer()
    table: dict[str, set[str]] = {}
    for name in {*namer._nickname_lookup, *namer._canonical_lookup}:
        table.setdefault(name, set()).update(namer.nicknames_of(name) | namer.canonicals_of(name))
    return {name: frozenset(found) for name, found in table.items()}


def _name_variant_values(left: list[str], right: list[str]) -> np.ndarray:
    """1 when equal; 0.95 when one first name is a nickname or full form of the other (Bob and
    Robert, Sue and Susan); else Jaro-Winkler, which forgives a typo anywhere in a short name
    far more than Levenshtein does (Aran and Aarn: 0.9333)."""
    from rapidfuzz import process
    from rapidfuzz.distance import JaroWinkler

    if not left:
        return np.zeros(0)
    values = process.cpdist(left, right, scorer=JaroWinkler.normalized_similarity, workers=1,
                            dtype=np.float64)  # fmt: skip
    values = round_half_up(np.asarray(values, dtype=np.float64))
    table = name_variants()
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        if a == b:
            values[i] = 1.0
        elif b in table.get(a, ()) or any(b in table.get(w, ()) for w in a.split(" ")):
            values[i] = max(values[i], 0.95)
    return values


def _date_near_values(
    left: Sequence[dt.date | None], right: Sequence[dt.date | None]
) -> np.ndarray:
    """1 when equal; 0.9 when day and month are swapped; 0.9 − 0.01 per day when up to 10 days
    apart (a keying slip in the day, read across a month's end); else 0."""
    out = np.empty(len(left))
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        if a is None or b is None:
            out[i] = np.nan
        elif a == b:
            out[i] = 1.0
        elif a.year == b.year and a.month == b.day and a.day == b.month:
            out[i] = 0.9
        elif abs((a - b).days) <= 10:
            out[i] = round(0.9 - 0.01 * abs((a - b).days), 4)
        else:
            out[i] = 0.0
    return out


def similarity_values(method: str, left: pa.Array, right: pa.Array) -> np.ndarray:
    """`similarity` computed on the driver for two aligned Arrow arrays: float64, NaN where
    either side is null. The same numbers as the Spark expression (tests/unify check both on
    the same pairs); incremental runs score their few pairs with it instead of a Spark job."""
    lefts, rights = left.to_pylist(), right.to_pylist()
    if method == "date":
        return _date_values(lefts, rights)
    if method == "date_near":
        return _date_near_values(lefts, rights)
    if method == "exact":
        values = np.array([float(a == b) for a, b in zip(lefts, rights, strict=True)])
    elif method == "levenshtein":
        values = _levenshtein_values(_text(lefts), _text(rights))
    elif method == "token_sort":
        values = _levenshtein_values(_sorted_words(_text(lefts)), _sorted_words(_text(rights)))
    elif method == "jaro_winkler":
        values = _rapidfuzz_scores(method, pd.Series(_text(lefts)), pd.Series(_text(rights)))
        values = values.to_numpy(dtype=np.float64)
    elif method == "name_variant":
        values = _name_variant_values(_text(lefts), _text(rights))
    else:
        raise ValueError(f"unknown similarity method {method!r}")
    missing = np.array([a is None or b is None for a, b in zip(lefts, rights, strict=True)])
    return np.where(missing, np.nan, values) if len(lefts) else np.zeros(0)


def python_similarity(method: str, left: object, right: object) -> float | None:
    """One pair's similarity in Python (tests, notebooks, explaining a score)."""
    value = similarity_values(method, pa.array([left]), pa.array([right]))[0]
    return None if np.isnan(value) else float(value)


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
    else:  # name_variant, date_near: rules score through pair_scoring.score on both engines
        raise ValueError(f"no Spark column for similarity method {method!r}")
    return F.when(left.isNotNull() & right.isNotNull(), value.cast("double"))
