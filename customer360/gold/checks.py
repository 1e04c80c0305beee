"""The figures gold/customer_profile's checks compare, over the whole tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from customer360.lakehouse import DeltaLake
from customer360.lakehouse.arrow_sql import arrow_query
from customer360.transforms.profile import UNIFIED_ID


def lake_check_figures(
    lake: DeltaLake,
    profiles: pa.Table,
    links: pa.Table | None = None,
    segments: pa.Table | None = None,
) -> dict[str, Any]:
    """check_figures of the profile rows and the link and segment tables: those given (as the
    build read or committed them), the others read now."""
    if links is None:
        links = lake.read_arrow("gold", "customer_source_link", columns=[UNIFIED_ID])
    if segments is None:
        segments = lake.read_arrow(
            "gold", "customer_segments", columns=[UNIFIED_ID, "segment_type"]
        )
    return check_figures(
        profiles, links.select([UNIFIED_ID]), segments.select([UNIFIED_ID, "segment_type"])
    )


def check_figures(profiles: pa.Table, links: pa.Table, segments: pa.Table) -> dict[str, Any]:
    """distinct_ids, linked_ids, segmented, unsegmented, orphans, sample and sharing (profiles
    that share an e-mail), in one multi-threaded DuckDB query (pyarrow's single-threaded set
    operations on a million ids took seconds)."""
    return arrow_query(
        f"""WITH v AS (SELECT {UNIFIED_ID} AS id FROM seg WHERE segment_type = 'value_segment'),
                 missing AS (SELECT p.{UNIFIED_ID} AS id FROM prof p
                             ANTI JOIN v ON p.{UNIFIED_ID} = v.id),
                 orphans AS (SELECT v.id FROM v ANTI JOIN prof p ON p.{UNIFIED_ID} = v.id),
                 shared AS (SELECT count(*) AS n FROM prof WHERE email IS NOT NULL
                            GROUP BY email HAVING count(*) > 1)
            SELECT (SELECT count(DISTINCT {UNIFIED_ID}) FROM prof) AS distinct_ids,
                   (SELECT count(DISTINCT {UNIFIED_ID}) FROM links) AS linked_ids,
                   (SELECT count(DISTINCT id) FROM v) AS segmented,
                   (SELECT count(*) FROM missing) AS unsegmented,
                   (SELECT count(*) FROM orphans) AS orphans,
                   (SELECT list(id ORDER BY id)[1:5] FROM missing)
                       || (SELECT list(id ORDER BY id)[1:5] FROM orphans) AS sample,
                   (SELECT coalesce(sum(n), 0) FROM shared) AS sharing""",
        prof=profiles.select([UNIFIED_ID, "email"]),
        links=links,
        seg=segments,
    ).to_pylist()[0]
