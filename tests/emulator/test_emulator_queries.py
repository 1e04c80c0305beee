"""Queries: $select, the $filter subset, $orderby, $top, $count, paging and change tracking."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

PEOPLE = [
    (2001, "Ann", "O'Bryan", "Paris", 1200),
    (2002, "bob", "Smith", "paris", 300),
    (2003, "Cid", "Jones", "Oslo", 4999),
    (2004, "Dee", "Smithers", "Rome", 2500),
    (2005, "Eve", "Ng", None, 1006),
]


@pytest.fixture(scope="module", autouse=True)
def people(api):
    targets = [
        {
            "@odata.type": "Microsoft.Dynamics.CRM.crc33_customer",
            "crc33_cid": cid,
            "crc33_firstname": first,
            "crc33_lastname": last,
            "crc33_name": f"{first} {last}",
            "crc33_city": city,
            "crc33_totalspend": spend,
            "crc33_source": "query-test",
        }
        for cid, first, last, city, spend in PEOPLE
    ]
    response = api.post(
        "crc33_customers/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets}
    )
    assert response.status_code == 200, response.text


def cids(api, query: str) -> list[int]:
    response = api.get(f"crc33_customers?$select=crc33_cid&{query}")
    assert response.status_code == 200, response.text
    return [row["crc33_cid"] for row in response.json()["value"]]


BASE = "crc33_source eq 'query-test'"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("crc33_cid eq 2003", [2003]),
        ("crc33_cid ne 2003", [2001, 2002, 2004, 2005]),
        ("crc33_cid gt 2003", [2004, 2005]),
        ("crc33_cid ge 2003", [2003, 2004, 2005]),
        ("crc33_cid lt 2002", [2001]),
        ("crc33_cid le 2002", [2001, 2002]),
        ("crc33_city eq 'PARIS'", [2001, 2002]),  # case-insensitive
        ("crc33_city eq null", [2005]),
        ("crc33_city ne null and crc33_cid gt 2003", [2004]),
        ("crc33_lastname eq 'O''Bryan'", [2001]),
        ("contains(crc33_lastname,'smith')", [2002, 2004]),
        ("startswith(crc33_firstname,'B')", [2002]),
        ("endswith(crc33_lastname,'ers')", [2004]),
        ("not contains(crc33_lastname,'smith')", [2001, 2003, 2005]),
        ("(crc33_cid eq 2001 or crc33_cid eq 2005) and crc33_totalspend lt 1100", [2005]),
        ("crc33_totalspend ge 2500.00", [2003, 2004]),
        ("crc33_firstname eq crc33_firstname", [2001, 2002, 2003, 2004, 2005]),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='crc33_city',PropertyValues=['oslo','Rome'])",
            [2003, 2004],
        ),
        (
            "Microsoft.Dynamics.CRM.NotIn(PropertyName='crc33_cid',PropertyValues=['2001','2002'])",
            [2003, 2004, 2005],
        ),
    ],
)
def test_filter_expressions(api, expression, expected):
    query = f"$filter={quote(f'{BASE} and ({expression})', safe='')}&$orderby=crc33_cid"
    assert cids(api, query) == expected


def test_in_with_parameter_aliases_and_double_quoted_values(api):
    values = quote('["O\'Bryan","Ng"]', safe="")
    query = (
        f"$filter={quote(BASE, safe='')} and "
        "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"
        f"&@p1='crc33_lastname'&@p2={values}&$orderby=crc33_cid"
    )
    assert cids(api, query) == [2001, 2005]


def test_orderby_top_and_count(api):
    assert cids(api, f"$filter={BASE}&$orderby=crc33_totalspend desc&$top=2") == [2003, 2004]
    assert cids(api, f"$filter={BASE}&$orderby=crc33_city asc,crc33_cid desc") == [
        2005,
        2003,
        2002,
        2001,
        2004,
    ]
    body = api.get(f"crc33_customers?$select=crc33_cid&$filter={BASE}&$count=true").json()
    assert body["@odata.count"] == 5


def test_count_path_returns_plain_text(api):
    response = api.get(f"crc33_customers/$count?$filter={quote(BASE)}")
    assert response.status_code == 200
    assert response.text == "5"


def test_select_unknown_column_and_filter_errors(api, dataverse_error):
    assert dataverse_error(api.get("crc33_customers?$select=Name")) == (
        400,
        "0x0",
        "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.crc33_customer'.",
    )
    # The filter-rows.md example: an undoubled quote inside a string literal.
    unterminated = api.get("crc33_customers?$filter=crc33_lastname eq 'O'Bryan'")
    assert dataverse_error(unterminated) == (
        400,
        "0x80060888",
        "There is an unterminated literal at position 27 in 'crc33_lastname eq 'O'Bryan''.",
    )
    unterminated = api.get("crc33_customers?$filter=crc33_lastname eq 'OBryan")
    assert dataverse_error(unterminated)[2] == (
        "There is an unterminated literal at position 25 in 'crc33_lastname eq 'OBryan'."
    )
    skip = api.get("crc33_customers?$skip=10")
    assert dataverse_error(skip) == (
        400,
        "0x80060888",
        "The query parameter $skip is not supported",
    )


def test_paging_with_maxpagesize_and_opaque_next_link(api, emulator):
    seen: list[int] = []
    url = f"crc33_customers?$select=crc33_cid&$filter={quote(BASE)}"
    pages = 0
    while url:
        response = api.get(url, headers={"Prefer": "odata.maxpagesize=2"})
        assert response.status_code == 200
        assert response.headers["Preference-Applied"] == "odata.maxpagesize=2"
        body = response.json()
        seen.extend(row["crc33_cid"] for row in body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
        if url:
            assert url.startswith(f"{emulator.api_url}crc33_customers?")
            assert "$skiptoken=%3Ccookie%20pagenumber=%22" in url
    assert pages == 3
    assert sorted(seen) == [2001, 2002, 2003, 2004, 2005]
    assert len(seen) == len(set(seen))


def test_change_tracking_delta_links(api, emulator, dataverse_error):
    initial = api.get(
        "crc33_customers?$select=crc33_name", headers={"Prefer": "odata.track-changes"}
    )
    assert initial.status_code == 200
    assert initial.headers["Preference-Applied"] == "odata.track-changes"
    delta_link = initial.json()["@odata.deltaLink"]
    assert re.fullmatch(
        rf"{re.escape(emulator.api_url)}crc33_customers\?\$select=crc33_name&\$deltatoken="
        r"\d+%21\d\d%2f\d\d%2f\d{4}%20\d\d%3a\d\d%3a\d\d",
        delta_link,
    )
    created = api.post("crc33_customers", json={"crc33_cid": 2101, "crc33_name": "new"})
    new_id = created.headers["OData-EntityId"][-37:-1]
    api.patch("crc33_customers(crc33_cid=2002)", json={"crc33_name": "changed"})
    gone = api.get("crc33_customers(crc33_cid=2003)").json()["crc33_customerid"]
    api.delete(f"crc33_customers({gone})")
    delta = api.get(delta_link)
    assert delta.status_code == 200
    body = delta.json()
    assert body["@odata.context"] == (
        f"{emulator.api_url}$metadata#crc33_customers(crc33_name)/$delta"
    )
    changed = [row.get("crc33_name") for row in body["value"] if "crc33_name" in row]
    assert changed == ["new", "changed"]
    deleted = [row for row in body["value"] if "reason" in row]
    assert deleted == [
        {
            "@odata.context": f"{emulator.api_url}$metadata#crc33_customers/$deletedEntity",
            "id": gone,
            "reason": "deleted",
        }
    ]
    assert new_id != gone
    again = api.get(body["@odata.deltaLink"]).json()
    assert again["value"] == []
    rejected = api.get(
        f"crc33_customers?$filter={quote(BASE)}", headers={"Prefer": "odata.track-changes"}
    )
    assert dataverse_error(rejected)[2] == (
        'The "$filter" query parameter isn\'t supported when Change Tracking is enabled.'
    )
