"""Sanitisation, coercion and change-detection normalisation of single values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from dynamics_fixtures import customer_meta

from customer360.dynamics.spec import Coercion, LengthPolicy, NullPolicy, Rules
from customer360.dynamics.values import RowProblem, comparable, converter, to_wire

META = customer_meta()
A = META.attributes
ERROR = Rules(trim=True, length_policy=LengthPolicy.ERROR)
TRUNC = Rules(trim=True, length_policy=LengthPolicy.TRUNCATE)
RAW = Rules(trim=False, length_policy=LengthPolicy.ERROR, null_policy=NullPolicy.CLEAR)


@pytest.mark.parametrize(
    ("attr", "value", "rules", "expected"),
    [
        ("crc33_firstname", "  Ann  ", ERROR, "Ann"),
        ("crc33_firstname", "  Ann  ", RAW, "  Ann  "),
        ("crc33_firstname", "   ", ERROR, None),
        ("crc33_firstname", "", RAW, None),
        ("crc33_firstname", "Bartholomew-Smith", TRUNC, "Bartholome"),
        ("crc33_firstname", 12.0, ERROR, "12"),
        ("crc33_cid", " 42 ", ERROR, 42),
        ("crc33_cid", 42.0, ERROR, 42),
        ("crc33_totalspend", "1006.555", ERROR, 1006.56),
        ("crc33_totalspend", Decimal("3052"), ERROR, 3052),
        ("crc33_churnprobability", 0.1234567, ERROR, 0.12346),
        ("crc33_dateofbirth", "1971-10-01", ERROR, "1971-10-01"),
        ("crc33_dateofbirth", dt.datetime(1990, 1, 2, 23, 0), ERROR, "1990-01-02"),
        ("crc33_active", "Yes", ERROR, True),
        ("crc33_active", 0, ERROR, False),
        ("crc33_gendercode", 2, ERROR, 2),
        ("crc33_gendercode", "2", ERROR, 2),
        (
            "crc33_customerid",
            "00000000-0000-0000-0000-00000000000A",
            ERROR,
            "00000000-0000-0000-0000-00000000000a",
        ),
        ("crc33_firstname", float("nan"), ERROR, None),
    ],
)
def test_to_wire(attr: str, value, rules: Rules, expected) -> None:
    assert to_wire(value, A[attr], rules) == expected


def test_labels_from_metadata_and_from_the_spec() -> None:
    assert to_wire("female", A["crc33_gendercode"], ERROR, labels=True) == 2
    assert to_wire("F", A["crc33_gendercode"], ERROR, labels={"M": 1, "F": 2}) == 2
    with pytest.raises(RowProblem) as err:
        to_wire("Gender neutral", A["crc33_gendercode"], ERROR, labels=True)
    assert err.value.code == "InvalidValue"
    assert "'Gender neutral' is not an option label (['Female', 'Male'])" in err.value.message
    with pytest.raises(RowProblem, match=r"7 is not a value of its option set \[1, 2\]"):
        to_wire(7, A["crc33_gendercode"], ERROR)


@pytest.mark.parametrize(
    ("attr", "value", "code", "text"),
    [
        ("crc33_firstname", "Bartholomew", "0x80044331", "length 11 exceeds the maximum of 10"),
        ("crc33_cid", "4x", "InvalidValue", "'4x' is not a valid integer"),
        ("crc33_cid", -1, "InvalidValue", "-1 is below the minimum 0"),
        ("crc33_cid", 4.5, "InvalidValue", "has a fractional part"),
        ("crc33_cid", True, "InvalidValue", "a boolean is not an integer"),
        ("crc33_churnprobability", 1.5, "InvalidValue", "1.5 is above the maximum 1"),
        ("crc33_dateofbirth", "1990-13-01", "InvalidValue", "is not a valid date"),
        ("crc33_active", "maybe", "InvalidValue", "expected true/false"),
        ("crc33_totalspend", "NaN", "InvalidValue", "not finite"),
    ],
)
def test_bad_values_name_the_column(attr: str, value, code: str, text: str) -> None:
    with pytest.raises(RowProblem) as err:
        to_wire(value, A[attr], ERROR)
    assert err.value.code == code
    assert f"column {attr!r}" in err.value.message
    assert text in err.value.message


def test_explicit_coercion_overrides_the_type() -> None:
    assert to_wire(1234, A["crc33_firstname"], ERROR, Coercion.STRING) == "1234"
    assert (
        to_wire("2020-01-01T10:00:00+02:00", A["crc33_firstname"], ERROR, Coercion.DATETIME)
        == "2020-01-01T08:00:00Z"
    )


@pytest.mark.parametrize(
    ("attr", "sent", "read_back"),
    [
        ("crc33_totalspend", 12.5, 12.50),
        ("crc33_totalspend", 3052, "3052.00"),
        ("crc33_dateofbirth", "1990-01-02", "1990-01-02T00:00:00Z"),
        ("crc33_firstname", None, ""),
        ("crc33_churnprobability", 0.123456, 0.12346),
        ("crc33_gendercode", 2, "2"),
    ],
)
def test_comparable_treats_equal_values_as_equal(attr: str, sent, read_back) -> None:
    assert comparable(sent, A[attr]) == comparable(read_back, A[attr])


def test_comparable_keeps_real_differences() -> None:
    assert comparable("Ann", A["crc33_firstname"]) != comparable("ann", A["crc33_firstname"])
    assert comparable(12.5, A["crc33_totalspend"]) != comparable(12.51, A["crc33_totalspend"])


def _outcome(convert, value):
    try:
        return ("ok", convert(value))
    except RowProblem as problem:
        return ("problem", problem.code, problem.message)


@pytest.mark.parametrize(
    "attr",
    [
        "crc33_firstname",
        "crc33_cid",
        "crc33_totalspend",
        "crc33_churnprobability",
        "crc33_dateofbirth",
        "crc33_active",
        "crc33_gendercode",
    ],
)
@pytest.mark.parametrize("rules", [ERROR, TRUNC, RAW])
def test_column_converter_is_to_wire(attr: str, rules: Rules) -> None:
    """The per-column converter a publish uses for every cell gives exactly `to_wire`'s value
    or error, whatever the value (its fast paths only skip checks that cannot apply)."""
    values = [
        "Ann", "  Ann  ", "", "   ", "Bartholomew", "Bartholomew-Smith", "1971-10-01",
        " 1971-10-01 ", "1990-13-01", "1971-10-01T10:00:00", "19711001", "42", " 42 ", 42, -1,
        4.5, 0.1234567, 1.5, 1006.555, 2.675, 1e30, float("nan"), float("inf"), True, None,
        Decimal("3052"), dt.date(1990, 1, 2), "Yes", "2", 2,
    ]  # fmt: skip
    convert = converter(A[attr], rules)
    for value in values:
        expected = _outcome(lambda v: to_wire(v, A[attr], rules), value)
        assert _outcome(convert, value) == expected, (attr, value)
