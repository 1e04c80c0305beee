"""The column-by-column preparation of streaming rows gives `prepare_row`'s results exactly."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from dynamics_fixtures import customer_meta

from customer360.dynamics import columnar
from customer360.dynamics.bodies import TableRef, bulk_item, bulk_items
from customer360.dynamics.operations import Operation, OpKind
from customer360.dynamics.plan import compile_plan
from customer360.dynamics.prepare import extract_key, match_text, prepare_row, raw_key_text
from customer360.dynamics.preprocess import _whole_number_keys
from customer360.dynamics.source import KeyForms
from customer360.dynamics.spec import load_spec
from customer360.dynamics.values import RowProblem

COLUMNS = {
    "crc33_name": "name",
    "crc33_firstname": "first",
    "crc33_email": "email",
    "crc33_totalspend": "spend",
    "crc33_churnprobability": "churn",
    "crc33_dateofbirth": "born",
    "crc33_active": "active",
    "crc33_gendercode": "gender",
}
#: per column: values the bulk checks take, then values they must hand to the converter
GOOD = {
    "name": ["Ann", "  Ann  ", "Bob Smith"],
    "first": ["Ann", "Bartholome", " Cy "],
    "email": ["a@b.c", "x@y.z"],
    "spend": [1000.0, 1001.25, -3.5, 0.0, -0.0, 99999.99],
    "churn": [0.0, 0.5, 0.1234567, 1.0],
    "born": ["1971-10-01", " 1990-01-02 ", "2000-02-29"],
    "active": [True, False],
    "gender": [1, 2],
}
ODD = {
    "name": ["", "   ", None, 12.0, "x" * 300],
    "first": ["Bartholomew", "Bartholomew-Smith", "", None, 7],
    "email": [None, ""],
    "spend": [2.675, 1006.555, 1e30, 1e-7, float("nan"), float("inf"), 2e11, "12.5", None,
              Decimal("3052"), 5, True],
    "churn": [1.5, -0.1, float("nan"), float("inf"), "0.5", None, 1],
    "born": ["1990-13-01", "1971-10-01T10:00:00", "19711001", "", None, dt.date(1990, 1, 2),
             "1990-02-30", "x"],
    "active": ["Yes", "maybe", None, 2],
    "gender": ["2", 9, None, "Female", 1.0],
}  # fmt: skip
#: odd values of the column's own type: the bulk check sees one type and must still refuse
SAME_TYPE_ODD = {
    "name": ["", "   ", "x" * 300],
    "first": ["Bartholomew", "", "  "],
    "email": [""],
    "spend": [2.675, 1006.555, 1e30, 1e-7, float("nan"), float("inf"), 2e11, -2e11],
    "churn": [1.5, -0.1, float("nan"), float("-inf")],
    "born": ["1990-13-01", "1971-10-01T10:00:00", "19711001", "", "1990-02-30", "x", "1990 01 02"],
    "active": [True],
    "gender": [9, 0],
}


def _plan(**rules):
    spec = {
        "table": "crc33_customer",
        "entity_set": "crc33_customers",
        "mode": "upsert",
        "key": {"columns": {"crc33_cid": "cid"}},
        "columns": COLUMNS,
        "change_detection": False,
        **rules,
    }
    return compile_plan(load_spec(spec), customer_meta())


def _typed(values: dict) -> dict:
    """Values with their types: 1000 and 1000.0 are different wire values."""
    return {name: (type(value).__name__, repr(value)) for name, value in values.items()}


def _by_row(plan, rows):
    out = []
    for number, row in enumerate(rows):
        try:
            out.append(("ok", _typed(prepare_row(plan, number, row).values)))
        except RowProblem as problem:
            out.append(("problem", problem.code, problem.message))
    return out


def _by_column(plan, rows):
    values, problems = columnar.prepare_values(plan, rows)
    return [
        ("problem", problems[i].code, problems[i].message)
        if cells is None
        else ("ok", _typed(cells))
        for i, cells in enumerate(values)
    ]


def _rows(rng: random.Random, n: int, odd: float, same_type: bool) -> list[dict]:
    rows = []
    for cid in range(n):
        row = {"cid": cid}
        for source in GOOD:
            pool = (SAME_TYPE_ODD if same_type else ODD)[source]
            row[source] = rng.choice(pool if rng.random() < odd else GOOD[source])
        if not same_type and rng.random() < odd / 4:
            del row[rng.choice(list(GOOD))]  # a source column missing from the row
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"defaults": {"trim": False, "null_policy": "ignore"}},
        {"defaults": {"length_policy": "truncate", "null_policy": "clear"}},
    ],
    ids=["defaults", "untrimmed-ignore-nulls", "truncate"],
)
def test_columnar_matches_prepare_row(rules) -> None:
    """Slices of clean columns (the bulk checks vouch for them), of columns with a few odd
    values, and of odd values everywhere: same wire values, same attributes left out, and for
    each bad row the problem of its first bad column."""
    plan = _plan(**rules)
    assert columnar.supports(plan)
    rng = random.Random(15)
    for same_type in (True, False):
        for odd in (0.0, 0.02, 0.3, 1.0):
            for size in (1, 7, 200):
                rows = _rows(rng, size, odd, same_type)
                assert _by_column(plan, rows) == _by_row(plan, rows), (rules, odd, size)


def test_clean_slice_keeps_value_types() -> None:
    """A whole decimal goes as an int, a fractional one as the float itself, doubles rounded
    to the column's precision, dates as ISO text: what the converter gives."""
    plan = _plan()
    rows = [
        {"cid": 1, "name": " A ", "first": "B", "email": "e", "spend": 1000.0, "churn": 0.1234567,
         "born": "1971-10-01", "active": True, "gender": 2},
        {"cid": 2, "name": "C", "first": "D", "email": "f", "spend": 12.5, "churn": 1.0,
         "born": "2000-02-29", "active": False, "gender": 1},
    ]  # fmt: skip
    values, problems = columnar.prepare_values(plan, rows)
    assert problems == {}
    assert values[0]["crc33_name"] == "A"
    assert values[0]["crc33_totalspend"] == 1000 and type(values[0]["crc33_totalspend"]) is int
    assert values[1]["crc33_totalspend"] == 12.5
    assert values[0]["crc33_churnprobability"] == 0.12346
    assert values[1]["crc33_dateofbirth"] == "2000-02-29"
    assert values == [prepare_row(plan, i, row).values for i, row in enumerate(rows)]


@pytest.mark.parametrize("source", sorted(SAME_TYPE_ODD))
def test_one_odd_value_in_a_clean_column(source: str) -> None:
    """Each odd value alone, at the start, middle or end of a slice whose other cells are
    clean and of the same type: the bulk check must hand the column to the converter."""
    plan = _plan()
    clean = [
        {"cid": i, **{s: GOOD[s][i % len(GOOD[s])] for s in GOOD}} for i in range(9)
    ]  # fmt: skip
    for odd in SAME_TYPE_ODD[source]:
        for at in (0, 4, 8):
            rows = [dict(row) for row in clean]
            rows[at][source] = odd
            assert _by_column(plan, rows) == _by_row(plan, rows), (source, odd, at)


def test_whole_number_keys_of_a_chunk_are_extract_keys() -> None:
    """A chunk whose keys are all plain ints in range gets, at once, the key forms and keys
    `extract_key`, `match_text` and `raw_key_text` give row by row; any other chunk is left to
    them (None)."""
    plan = _plan()
    chunk = [{"cid": cid} for cid in (0, 5, 17, 10**9, 123456)]
    forms, keys = _whole_number_keys(plan, chunk)
    for row, form, key in zip(chunk, forms, keys, strict=True):
        one_key, text = extract_key(plan, row)
        assert (form, key) == (KeyForms(match_text(one_key, text), text, raw_key_text(plan, row)),
                               one_key)  # fmt: skip
    for odd in (-1, 10**9 + 1, "5", 5.0, True, None):  # out of range or not a plain int
        assert _whole_number_keys(plan, [*chunk, {"cid": odd}]) is None
    assert _whole_number_keys(plan, [{"cid": 1}, {}]) is None  # a row without the key column


def test_bulk_items_are_bulk_item_for_every_kind() -> None:
    """The one-pass `Targets` of an upsert are `bulk_item`'s, including an upsert that goes by
    id (a retried create) and a payload that carries the primary id (dropped from the item)."""
    plan = _plan()
    table = TableRef(plan.meta.logical_name, plan.entity_set, plan.primary_id, "upsert",
                     plan.use_bulk, plan)  # fmt: skip
    guid = "00000000-0000-0000-0000-0000000000aa"
    ops = [
        Operation(OpKind.UPSERT, "crc33_cid=1", 0, {"crc33_name": "A"}, {}, key={"crc33_cid": 1}),
        Operation(OpKind.UPSERT, "crc33_cid=2", 1, {"crc33_customerid": guid, "crc33_name": "B"},
                  {}, record_id=guid, key={"crc33_cid": 2}, upsert_by_id=True),
        Operation(OpKind.CREATE, "crc33_cid=3", 2, {"crc33_customerid": guid}, {},
                  record_id=guid, key={"crc33_cid": 3}),
    ]  # fmt: skip
    for kind in (OpKind.UPSERT, OpKind.CREATE, OpKind.UPDATE):
        assert bulk_items(table, kind, ops) == [bulk_item(table, kind, op) for op in ops]
    items = bulk_items(table, OpKind.UPSERT, ops)
    assert items[0]["@odata.id"] == "crc33_customers(crc33_cid=1)"
    assert items[1]["@odata.id"] == f"crc33_customers({guid})"
    assert "crc33_customerid" not in items[1]
