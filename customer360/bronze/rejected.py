"""bronze/_rejected: every row a parser set aside, with its file, line, raw text and reason."""

from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa

from customer360.lakehouse import DeltaLake
from customer360.synapse_link import RejectedRow

REJECTED_TABLE = "_rejected"
# A reject's raw text and reason are stored up to this many bytes of UTF-8 (a 5 MB value or an
# unterminated quote swallowing a file must not bloat the table); longer ones are cut and marked.
MAX_STORED_BYTES = 64 * 1024
TRUNCATED_MARK = "… [truncated: {total} bytes in all]"
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source_table", pa.string()),
        pa.field("partition", pa.string()),
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("raw", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def write_rejected(
    lake: DeltaLake,
    table: str,
    partition: str,
    rejected: Iterable[RejectedRow],
    ingested_at: datetime,
) -> int:
    """Replace the rejects of (table, partition): a re-run of the partition converges."""
    rows = [
        {
            "source_table": table,
            "partition": partition,
            "file": r.file,
            "line": r.line,
            "raw": capped(r.raw),
            "reason": capped(r.reason),
            "ingested_at": ingested_at,
        }
        for r in rejected
    ]
    data = pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA)
    lake.replace_where(
        data, "bronze", REJECTED_TABLE, {"source_table": table, "partition": partition}
    )
    return len(rows)


def capped(text: str, limit: int = MAX_STORED_BYTES) -> str:
    """`text` if its UTF-8 is at most `limit` bytes, else its start and a mark saying so."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + TRUNCATED_MARK.format(total=len(data))
