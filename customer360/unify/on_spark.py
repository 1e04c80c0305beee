"""Run a rule written once over Arrow tables (DuckDB SQL, rapidfuzz, NumPy) on Spark partitions.

Each rule of the resolution is one function `tables → table` (customer360.unify.pair_scoring,
linking, survivorship). On one machine it runs on whole tables; on Spark, `map_groups` first
sends every row sharing the rule's key (a pair, a profile) to one partition, then runs the same
function on each partition with `mapInArrow`. The rule is only correct per key, so the function
gives on a partition exactly the rows it gives for those keys on the whole table: one
definition, two engines, nothing to keep equal by hand.

The output schema is the function's own: it is run once on empty inputs of the right types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from customer360.lakehouse.spark_arrow import arrow_schema_to_spark, spark_schema_to_arrow

ArrowRule = Callable[..., pa.Table]
_TAG = "_frame"


def map_groups(
    frames: Mapping[str, tuple[DataFrame, Sequence[str]]],
    rule: ArrowRule,
    partitions: int | None = None,
) -> DataFrame:
    """`rule(**tables)` on Spark: `frames` maps each argument name to (DataFrame, its key
    columns). Rows of all frames with equal keys (compared in order) meet in one partition,
    where `rule` gets each frame's rows as an Arrow table with the frame's own schema."""
    schemas = {name: spark_schema_to_arrow(df.schema) for name, (df, _) in frames.items()}
    empty = {name: schema.empty_table() for name, schema in schemas.items()}
    out_schema = rule(**empty).schema
    tagged = None
    for name, (df, keys) in frames.items():
        part = df.select(
            F.lit(name).alias(_TAG),
            *[F.col(k).cast("string").alias(f"_k{i}") for i, k in enumerate(keys)],
            F.struct(*[F.col(f"`{c}`") for c in df.columns]).alias(f"_{name}"),
        )
        tagged = part if tagged is None else tagged.unionByName(part, allowMissingColumns=True)
    assert tagged is not None
    width = max(len(keys) for _, keys in frames.values())
    by = [f"_k{i}" for i in range(width)]
    shuffled = tagged.repartition(partitions, *by) if partitions else tagged.repartition(*by)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return
        rows = pa.Table.from_batches(batches)
        tables = {}
        for name, schema in schemas.items():
            mine = rows.filter(pc.equal(rows[_TAG], name))
            column = mine[f"_{name}"].combine_chunks() if mine.num_rows else None
            tables[name] = (
                pa.Table.from_struct_array(column).cast(schema)
                if column is not None
                else schema.empty_table()
            )
        yield from rule(**tables).cast(out_schema).to_batches()

    return shuffled.mapInArrow(run, arrow_schema_to_spark(out_schema))


def map_rows(df: DataFrame, rule: Callable[[pa.Table], pa.Table]) -> DataFrame:
    """`rule(table)` on each partition as it is: for rules that look at one row at a time."""
    out_schema = rule(spark_schema_to_arrow(df.schema).empty_table()).schema

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows:
                yield from rule(pa.Table.from_batches([batch])).cast(out_schema).to_batches()

    return df.mapInArrow(run, arrow_schema_to_spark(out_schema))
