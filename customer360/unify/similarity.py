"""Similarity of two values in 0..1 as Spark column expressions; null when either side is null.

`exact`, `levenshtein`, `token_sort` and `date` run inside the JVM: no Python workers, nothing to
install on executors, no Arrow round trip. `jaro_winkler` calls rapidfuzz (C++) from a vectorised
pandas UDF (Spark has no Jaro-Winkler); it needs rapidfuzz on every executor and costs an Arrow
round trip per batch, so the default rules use the native methods (docs/unify.md compares them).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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


def _text(values: pa.Array) -> list[str]:
    """Strings for rapidfuzz: null → '' (such rows are masked to NaN by the caller)."""
    return pc.fill_null(values.cast(pa.string()), "").to_pylist()


def _levenshtein_distances(left: list[str], right: list[str]) -> np.ndarray:
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    if not left:
        return np.zeros(0, dtype=np.int64)
    return process.cpdist(left, right, scorer=Levenshtein.distance, workers=1, dtype=np.int64)


def _levenshtein_values(left: pa.Array, right: pa.Array) -> np.ndarray:
    """1 - distance / longest (in code points, like Spark's length and levenshtein)."""
    distances = _levenshtein_distances(_text(left), _text(right))
    longest = np.maximum(_lengths(left), _lengths(right)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = round_half_up(1 - distances / longest)
    return np.where(longest == 0, 1.0, ratio)


def _lengths(values: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.utf8_length(values.cast(pa.string())), 0).to_numpy(zero_copy_only=False)


def _per_distinct(values: pa.Array, transform) -> pa.Array:
    """`transform` (str → str, in Python) applied once per distinct value: names repeat across
    pairs, so the Python work grows with the distinct names, not with the pairs."""
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    dictionary = pa.array([transform(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(dictionary, encoded.indices)


def _sorted_words(values: pa.Array) -> pa.Array:
    # Spark's array_sort orders UTF-8 bytes, which is code point order: Python's str order.
    return _per_distinct(values, lambda v: " ".join(sorted(v.split(" "))))


def _date_parts(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(days since the epoch, year, month, day) as int64 arrays (0 where null)."""
    dates = values.cast(pa.date32())

    def ints(array: pa.Array) -> np.ndarray:
        return pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)

    return (
        ints(dates.cast(pa.int32())),
        ints(pc.year(dates)),
        ints(pc.month(dates)),
        ints(pc.day(dates)),
    )


def _date_levels(left: pa.Array, right: pa.Array) -> tuple[np.ndarray, ...]:
    """(missing, equal, day and month swapped, days apart) of two date arrays."""
    missing = _missing(left, right)
    days_l, year_l, month_l, day_l = _date_parts(left)
    days_r, year_r, month_r, day_r = _date_parts(right)
    equal = ~missing & (days_l == days_r)
    swapped = ~missing & ~equal & (year_l == year_r) & (month_l == day_r) & (day_l == month_r)
    return (
        missing,
        equal,
        swapped,
        np.abs(days_l - days_r),
        (year_l, month_l, day_l),
        (year_r, month_r, day_r),
    )


def _digits(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> list[str]:
    """yyyyMMdd (Spark's date_format), zero-padded."""
    number = pa.array(year * 10000 + month * 100 + day, pa.int64())
    return pc.utf8_lpad(number.cast(pa.string()), 8, "0").to_pylist()


def _date_values(left: pa.Array, right: pa.Array) -> np.ndarray:
    """1 equal; 0.9 day and month swapped; else Levenshtein of the yyyyMMdd digits / 8."""
    missing, equal, swapped, _, parts_l, parts_r = _date_levels(left, right)
    out = np.where(equal, 1.0, np.where(swapped, 0.9, np.nan))
    typo = np.flatnonzero(~missing & ~equal & ~swapped)
    if len(typo):
        distances = _levenshtein_distances(
            _digits(*(p[typo] for p in parts_l)), _digits(*(p[typo] for p in parts_r))
        )
        out[typo] = round_half_up(1 - distances / 8)
    return out


# date_near's level for 0..10 days apart, rounded the way Python's round() does.
_NEAR = np.array([round(0.9 - 0.01 * d, 4) for d in range(11)])


def _date_near_values(left: pa.Array, right: pa.Array) -> np.ndarray:
    """1 when equal; 0.9 when day and month are swapped; 0.9 − 0.01 per day when up to 10 days
    apart (a keying slip in the day, read across a month's end); else 0."""
    missing, equal, swapped, apart, _, _ = _date_levels(left, right)
    near = _NEAR[np.minimum(apart, 10)]
    out = np.where(apart <= 10, near, 0.0)
    out = np.where(swapped, 0.9, out)
    out = np.where(equal, 1.0, out)
    return np.where(missing, np.nan, out)


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


_PAIR_SEPARATOR = "\x1f"  # never in a name key (punctuation and controls become spaces)


@cache
def _variant_pairs() -> pa.Array:
    """Every `name␟variant` of name_variants(), for one vectorised membership test."""
    table = name_variants()
    return pa.array(sorted(f"{n}{_PAIR_SEPARATOR}{v}" for n, found in table.items()
                           for v in found), pa.string())  # fmt: skip


def _is_variant(left: pa.Array, right: pa.Array) -> np.ndarray:
    """b in name_variants()[a], or in the variants of any word of a (`mary ann` / `polly`)."""
    left, right = pc.fill_null(left, ""), pc.fill_null(right, "")
    joined = pc.binary_join_element_wise(left, right, _PAIR_SEPARATOR)
    found = pc.is_in(joined, value_set=_variant_pairs()).to_numpy(zero_copy_only=False).copy()
    # Rare rows need Python: several words in a, or a separator inside a value.
    odd = pc.or_(
        pc.or_(pc.match_substring(left, " "), pc.match_substring(left, _PAIR_SEPARATOR)),
        pc.match_substring(right, _PAIR_SEPARATOR),
    )
    table = name_variants()
    for i in np.flatnonzero(odd.to_numpy(zero_copy_only=False)):
        a, b = left[int(i)].as_py(), right[int(i)].as_py()
        found[i] = b in table.get(a, ()) or any(b in table.get(w, ()) for w in a.split(" "))
    return found


def _name_variant_values(left: pa.Array, right: pa.Array) -> np.ndarray:
    """1 when equal; 0.95 when one first name is a nickname or full form of the other (Bob and
    Robert, Sue and Susan); else Jaro-Winkler, which forgives a typo anywhere in a short name
    far more than Levenshtein does (Aran and Aarn: 0.9333)."""
    from rapidfuzz import process
    from rapidfuzz.distance import JaroWinkler

    if not len(left):
        return np.zeros(0)
    values = process.cpdist(_text(left), _text(right), scorer=JaroWinkler.normalized_similarity,
                            workers=1, dtype=np.float64)  # fmt: skip
    values = round_half_up(np.asarray(values, dtype=np.float64))
    equal = pc.fill_null(pc.equal(left, right), False).to_numpy(zero_copy_only=False)
    values = np.where(_is_variant(left, right), np.maximum(values, 0.95), values)
    return np.where(equal, 1.0, values)


def _missing(left: pa.Array, right: pa.Array) -> np.ndarray:
    either = pc.or_(pc.is_null(left), pc.is_null(right))
    return either.to_numpy(zero_copy_only=False)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def similarity_values(
    method: str, left: pa.Array | pa.ChunkedArray, right: pa.Array | pa.ChunkedArray
) -> np.ndarray:
    """`similarity` computed for two aligned Arrow arrays: float64, NaN where either side is
    null. Vectorised (Arrow compute, NumPy, rapidfuzz's C++ over whole columns): no Python loop
    per pair, so a million-record run scores its millions of pairs in seconds. Both engines run
    it (Spark per partition); tests/unify/test_similarity_vectorised.py checks it against the
    plain per-pair definition."""
    left, right = _array(left), _array(right)
    if pa.types.is_null(left.type):  # pa.array([None]): a value of the other side's type
        left = left.cast(right.type)
    if pa.types.is_null(right.type):
        right = right.cast(left.type)
    if method == "date":
        return _date_values(left, right)
    if method == "date_near":
        return _date_near_values(left, right)
    if method == "exact":
        values = pc.fill_null(pc.equal(left, right), False).to_numpy(zero_copy_only=False)
        values = values.astype(np.float64)
    elif method == "levenshtein":
        values = _levenshtein_values(left, right)
    elif method == "token_sort":
        values = _levenshtein_values(_sorted_words(left), _sorted_words(right))
    elif method == "jaro_winkler":
        values = _rapidfuzz_scores(method, pd.Series(_text(left)), pd.Series(_text(right)))
        values = values.to_numpy(dtype=np.float64)
    elif method == "name_variant":
        values = _name_variant_values(left, right)
    else:
        raise ValueError(f"unknown similarity method {method!r}")
    return np.where(_missing(left, right), np.nan, values) if len(left) else np.zeros(0)


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
