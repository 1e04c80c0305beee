"""Silver: customer history (SCD2), current customers with their quarantine, and monthly finance.

Dagster-free: each module plans its run (full or incremental, see
customer360.lakehouse.incremental), does it, and returns what the asset reports. The assets in
assets/silver.py only declare and report.
"""
