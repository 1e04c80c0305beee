"""Column names shared by every unify step (records in; pairs, clusters, profiles out)."""

from __future__ import annotations

import re

# Standardised attributes of a record (the silver columns of every source, after
# customer360.transforms.customer.standardize_customers). dateofbirth is a date, the rest strings.
RECORD_ATTRIBUTES = (
    "firstname", "lastname", "name", "gender", "email", "telephone", "telephone_e164",
    "country", "country_code", "city", "state", "postcode", "streetaddress", "dateofbirth",
)  # fmt: skip
# `records`: one row per source record. modified_at (timestamp, may be null) drives most_recent.
RECORD_COLUMNS = ("source", "source_key", *RECORD_ATTRIBUTES, "modified_at")
RECORD_DDL = (
    "source string, source_key string, firstname string, lastname string, name string, "
    "gender string, email string, telephone string, telephone_e164 string, country string, "
    "country_code string, city string, state string, postcode string, streetaddress string, "
    "dateofbirth date, modified_at timestamp"
)

# Pair orientation: the left record is the smaller (source, source_key).
PAIR_KEYS = ("left_source", "left_key", "right_source", "right_key")

# A source name goes into node ids and unified ids as `source/key`, so it must not contain `/`
# or control characters; this keeps (source, key) ↔ `source/key` one-to-one and ordered alike.
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Separates source and key in the internal node id. It sorts before every character a source name
# may hold, so ordering node ids as strings orders (source, source_key) tuples.
NODE_SEPARATOR = "\x1f"


def check_source_name(name: str) -> str:
    if not isinstance(name, str) or not SOURCE_NAME.match(name):
        raise ValueError(
            f"source name {name!r} is invalid: use letters, digits, '_', '.' or '-' only"
        )
    return name
