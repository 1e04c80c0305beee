"""Hard variants of the seed's second source (issue: recall on hard cases): every true match of
residents_adls.csv loses its e-mail and gets a name change — a nickname swap (Robert → Bob), or
keying errors in the first name, the last name or both, a third of them in the first letter.
The goal: profiles found with recall ≥ 0.90 at precision ≥ 0.995, for any seed (the hidden
acceptance variants use other seeds; three run here).

The records are the seed files through the real silver standardisation (Spark); the variant is
made on Arrow and resolved on one machine (unify.local.resolve, the same rules Spark runs).
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from unify_builders import seed_records

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import load_config
from customer360.unify.local import resolve
from customer360.unify.similarity import name_variants

pytestmark = pytest.mark.spark

NEIGHBOURS = {"a": "qsz", "e": "wrd", "i": "uok", "o": "ipl", "n": "bmh", "r": "eft",
              "s": "adw", "t": "rgy", "l": "kop", "m": "nj", "d": "sfe", "k": "jli"}  # fmt: skip


def _typo(text: str, rng: random.Random) -> str:
    """A keying error (neighbour key, dropped, doubled or swapped letter), a third of them in
    the first letter."""
    if len(text) < 3:
        return text
    i = 0 if rng.random() < 1 / 3 else rng.randrange(1, len(text))
    kind, ch = rng.random(), text[i]
    if kind < 0.35 and ch.lower() in NEIGHBOURS:
        swap = rng.choice(NEIGHBOURS[ch.lower()])
        return text[:i] + (swap.upper() if ch.isupper() else swap) + text[i + 1 :]
    if kind < 0.6:
        return text[:i] + text[i + 1 :]
    if kind < 0.8:
        return text[:i] + ch + text[i:]
    j = i + 1 if i + 1 < len(text) else i - 1
    a, b = sorted((i, j))
    return text[:a] + text[b] + text[a] + text[b + 1 :]


def hard_variant(records: pa.Table, seed: int) -> tuple[pa.Table, dict[str, int]]:
    """The seed records with every planted residents duplicate (cid 2000..2139) hardened: no
    e-mail and a changed name. Returns the records and the number of each kind of change."""
    rng, variants = random.Random(seed), name_variants()
    rows, kinds = records.to_pylist(), {}
    for row in rows:
        if row["source"] != "residents" or not 2000 <= int(row["source_key"]) <= 2139:
            continue
        first, last = row["firstname"] or "", row["lastname"] or ""
        options = variants.get(first.lower())
        kind = rng.choice(["nickname", "first", "last", "both"] if options else
                          ["first", "last", "both"])  # fmt: skip
        if kind == "nickname":
            first = rng.choice(sorted(options)).title()
        if kind in ("first", "both"):
            first = _typo(first, rng)
        if kind in ("last", "both"):
            last = _typo(last, rng)
        row.update(firstname=first, lastname=last, name=f"{first} {last}", email=None)
        kinds[kind] = kinds.get(kind, 0) + 1
    return pa.Table.from_pylist(rows, schema=records.schema), kinds


def profile_quality(clusters: pa.Table) -> tuple[float, float]:
    """(precision, recall) of the profiles' record pairs against the 140 planted pairs
    (residents 2000+i is dataverse i)."""
    row = arrow_query(
        """WITH found AS (
                SELECT a.source AS ls, a.source_key AS lk, b.source AS rs, b.source_key AS rk
                FROM c a JOIN c b ON a.unified_customer_id = b.unified_customer_id
                 AND (a.source, a.source_key) < (b.source, b.source_key)),
            truth AS (SELECT 'dataverse' AS ls, CAST(i AS VARCHAR) AS lk, 'residents' AS rs,
                             CAST(i + 2000 AS VARCHAR) AS rk FROM range(140) t(i))
           SELECT (SELECT count(*) FROM found) AS found,
                  (SELECT count(*) FROM found JOIN truth USING (ls, lk, rs, rk)) AS hits""",
        c=clusters.select(["source", "source_key", "unified_customer_id"]),
    ).to_pylist()[0]
    return row["hits"] / row["found"] if row["found"] else 1.0, row["hits"] / 140


def test_hard_variants_keep_recall_and_precision(spark):
    records = spark_to_arrow(seed_records(spark))
    config = load_config()
    baseline = profile_quality(resolve(records, config).clusters)
    assert baseline == (1.0, 1.0)  # the seed itself: every planted pair, nothing else
    for seed in (1, 2, 3):
        variant, kinds = hard_variant(records, seed)
        assert sum(kinds.values()) == 140 and len(kinds) >= 3
        precision, recall = profile_quality(resolve(variant, config).clusters)
        assert precision >= 0.995, (seed, precision, recall)
        assert recall >= 0.90, (seed, precision, recall)
