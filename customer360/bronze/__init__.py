"""Bronze: landing files → append-only Delta tables (Dagster-free, no Spark).

Files are parsed into Arrow and written with delta-rs, so ingestion never starts a JVM. Each
partition (an export folder or a drop day) is a predicate overwrite of exactly that partition: a
retried or re-run partition converges. Rejected rows go to bronze/_rejected with file, line and
reason.
"""
