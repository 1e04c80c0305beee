"""Incremental resolution gives exactly the tables a full run gives.

The seed records (plus three records sharing an e-mail, to make a block cross max_block_size)
are resolved in full; then a second version with deletes (a merged record, an anchor, one of the
three), updates (breaking a match, making a match, an unrelated change) and an insert (joining
an existing pair) is resolved twice: in full, with the first run's links, and incrementally
from the first run's tables. Links (with ids), match pairs, review candidates and the block
index must be identical. A namesake born months from a changed record shares only
date-guarded blocks with it: the incremental run must not even read it.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from arrow_rows import sorted_rows
from pyspark.sql import functions as F
from unify_builders import rec, records_df, seed_records

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import load_config, unify
from customer360.unify.incremental import (
    changed_records,
    fingerprints,
    oversized_after_change,
    oversized_index_blocks,
    oversized_report,
)
from customer360.unify.pipeline import (
    PreviousResolution,
    build_index,
    max_block_sizes,
    unify_changes,
)
from customer360.unify.schema import PAIR_KEYS, RECORD_COLUMNS

pytestmark = pytest.mark.spark

SHARED = {"email": "family@example.com", "dateofbirth": "1980-05-05"}
TRIO = [  # one e-mail block of three: over email_dob's max_block_size of 2 (below)
    rec("residents", "8000", firstname="Ann", lastname="Lee", name="Ann Lee", **SHARED),
    rec("residents", "8001", firstname="Bob", lastname="Kay", name="Bob Kay", **SHARED),
    rec("residents", "8002", firstname="Cid", lastname="Moe", name="Cid Moe", **SHARED),
]
ZENO = {"firstname": "Zeno", "lastname": "Quill", "name": "Zeno Quill"}
NAMESAKES = [  # same name and birth year, dates of birth months apart: every shared block is
    # guarded by date_near (name_variant_near_dob, rare_name_near_dob); 7000 changes (city)
    rec("residents", "7000", dateofbirth="1970-03-01", postcode="11111", city="Ayr", **ZENO),
    rec("residents", "7001", dateofbirth="1970-07-15", **ZENO),
]


def _config():
    config = load_config()
    rules = list(config.rules)
    rules[0] = dataclasses.replace(rules[0], max_block_size=2)  # email_dob
    return dataclasses.replace(config, rules=tuple(rules))


def _key(source: str, key: str):
    return (F.col("source") == source) & (F.col("source_key") == key)


def _second_version(first):
    """Deletes, updates and an insert touching merged pairs, anchors and a crossing block."""
    gone = _key("dataverse", "5") | _key("dataverse", "0") | _key("residents", "8002")
    second = first.filter(~gone)
    # residents/2010 gets another e-mail and birthday: its match with dataverse/10 breaks.
    second = second.withColumns(
        {
            "email": F.when(_key("residents", "2010"), "moved@example.com").otherwise(
                F.col("email")
            ),
            "dateofbirth": F.when(_key("residents", "2010"), F.lit("1901-01-01").cast("date"))
            .when(_key("dataverse", "1218"), F.col("_dob_1239"))  # now matches 1239 (e-mail)
            .otherwise(F.col("dateofbirth")),
            "city": F.when(
                _key("dataverse", "100") | _key("residents", "7000"), "Elsewhere"
            ).otherwise(F.col("city")),
        }
    )
    # A new record copying dataverse/20: joins the pair dataverse/20 + residents/2020.
    twin = first.filter(_key("dataverse", "20")).withColumns(
        {"source": F.lit("residents"), "source_key": F.lit("9999")}
    )
    return second.unionByName(twin).select(*RECORD_COLUMNS)


def _fingerprints(records) -> pa.Table:
    rows = spark_to_arrow(records)
    parts = [
        fingerprints(rows.filter(pc.equal(rows["source"], s)), s, "source_key")
        for s in pc.unique(rows["source"]).to_pylist()
    ]
    return pa.concat_tables(parts)


def _tables(result) -> dict[str, pa.Table]:
    return {
        "links": spark_to_arrow(result.links),
        "pairs": spark_to_arrow(result.profile_pairs),
        "candidates": spark_to_arrow(result.match_candidates),
    }


def _apply(table: pa.Table, upserts: pa.Table, remove: pa.Table, keys: list[str]) -> pa.Table:
    def key(t):
        return pc.binary_join_element_wise(*[t[k].cast(pa.string()) for k in keys], "|")

    gone = pa.concat_arrays([key(remove).combine_chunks(), key(upserts).combine_chunks()])
    kept = table.filter(pc.invert(pc.is_in(key(table), gone)))
    return pa.concat_tables([kept, upserts.select(kept.column_names).cast(kept.schema)])


def test_incremental_resolution_equals_a_full_run(spark):
    config = _config()
    first = seed_records(spark).unionByName(records_df(spark, TRIO + NAMESAKES)).cache()
    dob_1239 = first.filter(_key("dataverse", "1239")).first().dateofbirth
    full_1 = unify(first, config)
    tables_1 = _tables(full_1)
    index_1 = build_index(full_1.keyed, _fingerprints(first), config)
    full_1.unpersist()

    second = _second_version(first.withColumn("_dob_1239", F.lit(dob_1239))).cache()
    full_2 = unify(second, config, spark.createDataFrame(tables_1["links"]))
    expected = _tables(full_2)
    expected_index = build_index(full_2.keyed, _fingerprints(second), config)
    full_2.unpersist()

    requested: list[set[tuple[str, str]]] = []

    def load(keys: pa.Table):
        sources, source_keys = keys["source"].to_pylist(), keys["source_key"].to_pylist()
        requested.append(set(zip(sources, source_keys, strict=True)))
        return second.join(spark.createDataFrame(keys), ["source", "source_key"], "left_semi")

    previous = PreviousResolution(
        index_1, tables_1["links"], tables_1["pairs"], tables_1["candidates"]
    )
    changes = unify_changes(load, _fingerprints(second), previous, config)
    assert changes.counts["changed"] == 8  # 3 deletes, 4 updates, 1 insert
    assert changes.counts["deleted"] == 3
    # The trio's e-mail block (now two) and dataverse/20's (now three, with its new twin).
    assert changes.counts["crossing_blocks"] == 2
    assert changes.counts["dirty"] == 5 + 2 + 2  # live changed + 8000, 8001 + dataverse/20, 2020
    # Pairs are guarded on the block index before records are read: the 5 live changed records,
    # then only the ends of pairs no cheap guard rules out — not residents/7001, 7000's partner.
    assert [len(keys) for keys in requested][:1] == [5] and len(requested) == 2
    assert ("residents", "7001") not in requested[1]
    assert 0 < changes.counts["partners_read"] < changes.counts["partners"]

    links = _apply(tables_1["links"], changes.link_upserts, changes.link_remove,
                   ["source", "source_key"])  # fmt: skip
    pairs = _apply(tables_1["pairs"], changes.pair_upserts, changes.pair_remove, list(PAIR_KEYS))
    candidates = _apply(tables_1["candidates"], changes.candidate_upserts,
                        changes.candidate_remove, list(PAIR_KEYS))  # fmt: skip
    index = _apply(index_1, changes.index_upserts, changes.index_remove, ["node"])
    assert sorted_rows(links) == sorted_rows(expected["links"])
    assert sorted_rows(pairs) == sorted_rows(expected["pairs"])
    assert sorted_rows(candidates) == sorted_rows(expected["candidates"])
    assert sorted_rows(index) == sorted_rows(expected_index)

    # The changes did what the scenario says (so the comparison above is not vacuous).
    by_record = {(r["source"], r["source_key"]): r for r in links.to_pylist()}
    assert (
        by_record[("dataverse", "1218")]["unified_customer_id"]
        == (by_record[("dataverse", "1239")]["unified_customer_id"])
    )
    assert by_record[("residents", "9999")]["cluster_size"] == 3
    assert by_record[("residents", "2010")]["cluster_size"] == 1
    assert by_record[("residents", "8000")]["matched_key"] == "8001"
    assert ("dataverse", "5") not in by_record
    # The seed's placeholder phone (2,070 records, one deleted) stays oversized; the trio's
    # block is now within email_dob's limit and dataverse/20's e-mail block is over it.
    phone = {"block": "4|0|+18015550100", "records": 2070}
    near_phone = {"block": "6|4|+18015550100", "records": 2070}  # name_variant_near_dob's pass
    trio = {"block": "0|0|family@example.com", "records": 3}
    twins = {"block": "0|0|alban.fusha@contoso.com", "records": 3}
    assert oversized_report(oversized_index_blocks(index_1, max_block_sizes(config))) == [
        phone,
        near_phone,
        trio,
    ]
    assert oversized_report(oversized_index_blocks(index, max_block_sizes(config))) == [
        {**phone, "records": 2069},
        {**near_phone, "records": 2069},
        twins,
    ]
    # The incremental run counts only the blocks the changed records touch: the same list.
    limits = max_block_sizes(config)
    changed = changed_records(index_1, _fingerprints(second))
    updated = oversized_after_change(
        oversized_index_blocks(index_1, limits), index_1, changes.index, changed, limits
    )
    assert sorted_rows(updated) == sorted_rows(oversized_index_blocks(index, limits))
    assert oversized_report(updated) == oversized_report(oversized_index_blocks(index, limits))
    first.unpersist()
    second.unpersist()
