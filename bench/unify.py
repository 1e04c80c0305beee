"""Entity-resolution benchmark: N records from three sources, a share of them planted duplicates
of other records carrying realistic typos; runs customer360.unify end to end and prints the
time, the pairs compared and the precision / recall against the planted truth.

People: names drawn from the seed files' 1,766 first and 1,714 last names with a Zipf-like skew
(namesakes are common), birth dates 1940-2005, unique mailboxes, 85 % with a phone, 2 % living in
a household with the previous person (same last name, phone, address and family mailbox).
Duplicates (another source 80 %, the same source 20 %; some people get several): a keying error
in the first name 25 % / last name 25 %, upper case 10 %, another mailbox 25 % / a mistyped one
10 % / none 10 %, another phone 30 % / none 15 %, moved 40 %, date of birth with day and month
swapped 4 % / off by 1 or 10 days 4 % / missing 2 %.

Usage: python bench/unify.py [--records 1000000] [--dup-rate 0.15] [--cores N]
                             [--driver-memory 6g] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import random
import time
import unicodedata
from pathlib import Path

import pyarrow as pa

from customer360.sparkconf import build_local_session
from customer360.unify import (
    RECORD_COLUMNS,
    cluster_pairs,
    evaluate,
    load_config,
    quality_figures,
    truth_pairs_from_entities,
    unify,
)

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


def typo(text: str, rng: random.Random) -> str:
    """One realistic keying error: neighbour key, dropped, doubled or swapped letters."""
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.random()
    ch = text[i]
    if kind < 0.35 and ch.lower() in KEYBOARD_NEIGHBOURS:
        return text[:i] + rng.choice(KEYBOARD_NEIGHBOURS[ch.lower()]) + text[i + 1 :]
    if kind < 0.6:
        return text[:i] + text[i + 1 :]
    if kind < 0.8:
        return text[:i] + ch + text[i:]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def _phone(rng: random.Random) -> tuple[str, str]:
    area, exchange, line = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return f"{area}-{exchange}-{line:04d}", f"+1{area}{exchange}{line:04d}"


def generate(records: int, dup_rate: float, seed: int) -> tuple[pa.Table, int]:
    """Records with an `entity` column (the truth). Returns (table, planted duplicates)."""
    rng = random.Random(seed)
    firsts, lasts, places = _seed_pools()
    # Popular names are much more common than rare ones (Zipf-like), as in real customer bases.
    first_weights = [1 / (i + 1) ** 0.7 for i in range(len(firsts))]
    last_weights = [1 / (i + 1) ** 0.7 for i in range(len(lasts))]
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    duplicates = int(records * dup_rate)
    people = records - duplicates
    first_of = rng.choices(firsts, first_weights, k=people)
    last_of = rng.choices(lasts, last_weights, k=people)
    start = dt.date(1940, 1, 1).toordinal()
    span = dt.date(2005, 12, 31).toordinal() - start
    modified_start = dt.datetime(2015, 1, 1, tzinfo=dt.UTC).timestamp()
    columns: dict[str, list] = {c: [] for c in (*RECORD_COLUMNS, "entity")}
    counters = dict.fromkeys(SOURCES, 0)

    def add(entity: int, source: str, values: dict) -> None:
        counters[source] += 1
        values = {**values, "source": source, "source_key": f"{source[0]}{counters[source]:08d}"}
        values["entity"] = entity
        for column in columns:
            columns[column].append(values.get(column))

    used_emails: set[str] = set()
    for entity in range(people):
        first, last = first_of[entity], last_of[entity]
        city, state, postcode = rng.choice(places)
        phone, e164 = _phone(rng) if rng.random() < 0.85 else (None, None)
        # A mailbox belongs to one person: namesakes get a number, as providers insist.
        local = f"{_ascii(first)}.{_ascii(last)}" + (
            str(rng.randint(1, 99)) if rng.random() < 0.6 else ""
        )
        domain = rng.choice(DOMAINS)
        while f"{local}@{domain}" in used_emails:
            local = f"{_ascii(first)}.{_ascii(last)}{rng.randint(100, 9999)}"
        email = f"{local}@{domain}"
        used_emails.add(email)
        street = f"{rng.randint(1, 9999)} {rng.choice(lasts)} Street"
        if entity and rng.random() < 0.02:
            # A household: another person at the same address, with the same last name, phone
            # and family mailbox (a different first name and date of birth).
            previous = entity - 1
            last = columns["lastname"][previous]
            email = columns["email"][previous]
            phone, e164 = columns["telephone"][previous], columns["telephone_e164"][previous]
            city, state = columns["city"][previous], columns["state"][previous]
            postcode, street = columns["postcode"][previous], columns["streetaddress"][previous]
        values = {
            "firstname": first,
            "lastname": last,
            "name": f"{first} {last}",
            "gender": rng.choice(GENDERS),
            "email": email,
            "telephone": phone,
            "telephone_e164": e164,
            "country": "United States",
            "country_code": "US",
            "city": city,
            "state": state,
            "postcode": postcode,
            "streetaddress": street,
            "dateofbirth": dt.date.fromordinal(start + rng.randrange(span)),
            "modified_at": dt.datetime.fromtimestamp(
                modified_start + rng.randrange(10 * 365 * 86400), dt.UTC
            ),
        }
        add(entity, rng.choices(SOURCES, SOURCE_WEIGHTS)[0], values)
    originals_source = list(columns["source"])
    for _ in range(duplicates):
        entity = rng.randrange(people)
        copy = {c: columns[c][entity] for c in RECORD_COLUMNS}  # row `entity` is its original
        first, last = copy["firstname"], copy["lastname"]
        if rng.random() < 0.25:
            first = typo(first, rng)
        if rng.random() < 0.25:
            last = typo(last, rng)
        if rng.random() < 0.1:
            first, last = first.upper(), last.upper()
        copy.update(firstname=first, lastname=last, name=f"{first} {last}")
        roll = rng.random()
        if roll < 0.25:  # a different address book entry
            copy["email"] = f"{_ascii(first)}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
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
            copy["city"], copy["state"], copy["postcode"] = rng.choice(places)
        dob: dt.date = copy["dateofbirth"]
        roll = rng.random()
        if roll < 0.04 and dob.day <= 12 and dob.day != dob.month:
            copy["dateofbirth"] = dob.replace(month=dob.day, day=dob.month)
        elif roll < 0.08:
            copy["dateofbirth"] = dob + dt.timedelta(days=rng.choice((-10, -1, 1, 10)))
        elif roll < 0.1:
            copy["dateofbirth"] = None
        copy["modified_at"] = copy["modified_at"] + dt.timedelta(days=rng.randint(1, 900))
        original = originals_source[entity]
        others = [s for s in SOURCES if s != original]
        source = original if rng.random() < 0.2 else rng.choice(others)
        add(entity, source, copy)
    schema = pa.schema(
        [pa.field(c, pa.string()) for c in RECORD_COLUMNS[:-2]]
        + [
            pa.field("dateofbirth", pa.date32()),
            pa.field("modified_at", pa.timestamp("us", tz="UTC")),
            pa.field("entity", pa.int64()),
        ]
    )
    return pa.table(columns, schema=schema), duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dup-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cores", default="*")
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args()

    started = time.perf_counter()
    table, planted = generate(args.records, args.dup_rate, args.seed)
    generated = time.perf_counter() - started
    spark = build_local_session("bench-unify", cores=args.cores, driver_memory=args.driver_memory)
    spark.conf.set("spark.sql.shuffle.partitions", "16")
    data = spark.createDataFrame(table).repartition(16).cache()
    data.count()
    records = data.drop("entity")
    config = load_config()

    started = time.perf_counter()
    result = unify(records, config)
    for frame in (result.profiles, result.links, result.match_candidates):
        frame.write.format("noop").mode("overwrite").save()
    elapsed = time.perf_counter() - started

    figures = quality_figures(result.scored, result.pairs, result.clusters, result.match_candidates)
    truth = truth_pairs_from_entities(data, "entity")
    pairs_quality = evaluate(result.scored.filter("decision = 'match'"), truth)
    profile_quality = evaluate(cluster_pairs(result.clusters), truth)
    entities = data.select("entity").distinct().count()
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, Spark {spark.sparkContext.master}, "
                f"Python {platform.python_version()}",
                "records": args.records,
                "planted_duplicates": planted,
                "real_people": entities,
                "generate_seconds": round(generated, 1),
                "unify_seconds": round(elapsed, 1),
                "pairs_compared": figures["pairs_compared"],
                "pairs_compared_per_rule": figures["pairs_compared_per_rule"],
                "matched_pairs": figures["matched_pairs"],
                "profiles": figures["profiles"],
                "review_candidates": figures["review_candidates"],
                "profile_sizes": figures["profile_sizes"],
                "pair_precision": pairs_quality["precision"],
                "pair_recall": pairs_quality["recall"],
                "per_rule": pairs_quality["per_rule"],
                "profile_precision": profile_quality["precision"],
                "profile_recall": profile_quality["recall"],
                "profile_f1": profile_quality["f1"],
                "false_positive_sample": profile_quality["false_positive_sample"][:5],
                "false_negative_sample": profile_quality["false_negative_sample"][:5],
            },
            indent=1,
            default=str,
        )
    )
    result.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
