"""Entity-resolution benchmark: N records from three sources, a share of them planted duplicates
of other records carrying realistic errors; resolves them end to end and prints the time, the
pairs compared and the pair and profile precision / recall / F1 against the planted truth.

People: names drawn from the seed files' 1,766 first and 1,714 last names with a Zipf-like skew
(namesakes are common; names with a nickname drawn 1.5× as often), birth dates 1940-2005,
unique mailboxes, 85 % with a phone, 2 % living in a household with the previous person (same
last name, phone, address and family mailbox).
Duplicates (another source 80 %, the same source 20 %; some people get several):
- names: a nickname swap 8 % of those with a nickname (Robert → Bob, from PyPI `nicknames`), a
  keying error in the first name 25 % / last name 25 % (10 % of them in the first letter),
  upper case 10 %;
- the hard kind, 5 %: the e-mail lost and the name changed (a nickname 50 % or typos, 30 % of
  them in the first letter);
- another mailbox 25 % / a mistyped one 10 % / none 10 %, another phone 30 % / none 15 %,
  moved 40 %, date of birth with day and month swapped 4 % / off by 1 or 10 days 4 % /
  missing 2 %.

`--engine local` (default) runs customer360.unify.local.resolve (DuckDB on this machine),
`--engine spark` runs customer360.unify.unify on a local Spark session; both from the same
rule definitions. `--peer splink` also runs a Splink baseline model (DuckDB backend) on the
same records and prints its row.

Usage: python bench/unify.py [--records 1000000] [--dup-rate 0.15] [--engine local|spark]
                             [--peer splink] [--cores N] [--driver-memory 6g] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import resource
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from nicknames import NickNamer

from customer360.lakehouse.arrow_sql import arrow_query
from customer360.unify import RECORD_COLUMNS, load_config

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "customer360" / "sample_data"
SOURCES = ("crm", "erp", "web")
SOURCE_WEIGHTS = (0.5, 0.3, 0.2)
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "contoso.com", "fabrikam.com", "icloud.com")
GENDERS = ("female", "male", "non_binary")
KEYBOARD_NEIGHBOURS = {
    "a": "qsz", "b": "vgn", "c": "xdv", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht",
    "h": "gjy", "i": "uok", "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh",
    "o": "ipl", "p": "ol", "q": "wa", "r": "eft", "s": "adw", "t": "rgy", "u": "yij",
    "v": "cbf", "w": "qes", "x": "zcs", "y": "tuh", "z": "xa",
}  # fmt: skip
START = dt.date(1940, 1, 1).toordinal()
SPAN = dt.date(2005, 12, 31).toordinal() - START
MODIFIED_START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC).timestamp()
SCHEMA = pa.schema(
    [pa.field(c, pa.string()) for c in RECORD_COLUMNS[:-2]]
    + [
        pa.field("dateofbirth", pa.date32()),
        pa.field("modified_at", pa.timestamp("us", tz="UTC")),
        pa.field("entity", pa.int64()),
    ]
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _seed_pools() -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    firsts, lasts, places = set(), set(), set()
    for name in ("customer.csv", "residents_adls.csv"):
        with open(SAMPLE_DATA / name, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                firsts.add(row["FirstName"].strip())
                if row["LastName"].strip():
                    lasts.add(row["LastName"].strip())
                if row["City"].strip():
                    places.add((row["City"].strip(), row["State"], row["PostCode"]))
    return sorted(firsts), sorted(lasts), sorted(places)


def typo(text: str, rng: random.Random, first_letter: float = 0.0) -> str:
    """One realistic keying error: neighbour key, dropped, doubled or swapped letters; with
    probability `first_letter` the error hits the first letter (which defeats blocking on a
    name's first letters)."""
    if len(text) < 3:
        return text
    i = 0 if rng.random() < first_letter else rng.randrange(1, len(text) - 1)
    kind = rng.random()
    ch = text[i]
    if kind < 0.35 and ch.lower() in KEYBOARD_NEIGHBOURS:
        return text[:i] + rng.choice(KEYBOARD_NEIGHBOURS[ch.lower()]) + text[i + 1 :]
    if kind < 0.6:
        return text[:i] + text[i + 1 :]
    if kind < 0.8:
        return text[:i] + ch + text[i:]
    if i == 0:
        return text[1] + text[0] + text[2:]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def _phone(rng: random.Random) -> tuple[str, str]:
    area, exchange, line = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return f"{area}-{exchange}-{line:04d}", f"+1{area}{exchange}{line:04d}"


@dataclass
class _Pools:
    firsts: list[str]
    lasts: list[str]
    places: list[tuple[str, str, str]]
    first_weights: list[float]
    last_weights: list[float]
    variants: dict[str, list[str]]  # lower-case first name → its nicknames / full forms


def _pools(rng: random.Random) -> _Pools:
    firsts, lasts, places = _seed_pools()
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    namer = NickNamer()
    variants = {}
    for name in firsts:
        found = namer.nicknames_of(name.lower()) | namer.canonicals_of(name.lower())
        if found:
            variants[name.lower()] = sorted(found)
    # Popular names are much more common than rare ones (Zipf-like), as in real customer bases.
    # Names with a nickname are drawn a little more often, as in an English-speaking market.
    return _Pools(
        firsts, lasts, places,
        [(1.5 if n.lower() in variants else 1) / (i + 1) ** 0.7 for i, n in enumerate(firsts)],
        [1 / (i + 1) ** 0.7 for i in range(len(lasts))],
        variants,
    )  # fmt: skip


def _person(rng: random.Random, pools: _Pools, first: str, last: str, used: set[str]) -> dict:
    city, state, postcode = rng.choice(pools.places)
    phone, e164 = _phone(rng) if rng.random() < 0.85 else (None, None)
    # A mailbox belongs to one person: namesakes get a number, as providers insist.
    local = f"{_ascii(first)}.{_ascii(last)}" + (
        str(rng.randint(1, 99)) if rng.random() < 0.6 else ""
    )
    domain = rng.choice(DOMAINS)
    while f"{local}@{domain}" in used:
        local = f"{_ascii(first)}.{_ascii(last)}{rng.randint(100, 9999)}"
    used.add(f"{local}@{domain}")
    modified = MODIFIED_START + rng.randrange(10 * 365 * 86400)
    return {
        "firstname": first, "lastname": last, "name": f"{first} {last}",
        "gender": rng.choice(GENDERS), "email": f"{local}@{domain}",
        "telephone": phone, "telephone_e164": e164,
        "country": "United States", "country_code": "US",
        "city": city, "state": state, "postcode": postcode,
        "streetaddress": f"{rng.randint(1, 9999)} {rng.choice(pools.lasts)} Street",
        "dateofbirth": dt.date.fromordinal(START + rng.randrange(SPAN)),
        "modified_at": dt.datetime.fromtimestamp(modified, dt.UTC),
    }  # fmt: skip


def _household(values: dict, previous: dict) -> dict:
    """Another person at the previous person's address: same last name, phone and family
    mailbox, a different first name and date of birth."""
    shared = ("lastname", "email", "telephone", "telephone_e164", "city", "state", "postcode",
              "streetaddress")  # fmt: skip
    values = {**values, **{c: previous[c] for c in shared}}
    values["name"] = f"{values['firstname']} {values['lastname']}"
    return values


def _changed_name(copy: dict, rng: random.Random, pools: _Pools, hard: bool) -> None:
    """Keying errors in the names (hard: at least one change, first letters more often)."""
    first, last = copy["firstname"], copy["lastname"]
    variants = pools.variants.get(first.lower())
    if variants and rng.random() < (0.5 if hard else 0.08):
        first = rng.choice(variants).title()  # a nickname swap: Robert → Bob
    elif rng.random() < (0.6 if hard else 0.25):
        first = typo(first, rng, first_letter=0.3 if hard else 0.1)
    if rng.random() < (0.5 if hard else 0.25) or (hard and first == copy["firstname"]):
        last = typo(last, rng, first_letter=0.3 if hard else 0.1)
    if rng.random() < 0.1:
        first, last = first.upper(), last.upper()
    copy.update(firstname=first, lastname=last, name=f"{first} {last}")


def _duplicate(copy: dict, rng: random.Random, pools: _Pools) -> dict:
    """A planted duplicate of `copy` (the original's values) with realistic errors."""
    # The hard kind: the e-mail is lost and the name changed (nickname or typos).
    hard = rng.random() < 0.05
    _changed_name(copy, rng, pools, hard)
    roll = 0.4 if hard else rng.random()
    if roll < 0.25:  # a different address book entry
        copy["email"] = f"{_ascii(copy['firstname'])}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
    elif roll < 0.35:
        local, domain = copy["email"].split("@")
        copy["email"] = f"{typo(local, rng)}@{domain}"
    elif roll < 0.45:
        copy["email"] = None
    roll = rng.random()
    if roll < 0.3:
        copy["telephone"], copy["telephone_e164"] = _phone(rng)
    elif roll < 0.45:
        copy["telephone"], copy["telephone_e164"] = None, None
    if rng.random() < 0.4:
        copy["city"], copy["state"], copy["postcode"] = rng.choice(pools.places)
    dob: dt.date = copy["dateofbirth"]
    roll = rng.random()
    if roll < 0.04 and dob.day <= 12 and dob.day != dob.month:
        copy["dateofbirth"] = dob.replace(month=dob.day, day=dob.month)
    elif roll < 0.08:
        copy["dateofbirth"] = dob + dt.timedelta(days=rng.choice((-10, -1, 1, 10)))
    elif roll < 0.1:
        copy["dateofbirth"] = None
    copy["modified_at"] = copy["modified_at"] + dt.timedelta(days=rng.randint(1, 900))
    return copy


def generate(records: int, dup_rate: float, seed: int) -> tuple[pa.Table, int]:
    """Records with an `entity` column (the truth). Returns (table, planted duplicates)."""
    rng = random.Random(seed)
    pools = _pools(rng)
    duplicates = int(records * dup_rate)
    people = records - duplicates
    first_of = rng.choices(pools.firsts, pools.first_weights, k=people)
    last_of = rng.choices(pools.lasts, pools.last_weights, k=people)
    rows: list[dict] = []
    counters = dict.fromkeys(SOURCES, 0)

    def add(entity: int, source: str, values: dict) -> None:
        counters[source] += 1
        key = f"{source[0]}{counters[source]:08d}"
        rows.append({**values, "source": source, "source_key": key, "entity": entity})

    used_emails: set[str] = set()
    for entity in range(people):
        values = _person(rng, pools, first_of[entity], last_of[entity], used_emails)
        if entity and rng.random() < 0.02:
            values = _household(values, rows[entity - 1])
        add(entity, rng.choices(SOURCES, SOURCE_WEIGHTS)[0], values)
    for _ in range(duplicates):
        entity = rng.randrange(people)  # row `entity` is its original
        copy = _duplicate({c: rows[entity][c] for c in RECORD_COLUMNS}, rng, pools)
        original = rows[entity]["source"]
        others = [s for s in SOURCES if s != original]
        add(entity, original if rng.random() < 0.2 else rng.choice(others), copy)
    columns = {c: [r.get(c) for r in rows] for c in SCHEMA.names}
    return pa.table(columns, schema=SCHEMA), duplicates


def quality(truth: pa.Table, pairs: pa.Table, clusters: pa.Table) -> dict:
    """Pair and profile precision / recall / F1 against the planted entities. `truth`: source,
    source_key, entity; `pairs`: matched pairs (PAIR_KEYS, either orientation); `clusters`:
    source, source_key, a cluster column `cluster`."""
    row = arrow_query(
        """WITH t AS (SELECT source || '/' || source_key AS n, entity FROM truth),
            truth_pairs AS (SELECT count(*) * (count(*) - 1) / 2 AS k FROM t GROUP BY entity),
            p AS (SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b FROM (
                    SELECT left_source || '/' || left_key AS a,
                           right_source || '/' || right_key AS b FROM pairs)),
            c AS (SELECT source || '/' || source_key AS n, cluster FROM clusters),
            cp AS (SELECT count(*) * (count(*) - 1) / 2 AS k,
                          count(DISTINCT cluster) AS clusters FROM c GROUP BY cluster),
            ctp AS (SELECT count(*) * (count(*) - 1) / 2 AS k
                    FROM c JOIN t USING (n) GROUP BY cluster, entity)
           SELECT (SELECT sum(k) FROM truth_pairs) AS truth,
                  (SELECT count(*) FROM p) AS pairs,
                  (SELECT count(*) FROM p JOIN t ta ON ta.n = p.a JOIN t tb ON tb.n = p.b
                   WHERE ta.entity = tb.entity) AS pair_tp,
                  (SELECT sum(k) FROM cp) AS profile_pairs,
                  (SELECT sum(k) FROM ctp) AS profile_tp""",
        truth=truth, pairs=pairs, clusters=clusters,
    ).to_pylist()[0]  # fmt: skip

    def prf(tp: float, found: float, truth_count: float) -> dict:
        precision = tp / found if found else 1.0
        recall = tp / truth_count if truth_count else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}

    return {
        "pairs": prf(row["pair_tp"], row["pairs"], row["truth"]),
        "profiles": prf(row["profile_tp"], row["profile_pairs"], row["truth"]),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_local(table: pa.Table) -> tuple[float, dict, dict]:
    from customer360.unify.local import resolve

    started, cpu = time.perf_counter(), _cpu_seconds()
    result = resolve(table.drop_columns(["entity"]), load_config())
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    matched = result.scored.filter(pc.equal(result.scored["decision"], "match"))
    clusters = result.clusters.select(["source", "source_key", "unified_customer_id"])
    figures = {
        "cpu_seconds": round(cpu, 1),  # all threads: on a shared machine, the work done
        "phases": result.seconds,
        "pairs_compared": result.scored.num_rows,
        "matched_pairs": result.pairs.num_rows,
        "profile_count": result.profiles.num_rows,
        "review_candidates": result.match_candidates.num_rows,
        "oversized_blocks": result.oversized_blocks.num_rows,
    }
    truth = table.select(["source", "source_key", "entity"])
    return elapsed, figures, quality(truth, matched, clusters.rename_columns(
        ["source", "source_key", "cluster"]))  # fmt: skip


def run_spark(table: pa.Table, cores: str, driver_memory: str) -> tuple[float, dict, dict]:
    from customer360.lakehouse.spark_arrow import spark_to_arrow
    from customer360.sparkconf import build_local_session
    from customer360.unify import unify

    spark = build_local_session("bench-unify", cores=cores, driver_memory=driver_memory)
    spark.conf.set("spark.sql.shuffle.partitions", "16")
    data = spark.createDataFrame(table).repartition(16).cache()
    data.count()
    started = time.perf_counter()
    result = unify(data.drop("entity"), load_config())
    for frame in (result.profiles, result.links, result.match_candidates):
        frame.write.format("noop").mode("overwrite").save()
    elapsed = time.perf_counter() - started
    matched = spark_to_arrow(result.scored.filter("decision = 'match'").select(
        "left_source", "left_key", "right_source", "right_key"))  # fmt: skip
    clusters = spark_to_arrow(result.clusters.select("source", "source_key", "unified_customer_id"))
    figures = {"matched_pairs": matched.num_rows}
    truth = table.select(["source", "source_key", "entity"])
    out = quality(truth, matched, clusters.rename_columns(["source", "source_key", "cluster"]))
    result.unpersist()
    spark.stop()
    return elapsed, figures, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dup-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engine", choices=("local", "spark"), default="local")
    parser.add_argument("--peer", choices=("splink",), default=None)
    parser.add_argument("--cores", default="*")
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args()

    started = time.perf_counter()
    table, planted = generate(args.records, args.dup_rate, args.seed)
    generated = time.perf_counter() - started
    rows = []
    if args.engine == "local":
        elapsed, figures, scores = run_local(table)
    else:
        elapsed, figures, scores = run_spark(table, args.cores, args.driver_memory)
    rows.append({"engine": f"customer360 ({args.engine})", "seconds": round(elapsed, 1),
                 **scores, **figures})  # fmt: skip
    if args.peer == "splink":
        from splink_peer import run_splink

        elapsed, figures, matched, clusters = run_splink(table)
        truth = table.select(["source", "source_key", "entity"])
        rows.append({"engine": "splink (duckdb)", "seconds": round(elapsed, 1),
                     **quality(truth, matched, clusters), **figures})  # fmt: skip
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
                "records": args.records,
                "planted_duplicates": planted,
                "generate_seconds": round(generated, 1),
                "rows": rows,
            },
            indent=1,
            default=str,
        )
    )
    print("engine | seconds | pairs P / R / F1 | profiles P / R / F1")
    for row in rows:
        p, q = row["pairs"], row["profiles"]
        print(f"{row['engine']} | {row['seconds']} | {p['precision']} / {p['recall']} / "
              f"{p['f1']} | {q['precision']} / {q['recall']} / {q['f1']}")  # fmt: skip


if __name__ == "__main__":
    main()
