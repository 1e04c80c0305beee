"""The vectorised similarities (similarity.similarity_values: Arrow compute, NumPy, rapidfuzz
over whole columns) give exactly the values of their plain per-pair definitions below, written
the obvious way in Python, one pair at a time. Inputs: names with typos, accents, non-Latin
letters, several words, nicknames and full forms, blanks and nulls; dates equal, swapped, days
apart, a digit off, far apart, null, and years under 1000.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pyarrow as pa
import pytest
from rapidfuzz.distance import JaroWinkler, Levenshtein

from customer360.unify.similarity import name_variants, python_similarity, similarity_values

NAMES = ["robert", "bob", "rob", "susan", "sue", "benjamin", "ben", "mary ann", "polly",
         "mary", "ann", "irene", "rena", "zoë", "zoe", "łukasz", "李", "dirk", "irk", "",
         "jean luc", "katherine", "catherine", "kate", "ab" * 16, "christopher",
         "chris"]  # fmt: skip


def _half_up(value: float) -> float:
    return float(Decimal(repr(float(value))).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _levenshtein(a: str, b: str) -> float:
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else _half_up(1 - Levenshtein.distance(a, b) / longest)


def _digits(d: dt.date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _swapped(a: dt.date, b: dt.date) -> bool:
    return a.year == b.year and a.month == b.day and a.day == b.month


def reference(method: str, a: object, b: object) -> float | None:
    """One pair's similarity, the plain way (the definition the vectorised code must meet)."""
    if a is None or b is None:
        return None
    if method == "exact":
        return float(a == b)
    if method == "levenshtein":
        return _levenshtein(a, b)
    if method == "token_sort":
        return _levenshtein(" ".join(sorted(a.split(" "))), " ".join(sorted(b.split(" "))))
    if method == "jaro_winkler":
        return float(np.round(JaroWinkler.normalized_similarity(a, b), 4))
    if method == "name_variant":
        if a == b:
            return 1.0
        value = _half_up(JaroWinkler.normalized_similarity(a, b))
        table = name_variants()
        if b in table.get(a, ()) or any(b in table.get(w, ()) for w in a.split(" ")):
            value = max(value, 0.95)
        return value
    if a == b:
        return 1.0
    if _swapped(a, b):
        return 0.9
    if method == "date":
        return _half_up(1 - Levenshtein.distance(_digits(a), _digits(b)) / 8)
    apart = abs((a - b).days)  # date_near
    return round(0.9 - 0.01 * apart, 4) if apart <= 10 else 0.0


def _typo(value: str, rng: random.Random) -> str:
    if not value or rng.random() < 0.4:
        return value
    i = rng.randrange(len(value))
    return value[:i] + rng.choice("aeiouxé ") + value[i + 1 :]


def _names(rng: random.Random, count: int) -> list[tuple[str | None, str | None]]:
    def one() -> str | None:
        return None if rng.random() < 0.08 else _typo(rng.choice(NAMES), rng)

    return [(one(), one()) for _ in range(count)]


def _dates(rng: random.Random, count: int) -> list[tuple[dt.date | None, dt.date | None]]:
    pairs = []
    for _ in range(count):
        a = dt.date(rng.choice([987, 1950, 1980, 2004]), rng.randint(1, 12), rng.randint(1, 28))
        kind = rng.randrange(6)
        if kind == 0:
            b = a
        elif kind == 1 and a.day <= 12:
            b = a.replace(month=a.day, day=a.month)
        elif kind == 2:
            b = a + dt.timedelta(days=rng.randint(-12, 12))
        elif kind == 3:
            b = a.replace(year=a.year + rng.choice([-1, 1, 10]))
        else:
            b = dt.date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
        pairs.append((None if rng.random() < 0.05 else a, None if rng.random() < 0.05 else b))
    return pairs


@pytest.mark.parametrize(
    "method", ["exact", "levenshtein", "token_sort", "jaro_winkler", "name_variant"]
)
def test_text_methods_equal_their_definition(method):
    rng = random.Random(sum(map(ord, method)))
    pairs = _names(rng, 4000)
    got = similarity_values(method, pa.array([p[0] for p in pairs], pa.string()),
                            pa.array([p[1] for p in pairs], pa.string()))  # fmt: skip
    expected = [reference(method, a, b) for a, b in pairs]
    assert [None if np.isnan(v) else float(v) for v in got] == expected
    if method == "name_variant":  # the nickname level is exercised, not only Jaro-Winkler
        assert sum(v == 0.95 for v in expected) > 10


@pytest.mark.parametrize("method", ["exact", "date", "date_near"])
def test_date_methods_equal_their_definition(method):
    rng = random.Random(len(method))
    pairs = _dates(rng, 4000)
    got = similarity_values(method, pa.array([p[0] for p in pairs], pa.date32()),
                            pa.array([p[1] for p in pairs], pa.date32()))  # fmt: skip
    expected = [reference(method, a, b) for a, b in pairs]
    assert [None if np.isnan(v) else float(v) for v in got] == expected
    assert ({0.0, 1.0} if method == "exact" else {0.9, 1.0}) <= set(expected)


def test_one_pair_and_chunked_input():
    assert python_similarity("name_variant", "bob", "robert") == 0.95
    assert python_similarity("date_near", None, dt.date(1980, 1, 1)) is None
    assert python_similarity("date", dt.date(1980, 3, 7), dt.date(1980, 7, 3)) == 0.9
    chunked = pa.chunked_array([["anna", None], ["ann"]])
    other = pa.chunked_array([["anna"], ["x", "anne"]])
    assert similarity_values("levenshtein", chunked, other)[0] == 1.0
    assert np.isnan(similarity_values("levenshtein", chunked, other)[1])
    assert similarity_values("levenshtein", chunked, other)[2] == 0.75
    with pytest.raises(ValueError, match="unknown similarity method 'soundex'"):
        similarity_values("soundex", chunked, other)
