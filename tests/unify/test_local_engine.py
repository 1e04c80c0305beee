"""One definition, two engines: the whole resolution on one machine (local.resolve: DuckDB and
rapidfuzz over Arrow) writes exactly the tables Spark's unify writes, on the seed data plus a
few hand-made records that exercise every rule, an oversized block and carried ids."""

from __future__ import annotations

import pyarrow as pa
import pytest
from arrow_rows import sorted_rows
from unify_builders import rec, records_df, seed_records

from customer360.lakehouse.spark_arrow import spark_to_arrow
from customer360.unify import load_config, unify
from customer360.unify.local import resolve

pytestmark = pytest.mark.spark


def _extra(spark):
    rows = [
        rec(
            "residents",
            "x1",
            firstname="Ann",
            lastname="Lee",
            name="Ann Lee",
            email="ann.lee@x.com",
            dateofbirth="1980-03-07",
            telephone_e164="+15550001",
        ),
        rec(
            "residents",
            "x2",
            firstname="Anne",
            lastname="Lee",
            name="Anne Lee",
            email="ann.lee@x.com",
            dateofbirth="1980-07-03",
            telephone_e164="+15550001",
        ),
        rec(
            "residents",
            "x3",
            firstname="Zoë",
            lastname="O'Brien",
            name="Zoë O'Brien",
            dateofbirth="1975-01-02",
            modified_at="2024-01-01T00:00:00",
        ),
        rec(
            "residents",
            "x4",
            firstname="Zoe",
            lastname="OBrien",
            name=None,
            dateofbirth="1975-01-02",
            modified_at="2024-02-01T00:00:00",
        ),
    ]
    return records_df(spark, rows)


def test_local_resolution_equals_spark(spark):
    config = load_config()
    records = seed_records(spark).unionByName(_extra(spark)).cache()
    result = unify(records, config)
    table = spark_to_arrow(records)
    local = resolve(table, config)
    for name in ("scored", "pairs", "clusters", "links", "profile_pairs", "match_candidates",
                 "oversized_blocks", "profiles"):  # fmt: skip
        expected = spark_to_arrow(getattr(result, name))
        got = getattr(local, name).select(expected.column_names)
        assert got.num_rows == expected.num_rows, name
        assert sorted_rows(got) == sorted_rows(expected), name
    assert local.profiles.num_rows == 2002  # the seed's 2,000 profiles + two hand-made people

    # Carried ids: the previous links with one profile's id replaced keep that id.
    previous = spark_to_arrow(result.links)
    renamed = previous.set_column(
        0, "unified_customer_id",
        pa.array(["kept-id" if k in ("x1", "x2") else u for u, k in zip(
            previous["unified_customer_id"].to_pylist(), previous["source_key"].to_pylist(),
            strict=True)], pa.string()),
    )  # fmt: skip
    carried = resolve(table, config, previous_links=renamed)
    spark_carried = unify(records, config, previous_links=spark.createDataFrame(renamed))
    assert sorted_rows(carried.links) == sorted_rows(spark_to_arrow(spark_carried.links))
    assert "kept-id" in carried.links["unified_customer_id"].to_pylist()
    result.unpersist()
    spark_carried.unpersist()
    records.unpersist()
