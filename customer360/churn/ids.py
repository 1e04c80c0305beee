"""Tie KKBox members to customers: the msno of a customer is a deterministic hash of its id.

KKBox msno values are 44-character base64 strings (a 32-byte hash), e.g.
`waLDQMmcOu2jLDaV1ddDkgCrB/jl6sD66Xzs0Vqax1Y=`. `msno_for_customer` makes the same shape:
base64(SHA-256("customer360-kkbox:" + str(customer_id))). The Spark twin `msno_column` computes
the identical string inside Spark, so customers can be joined to predictions without a UDF.
"""

from __future__ import annotations

import base64
import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as F

#: Salt so a msno never equals a hash someone computed of the bare id for another purpose.
MSNO_SALT = "customer360-kkbox:"


def msno_for_customer(customer_id: int) -> str:
    """The msno (44-char base64, like KKBox's) of customer `customer_id`; stable across runs."""
    digest = hashlib.sha256(f"{MSNO_SALT}{int(customer_id)}".encode()).digest()
    return base64.b64encode(digest).decode("ascii")


def msno_column(customer_id: Column | str) -> Column:
    """Spark expression equal to `msno_for_customer` of an integer customer-id column."""
    cid = F.col(customer_id) if isinstance(customer_id, str) else customer_id
    text = F.concat(F.lit(MSNO_SALT), cid.cast("bigint").cast("string"))
    return F.base64(F.unhex(F.sha2(text, 256)))
