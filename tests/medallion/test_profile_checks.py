"""The figures behind gold/customer_profile's whole-table checks
(customer360.gold.checks.check_figures): each problem they look for, planted once, is counted
(no Spark)."""

from __future__ import annotations

import pyarrow as pa

from customer360.gold.checks import check_figures


def test_check_figures_count_each_planted_problem():
    profiles = pa.table(
        {
            "unified_customer_id": ["a", "b", "b", "c", "d"],  # b twice; d has no value segment
            "email": ["x@e.com", "x@e.com", None, "y@e.com", "x@e.com"],
        }
    )
    links = pa.table({"unified_customer_id": ["a", "b", "c", "d", "e"]})  # e: no profile
    segments = pa.table(
        {
            "unified_customer_id": ["a", "b", "c", "z", "d"],  # z: a segment without profile
            "segment_type": ["value_segment"] * 4 + ["age_band"],
        }
    )
    figures = check_figures(profiles, links, segments)
    assert figures == {
        "distinct_ids": 4,
        "linked_ids": 5,
        "segmented": 4,
        "unsegmented": 1,
        "orphans": 1,
        "sample": ["d", "z"],
        "sharing": 3,  # three profiles share x@e.com
    }
