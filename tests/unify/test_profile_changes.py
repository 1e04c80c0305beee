"""Which profiles an incremental gold run re-derives, and the cross-profile e-mail flag
(customer360.transforms.profile_changes: Arrow in and out, no Spark)."""

import pyarrow as pa

from customer360.transforms.profile_changes import duplicate_email_flags, profile_changes
from customer360.unify.schema import NODE_SEPARATOR

UID = "unified_customer_id"


def _links(rows: list[tuple[str, str, str]]) -> pa.Table:
    return pa.table(
        {UID: [r[0] for r in rows], "source": [r[1] for r in rows],
         "source_key": [r[2] for r in rows]}
    )  # fmt: skip


def _index(rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.table(
        {"node": [f"{s}{NODE_SEPARATOR}{k}" for s, k, _ in rows],
         "rec_hash": pa.array([h for *_, h in rows], pa.int64())}
    )  # fmt: skip


def test_changed_links_and_rows_name_old_and_new_profiles():
    old_links = _links([("A", "d", "1"), ("A", "r", "1"), ("B", "d", "2"), ("C", "d", "3"),
                        ("D", "d", "4")])  # fmt: skip
    new_links = _links([("A", "r", "1"), ("B", "d", "2"), ("B", "d", "3"), ("D", "d", "4"),
                        ("E", "d", "5")])  # fmt: skip
    old_index = _index([("d", "1", 1), ("r", "1", 2), ("d", "2", 3), ("d", "3", 4), ("d", "4", 5)])
    new_index = _index([("r", "1", 2), ("d", "2", 3), ("d", "3", 4), ("d", "4", 99), ("d", "5", 6)])
    changes = profile_changes(old_links, new_links, old_index, new_index)
    got = sorted(
        (r["source"], r["source_key"], r["old_id"], r["new_id"]) for r in changes.to_pylist()
    )
    assert got == [
        ("d", "1", "A", None),  # deleted: profile A must be re-derived without it
        ("d", "3", "C", "B"),  # merged into B: C retires, B is re-derived
        ("d", "4", "D", "D"),  # same profile, source row changed
        ("d", "5", None, "E"),  # new record, new profile
    ]


def test_duplicate_email_flag_is_set_over_the_whole_table():
    current = pa.table(
        {UID: ["A", "B", "C", "D"], "email": ["x@e", "x@e", "y@e", None],
         "dq_duplicate_email": [True, True, False, False]}
    )  # fmt: skip
    # B is re-derived with another e-mail (y@e, which C has); a new profile E has no e-mail.
    rows = pa.table({UID: ["B", "E"], "email": ["y@e", None], "dq_duplicate_email": [False, False]})
    fixed, flipped = duplicate_email_flags(rows, current, pa.array(["B", "E"]))
    assert dict(zip(fixed[UID].to_pylist(), fixed["dq_duplicate_email"].to_pylist(),
                    strict=True)) == {"B": True, "E": False}  # fmt: skip
    # A is now alone with x@e (flag off); C now shares y@e with B (flag on); D is untouched.
    assert sorted(flipped.to_pylist()) == ["A", "C"]
