"""The lake database: gold Delta tables registered by name for SQL clients (Dagster-free)."""

from customer360.lake_database.duckdb_catalog import TableRegistration, register_tables

__all__ = ["TableRegistration", "register_tables"]
