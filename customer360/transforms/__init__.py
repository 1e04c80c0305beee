"""Pure Spark transforms per layer: DataFrames in, DataFrames out; no I/O, no Dagster."""
