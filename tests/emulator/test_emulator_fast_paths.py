"""The emulator's fast paths answer exactly as its general code does (property tests).

Bulk loads send thousands of `UpsertMultiple` targets per request; their common shapes (a
`set(key=123)` record URL, a float for a decimal column, …) are read by shortcuts. Each shortcut
must give the same stored value, the same record and the same error as the general path, so
these tests run both on the same input: the general path is reached through its public
function (`coerce_payload_value`) or through a URL form the shortcut does not take (absolute).
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customer360.emulator import errors
from customer360.emulator.operations import DataService, new_guid
from customer360.emulator.schema import load_schema
from customer360.emulator.store import Store
from customer360.emulator.values import coerce_payload_value, column_coercer

SCHEMA = load_schema()
CUSTOMER = SCHEMA.tables["crc33_customer"]
ACCOUNT = SCHEMA.tables["account"]
ABSOLUTE = "https://org.example.com/api/data/v9.2/"

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2.0, max_value=2.0),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(float),
    st.text(max_size=12),
    st.dates().map(str),
    st.sampled_from(["1990-02-30", "1990-01-01T10:00:00Z", "2020-13-01", "x" * 300]),
)


def _outcome(call):
    """What a call gave: ("value", v) or ("error", type, status, code, message)."""
    try:
        value = call()
    except errors.DataverseError as exc:
        return ("error", "DataverseError", exc.status, exc.code, str(exc))
    except Exception as exc:  # e.g. decimal.InvalidOperation: must be the same one too
        return ("error", type(exc).__name__)
    if isinstance(value, float) and math.isnan(value):
        return ("value", "nan")
    if isinstance(value, Decimal) and value.is_nan():
        return ("value", "Decimal NaN")
    return ("value", type(value).__name__, value)


@pytest.mark.parametrize(
    "column",
    [c for c in CUSTOMER.columns.values() if not c.is_lookup and not c.read_only],
    ids=lambda c: c.name,
)
@settings(max_examples=150, deadline=None)
@given(value=JSON_VALUES)
def test_column_coercer_is_coerce_payload_value(column, value):
    fast = column_coercer(CUSTOMER, column)
    general = _outcome(lambda: coerce_payload_value(CUSTOMER, column, value))
    if value is None:
        return  # prepare() stores None without calling a coercer
    assert _outcome(lambda: fast(value)) == general


def test_decimal_and_double_shortcuts_round_and_check_ranges():
    spend = column_coercer(CUSTOMER, CUSTOMER.columns["crc33_totalspend"])
    churn = column_coercer(CUSTOMER, CUSTOMER.columns["crc33_churnprobability"])
    assert spend(1250.125) == Decimal("1250.12")  # half-even, as Decimal.quantize does
    assert spend(3) == Decimal("3.00")
    assert churn(0.123456789) == 0.12346
    with pytest.raises(errors.DataverseError, match="outside the valid range"):
        churn(1.5)
    with pytest.raises(errors.DataverseError, match="outside the valid range"):
        spend(1e12)
    with pytest.raises(errors.DataverseError, match="Cannot convert the literal 'true'"):
        spend(True)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> DataService:
    store = Store(tmp_path_factory.mktemp("fast") / "dataverse.db", SCHEMA)
    yield DataService(SCHEMA, store, "00000000-0000-0000-0000-000000000001")
    store.close()


EDGE_URLS = [
    "crc33_customers(crc33_cid=5)",
    "/crc33_customers(crc33_cid=-7)",
    "crc33_customers(crc33_cid=0005)",
    "crc33_customers(crc33_cid=99999999999)",
    "crc33_customers(crc33_cid='5')",
    "crc33_customers(crc33_name='x')",
    "crc33_customers(crc33_customerid=5)",
    "crc33_customers(nosuchcolumn=5)",
    "accounts(accountnumber='AB-1 x')",
    "accounts(accountnumber='')",
    "accounts(accountnumber=5)",
    "accounts(crc33_cid=5)",
    "nosuchset(crc33_cid=5)",
]


def _locate(service: DataService, url: str, expected):
    """The outcome, with the URL as the error message names it made relative."""
    outcome = _outcome(lambda: service.locator_from_url(url, expected=expected))
    return tuple(part.replace(ABSOLUTE, "") if isinstance(part, str) else part for part in outcome)


@pytest.mark.parametrize("url", EDGE_URLS)
@pytest.mark.parametrize("expected", [None, CUSTOMER], ids=["any", "customer"])
def test_simple_record_url_reads_as_the_general_parser(service, url, expected):
    assert _locate(service, url, expected) == _locate(service, ABSOLUTE + url, expected)


@settings(max_examples=200, deadline=None)
@given(
    number=st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1),
    text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
)
def test_simple_record_url_property(service, number, text):
    for url, expected in (
        (f"crc33_customers(crc33_cid={number})", CUSTOMER),
        (f"accounts(accountnumber='{text}')", ACCOUNT),
    ):
        assert _locate(service, url, expected) == _locate(service, ABSOLUTE + url, expected)
        assert _locate(service, url, None) == _locate(service, ABSOLUTE + url, None)


def test_new_guid_is_a_random_version_4_guid():
    made = [new_guid() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower case, 8-4-4-4-12
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
