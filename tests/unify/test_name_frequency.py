"""Name-frequency weighting (`max_value_count`): a rare full name agreeing counts for more than
a common one. `rare_name_near_dob` matches two records with the same first and last name and a
date of birth a slip away, with no address, phone or e-mail, only when at most 4 records carry
that name; a common name (more records) is never compared by it and is not reported as an
oversized block. `name_postcode_dob` takes the same name and postcode with a missing date of
birth, never a far-off one. Resolved on one machine (local.resolve; the Spark engine's equality
is tests/unify/test_local_engine.py)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
from unify_builders import rec

from customer360.unify import RECORD_COLUMNS, load_config
from customer360.unify.config import parse_config
from customer360.unify.local import resolve


def _table(rows: list[dict]) -> pa.Table:
    types = {"dateofbirth": pa.date32(), "modified_at": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in RECORD_COLUMNS])
    return pa.Table.from_pylist([{c: r[c] for c in RECORD_COLUMNS} for r in rows], schema=schema)


def _person(key: str, first: str, last: str, dob: str | None, postcode: str) -> dict:
    return rec("crm", key, firstname=first, lastname=last, name=f"{first} {last}",
               dateofbirth=dob, postcode=postcode)  # fmt: skip


def _profiles(rows: list[dict]):
    result = resolve(_table(rows), load_config())
    ids = dict(zip(result.clusters["source_key"].to_pylist(),
                   result.clusters["unified_customer_id"].to_pylist(), strict=True))  # fmt: skip
    return result, ids


def test_rare_name_counts_more_than_a_common_one():
    rows = [
        _person("r1", "Oswin", "Quarrie", "1980-03-07", "10001"),
        _person("r2", "Oswin", "Quarrie", "1980-03-08", "94107"),  # a day off, moved
        _person("r3", "Oswin", "Quarrie", "1980-04-20", "60601"),  # 44 days: a namesake
    ]
    # Six records named Anna Lee: common. Two of them a day apart, at different postcodes.
    rows += [_person(f"c{i}", "Anna", "Lee", f"19{50 + i * 7}-05-1{i}", f"2000{i}")
             for i in range(4)]  # fmt: skip
    rows += [_person("c8", "Anna", "Lee", "1990-01-01", "30301"),
             _person("c9", "Anna", "Lee", "1990-01-02", "73301")]  # fmt: skip
    result, ids = _profiles(rows)
    assert ids["r1"] == ids["r2"] != ids["r3"]
    assert ids["c8"] != ids["c9"]
    pair = result.pairs.filter(pa.compute.equal(result.pairs["left_key"], "r1")).to_pylist()
    assert [(p["right_key"], p["rule"], p["score"]) for p in pair] == [
        ("r2", "rare_name_near_dob", 0.89)
    ]
    scored = result.scored.to_pylist()
    assert not [s for s in scored if s["rule"] == "rare_name_near_dob" and s["l_lastname_key"]
                == "lee"]  # fmt: skip
    assert "anna" not in str(result.oversized_blocks.to_pylist())


def test_same_name_and_postcode_with_a_missing_or_far_date_of_birth():
    rows = [
        _person("p1", "Priya", "Raman", "1971-06-02", "98101"),
        _person("p2", "Priya", "Raman", None, "98101"),  # no date of birth: same person
        _person("s1", "Tomas", "Ekdahl", "1948-02-11", "55401"),
        _person("s2", "Tomas", "Ekdahl", "1979-09-30", "55401"),  # father and son
    ]
    result, ids = _profiles(rows)
    assert ids["p1"] == ids["p2"]
    assert ids["s1"] != ids["s2"]
    decided = {(r["left_key"], r["right_key"]): r["rule"] for r in result.pairs.to_pylist()}
    assert decided == {("p1", "p2"): "name_postcode_dob"}


def test_max_value_count_is_a_frequency_limit():
    rules = load_config().rules
    rare = next(r for r in rules if r.name == "rare_name_near_dob")
    assert (rare.max_block_size, rare.counts_values) == (4, True)
    assert not any(r.counts_values for r in rules if r.name != "rare_name_near_dob")
    raw = {"id_namespace": "a23debe6-9f4e-572c-86b9-e39666dbe4d9",
           "sources": [{"name": "crm"}],
           "matching": {"rules": [{"name": "r", "blocking": [["name_key"]],
                                   "require_equal": ["name_key"], "max_value_count": 1}]},
           "survivorship": {"groups": [dataclasses.asdict(g) for g in
                                       load_config().survivorship.groups]}}  # fmt: skip
    with pytest.raises(ValueError, match="max_block_size must be at least 2"):
        parse_config(raw, "test.yaml")


def test_the_identity_metadata_does_not_report_a_common_name_as_oversized():
    """The identity asset lists oversized blocks from the block index (oversize_limits): the
    frequency rule's passes are left out, every other pass keeps its max_block_size."""
    from customer360.unify.match import block_passes
    from customer360.unify.pipeline import max_block_sizes, oversize_limits

    config = load_config()
    frequency_passes = {
        name for name, rank, *_ in block_passes(config.rules) if config.rules[rank].counts_values
    }
    assert frequency_passes, "the default rules have a max_value_count rule"
    limits = oversize_limits(config)
    assert set(limits) == set(max_block_sizes(config)) - frequency_passes
    assert all(limits[name] == max_block_sizes(config)[name] for name in limits)
