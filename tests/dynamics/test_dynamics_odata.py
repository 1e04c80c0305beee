"""OData escaping: property tests that any key or filter value survives the URL intact."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from customer360.dynamics.odata import (
    chunk_by_budget,
    filter_eq,
    in_filter,
    in_parameters,
    in_value_cost,
    key_segment,
    query_string,
    record_path,
    string_literal,
)

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
)
names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


def parse_segment(segment: str) -> dict[str, str | int]:
    """An independent reader of `name='v''x',n=2` (what a server does after routing)."""
    parts, current, quoted = [], "", False
    for ch in segment:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    out: dict[str, str | int] = {}
    for part in parts:
        name, _, literal = part.partition("=")
        literal = unquote(literal)
        if literal.startswith("'"):
            assert literal.endswith("'")
            inner = literal[1:-1]
            assert inner.replace("''", "").count("'") == 0  # every inner quote is doubled
            out[name] = inner.replace("''", "'")
        else:
            out[name] = int(literal)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(names, st.one_of(texts, st.integers(-(10**12), 10**12)), min_size=1, max_size=3)
)
def test_key_segment_round_trips(key: dict) -> None:
    segment = key_segment(key)
    # nothing that could end the segment or start a query/fragment survives unencoded
    assert not set('/?#&+ "\n') & set(segment)
    assert parse_segment(segment) == key
    # httpx keeps the encoded path exactly as built (no re-encoding, no decoding)
    url = httpx.URL(f"https://org.example/api/data/v9.2/{record_path('accounts', key)}")
    assert url.raw_path.decode().endswith(f"accounts({segment})")


@settings(max_examples=200, deadline=None)
@given(texts)
def test_filter_literal_round_trips_through_query_string(value: str) -> None:
    query = query_string({"$filter": filter_eq("name", value)})
    (pair,) = parse_qsl(query, keep_blank_values=True)
    assert pair[0] == "$filter"
    assert pair[1] == f"name eq {string_literal(value)}"
    assert pair[1][len("name eq '") : -1].replace("''", "'") == value
    assert not set(" &#+'") & set(query)


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, min_size=1, max_size=20))
def test_in_parameters_round_trip(values: list[str]) -> None:
    params = in_parameters("crc33_email", values)
    query = query_string({"$filter": in_filter("crc33_email"), **params})
    decoded = dict(parse_qsl(query, keep_blank_values=True))
    assert decoded["@p1"] == "'crc33_email'"
    assert json.loads(decoded["@p2"]) == values
    assert decoded["$filter"] == "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"


def test_known_escapes() -> None:
    assert string_literal("O'Brien") == "'O''Brien'"
    assert key_segment({"accountnumber": "O'B/1 & 50%"}) == "accountnumber='O''B%2F1%20%26%2050%25'"
    assert key_segment({"b": 2, "a": "x"}) == "a='x',b=2"
    guid = uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert key_segment(guid) == str(guid)
    assert record_path("accounts", str(guid)) == f"accounts({guid})"
    assert filter_eq("x", None) == "x eq null"


@given(st.lists(st.integers(0, 10**9), max_size=400), st.integers(200, 2000))
def test_chunks_stay_under_the_url_budget(values: list[int], limit: int) -> None:
    base = 150
    chunks = list(chunk_by_budget(values, base, in_value_cost, limit, max_items=50))
    assert [v for c in chunks for v in c] == values
    for chunk in chunks:
        assert len(chunk) <= 50
        url_len = (
            base
            + len(query_string(in_parameters("c", chunk)))
            - len(query_string(in_parameters("c", [])))
        )
        assert url_len <= limit


def test_real_url_length_matches_the_estimate() -> None:
    values = [f"k{i}'x" for i in range(3000)]
    prefix = "https://org.example/api/data/v9.2/accounts?" + query_string(
        {"$select": "accountid", "$filter": in_filter("accountnumber")}
    )
    base = len(prefix) + len(query_string(in_parameters("accountnumber", []))) + 1
    for chunk in chunk_by_budget(values, base, in_value_cost, 32_768):
        url = prefix + "&" + query_string(in_parameters("accountnumber", chunk))
        assert len(url) <= 32_768
    assert urlsplit(url).query.startswith("$select=accountid")
