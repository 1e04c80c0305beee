"""Property tests: key and $filter literals survive quoting, unicode and percent-encoding."""

from __future__ import annotations

import itertools
from urllib.parse import quote, unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from customer360.emulator.odata_filter import compile_filter
from customer360.emulator.odata_literals import (
    parse_key_predicate,
    quote_string,
    split_path,
)
from customer360.emulator.schema import load_schema

SCHEMA = load_schema()
ACCOUNT = SCHEMA.tables["account"]
CUSTOMER = SCHEMA.tables["crc33_customer"]
# Any text a user may type: no surrogates (not UTF-8) and no control characters.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(TEXT)
def test_string_key_round_trip(value):
    predicate = f"accountnumber={quote_string(value)}"
    parsed = parse_key_predicate(predicate)
    assert parsed.primary is None
    assert parsed.parts["accountnumber"].kind == "string"
    assert parsed.parts["accountnumber"].value == value


@given(TEXT, TEXT)
def test_percent_encoded_path_with_reserved_characters_round_trip(first, second):
    predicate = f"firstname={quote_string(first)},emailaddress1={quote_string(second)}"
    path = f"contacts({quote(predicate, safe='')})/fullname"
    segments = split_path(unquote(path))  # the server sees the decoded path
    assert [s.name for s in segments] == ["contacts", "fullname"]
    parts = parse_key_predicate(segments[0].predicate).parts
    assert (parts["firstname"].value, parts["emailaddress1"].value) == (first, second)


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_integer_key_round_trip(number):
    parts = parse_key_predicate(f"crc33_cid={number}").parts
    assert (parts["crc33_cid"].kind, parts["crc33_cid"].value) == ("int", number)


@given(TEXT)
def test_filter_string_literal_matches_case_insensitively(value):
    predicate = compile_filter(ACCOUNT, f"name eq {quote_string(value)}", {})
    assert predicate({"name": value})
    assert predicate({"name": value.upper()}) == (value.upper().casefold() == value.casefold())
    assert not predicate({"name": value + "x"})
    assert not predicate({"name": None})


@given(st.lists(TEXT, min_size=1, max_size=5), TEXT)
def test_in_with_json_array_alias(values, other):
    import json

    aliases = {"@p1": "'name'", "@p2": json.dumps(values)}
    predicate = compile_filter(
        ACCOUNT, "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)", aliases
    )
    assert all(predicate({"name": v}) for v in values)
    assert predicate({"name": other}) == (other.casefold() in {v.casefold() for v in values})


_numbers = itertools.count(1)


@settings(max_examples=25, deadline=None)
@given(TEXT)
def test_alternate_key_round_trip_over_http(api, value):
    number = f"h{next(_numbers)}-{value}"[:20]
    created = api.post("accounts", json={"name": "prop", "accountnumber": number})
    assert created.status_code == 204, created.text
    literal = quote(quote_string(number), safe="")
    response = api.get(f"accounts(accountnumber={literal})?$select=accountnumber")
    assert response.status_code == 200, (number, response.text)
    assert response.json()["accountnumber"] == number
    expression = quote(f"accountnumber eq {quote_string(number)}", safe="")
    found = api.get(f"accounts?$select=accountnumber&$filter={expression}")
    assert [r["accountnumber"] for r in found.json()["value"]] == [number]
